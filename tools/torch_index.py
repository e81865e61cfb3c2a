"""Make a local stand-in for PyTorch's CPU index from wheels on disk, for machines that cannot
reach https://download.pytorch.org/whl/cpu.

    uv run python tools/torch_index.py FOLDER WHEEL...

Writes FOLDER/torch/ (links to the wheels and an index.html listing them: the simple layout that
uv reads from a local folder) and prints `pytorch-cpu=file:///...FOLDER`, the value of UV_INDEX
that points a generated project's `pytorch-cpu` index there. It is the fallback the generated
docs/golden-path.md gives by hand; the tests (tests/helpers.py) and bench/env_size.py lock
generated projects through it, from the CPU build of torch in PIP_FIND_LINKS.
"""

from __future__ import annotations

import sys
from pathlib import Path

INDEX_NAME = "pytorch-cpu"  # the [[tool.uv.index]] name in the generated pyproject.toml


def torch_index(folder: Path, wheels: list[Path]) -> str:
    """Lay `wheels` (torch's) out as a simple index in `folder`; the UV_INDEX value for it."""
    project = folder / "torch"
    project.mkdir(parents=True, exist_ok=True)
    for wheel in wheels:
        link = project / wheel.name
        if not link.is_symlink():
            link.symlink_to(wheel.resolve())
    anchors = "".join(f'<a href="{wheel.name}">{wheel.name}</a>\n' for wheel in wheels)
    (project / "index.html").write_text(f"<!DOCTYPE html>\n<html><body>\n{anchors}</body></html>\n")
    return f"{INDEX_NAME}={folder.resolve().as_uri()}"


def main() -> None:
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    print(torch_index(Path(sys.argv[1]), [Path(arg) for arg in sys.argv[2:]]))


if __name__ == "__main__":
    main()
