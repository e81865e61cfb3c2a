"""The docs a newcomer follows: README commands run as written, and the site builds strictly."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
import yaml
from helpers import BASE_ANSWERS, ROOT, TOOLS_BIN, copier_config, run


def first_bash_block(markdown: str) -> list[str]:
    """The commands of the first ```bash block, comments and blank lines left out."""
    block = re.search(r"```bash\n(.*?)```", markdown, flags=re.DOTALL)
    assert block, "no ```bash block"
    return [
        line.strip()
        for line in block.group(1).splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]


@pytest.mark.slow
def test_readme_generate_command_creates_a_project(copier_template: Path, tmp_path: Path) -> None:
    """README's first command, run as written (plus answers), from a git clone of the template."""
    generate, test = first_bash_block((ROOT / "README.md").read_text())
    assert test == "make test"
    words = shlex.split(generate.replace('"$PWD"', str(copier_template)))
    assert words[0] == "uvx", generate
    assert "copy" in words, generate
    # The command chooses the level (copier asks for it when the answer is left out).
    chosen = [word.split("=", 1)[1] for word in words if word.startswith("maturity_level=")]
    assert len(chosen) == 1, generate
    answers = [arg for key, value in BASE_ANSWERS.items() for arg in ("-d", f"{key}={value}")]
    cwd = tmp_path / "clone"
    cwd.mkdir()
    run([*words, "--defaults", *answers], cwd=cwd)

    project = tmp_path / "my-ml-project"  # README copies into ../my-ml-project
    recorded = yaml.safe_load((project / ".copier-answers.yml").read_text())
    assert recorded["_src_path"] == str(copier_template), "updates need an absolute template path"
    assert recorded["maturity_level"] == int(chosen[0])
    # The generated README's own first commands are real targets of its Makefile.
    setup, train = first_bash_block((project / "README.md").read_text())
    for command in (setup, train):
        target = shlex.split(command)[1]
        run(["make", "--no-print-directory", "-n", target], cwd=project)


def test_docs_site_builds_strictly_with_the_options_reference(tmp_path: Path) -> None:
    run([TOOLS_BIN / "mkdocs", "build", "--strict", "--site-dir", str(tmp_path)], cwd=ROOT)
    options = (tmp_path / "options" / "index.html").read_text()
    questions = [name for name in copier_config() if not name.startswith("_")]
    for name in questions:
        assert f"<code>{name}</code>" in options, f"options reference misses {name}"
