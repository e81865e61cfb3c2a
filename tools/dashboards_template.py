"""Write the template's Grafana dashboards from a rendered Level 3 project's builder.

    uv run python tools/dashboards_template.py PROJECT PYTHON

PROJECT is a rendered Level 3 project, PYTHON the interpreter of its environment. The builder
(src/<package>/monitoring/dashboards.py) writes the JSON; here its project name becomes
`{{ project_slug }}` again and the rest is kept from Jinja (Grafana's legends use `{{label}}`).
The generated project's own tests check that the rendered files equal what the builder makes.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
FOLDER = Path("deploy/monitoring/grafana/dashboards")


def as_template(text: str, slug: str) -> str:
    """`text` with every `slug` as `{{ project_slug }}` and everything else raw."""
    raw = [f"{{% raw %}}{part}{{% endraw %}}" for part in text.split(slug)]
    return "{{ project_slug }}".join(raw)


def main(project: Path, python: str) -> None:
    answers = yaml.safe_load((project / ".copier-answers.yml").read_text())
    package = answers["package_name"]
    slug = answers["project_slug"]
    with tempfile.TemporaryDirectory() as folder:
        builder = [python, "-m", f"{package}.monitoring.dashboards", "--output", folder]
        subprocess.run(builder, cwd=project, check=True)
        for built in sorted(Path(folder).glob("*.json")):
            target = ROOT / "template" / FOLDER / f"{built.name}.jinja"
            target.write_text(as_template(built.read_text(), slug))
            print(f"wrote {target.relative_to(ROOT)}")


if __name__ == "__main__":
    main(Path(sys.argv[1]), sys.argv[2])
