"""Screenshot a drift report (Evidently's HTML page) with headless Chromium, for the docs.

    uv run python tools/report_image.py REPORT.html OUTPUT.png

The generated project's docs/monitoring.md shows template/docs/images/drift-report.png, made
this way from a Level 3 project's `make monitor` report on shifted traffic. Chromium is Debian's
(`apt-get install chromium`, or `make system-deps` as root); tests/test_level3.py runs this on
a fresh report, and skips that test without Chromium.
"""

from __future__ import annotations

import shutil
import struct
import subprocess
import sys
import tempfile
from pathlib import Path

WIDTH, HEIGHT = 1280, 1400
# Headless, offline: no first-run, sync or update traffic (the machine may have no network).
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
)


def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if found := shutil.which(name):
            return found
    raise SystemExit("error: no Chromium on PATH (apt-get install chromium)")


def screenshot(
    report: Path,
    output: Path,
    width: int = WIDTH,
    height: int = HEIGHT,
    browser: str | None = None,
) -> Path:
    """`report` rendered at `width` x `height` into the PNG `output`, its scripts run first, by
    `browser` (default: the Chromium on PATH)."""
    with tempfile.TemporaryDirectory() as profile:
        subprocess.run(
            [
                browser or chromium(),
                *FLAGS,
                f"--user-data-dir={profile}",
                f"--window-size={width},{height}",
                "--virtual-time-budget=15000",  # let the page's plots draw
                f"--screenshot={output.resolve()}",
                report.resolve().as_uri(),
            ],
            check=True,
            capture_output=True,
            timeout=120,
        )
    return output


def png_size(path: Path) -> tuple[int, int]:
    """Width and height from a PNG's header."""
    header = path.read_bytes()[:24]
    if header[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError(f"{path} is not a PNG")
    width, height = struct.unpack(">II", header[16:24])
    return width, height


if __name__ == "__main__":
    written = screenshot(Path(sys.argv[1]), Path(sys.argv[2]))
    print(f"wrote {written}: {png_size(written)[0]}x{png_size(written)[1]}")
