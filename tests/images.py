"""Local stand-ins for the container images that generated Dockerfiles build FROM, and the wheels
an air-gapped image build installs: no container registry can be reached here, and a build
cannot reach PyPI either (its TLS does not verify through this network).

- `python:<version>-slim-trixie`: a minimal Debian root filesystem with the distribution's
  python3 (mmdebstrap, then `podman import`). Debian ships one Python per release, so the suite
  follows the Python version: bookworm has 3.11 (the template's default), trixie 3.13.
- `ghcr.io/astral-sh/uv:<version>`: the uv binary at /uv, which is all the Dockerfiles copy from it.

Both are kept in podman's storage; a later run finds them with `podman image exists` and reuses
them. An image of that name that was pulled from a registry is used as it is.

Prepare them before a test run (about a minute):  uv run python tests/images.py
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

from helpers import ROOT, copier_config, find_links, load_extension, run

# Where `podman run` of the image test needs a containers.conf (tools/system-deps.sh writes it
# when run as root): this sandbox refuses rlimits above its own, and podman asks for more.
CONTAINERS_CONF_HINT = (
    "podman cannot start containers here; /etc/containers/containers.conf needs "
    '[containers] default_ulimits = ["nofile=4096:4096", "nproc=4096:4096"] and '
    '[engine] runtime = "runc" (`make system-deps` as root writes it)'
)
DEBIAN_SUITES = {"3.11": "bookworm", "3.13": "trixie"}
# Marks an image as made here, so that nobody mistakes it for the registry's.
STAND_IN_LABEL = "io.github.mlops-golden-path.stand-in"


def podman(
    *args: str, timeout: float = 600, check: bool = True
) -> subprocess.CompletedProcess[str]:
    return run(["podman", *args], ROOT, timeout=timeout, check=check)


def image_exists(tag: str) -> bool:
    return podman("image", "exists", tag, check=False).returncode == 0


def python_tag(python_version: str) -> str:
    return f"docker.io/library/python:{python_version}-slim-trixie"


def uv_tag(uv_version: str) -> str:
    return f"ghcr.io/astral-sh/uv:{uv_version}"


def make_python_image(python_version: str) -> None:
    suite = DEBIAN_SUITES.get(python_version)
    if suite is None:
        raise ValueError(
            f"no Debian release ships Python {python_version} as python3; "
            f"a stand-in can be made for {', '.join(DEBIAN_SUITES)}"
        )
    with tempfile.TemporaryDirectory(prefix="python-base-") as tmp:
        rootfs = Path(tmp) / "rootfs.tar"
        # minbase: dpkg, apt, bash, coreutils, passwd (useradd); python3-venv is what the
        # official image's `python -m venv` offers. Docs, man pages and translations left out.
        run(
            [
                "mmdebstrap",
                "--quiet",
                "--variant=minbase",
                "--include=python3,python3-venv,python-is-python3",
                "--dpkgopt=path-exclude=/usr/share/doc/*",
                "--dpkgopt=path-include=/usr/share/doc/*/copyright",
                "--dpkgopt=path-exclude=/usr/share/man/*",
                "--dpkgopt=path-exclude=/usr/share/locale/*",
                "--dpkgopt=path-exclude=/usr/share/info/*",
                "--format=tar",
                suite,
                rootfs,
            ],
            ROOT,
            timeout=900,
        )
        podman(
            "import",
            "--quiet",
            "--change",
            "ENV=PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "--change",
            "ENV=LANG=C.UTF-8",
            "--change",
            f"LABEL={STAND_IN_LABEL}=debian-{suite}-python3",
            "--change",
            'CMD=["python3"]',
            str(rootfs),
            python_tag(python_version),
        )


def uv_binary(uv_version: str) -> Path:
    """The uv executable itself (not a shim such as pyenv's): uv tells its child processes
    where it is in $UV."""
    found = run(["uv", "run", "--no-project", "--quiet", "printenv", "UV"], ROOT).stdout.strip()
    path = Path(found)
    version = run([path, "--version"], ROOT).stdout.split()[1]
    if version != uv_version:
        raise AssertionError(f"{path} is uv {version}; the image needs {uv_version} (make setup)")
    return path


def make_uv_image(uv_version: str) -> None:
    """An image whose only file is /uv: `COPY --from=uv /uv /bin/uv` is all a Dockerfile takes."""
    binary = uv_binary(uv_version)
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        info = tar.gettarinfo(str(binary), arcname="uv")
        info.uid = info.gid = 0
        info.uname = info.gname = "root"
        info.mode = 0o755
        with binary.open("rb") as data:
            tar.addfile(info, data)
    with tempfile.NamedTemporaryFile(suffix=".tar") as archive:
        archive.write(buffer.getvalue())
        archive.flush()
        podman(
            "import",
            "--quiet",
            "--change",
            f"LABEL={STAND_IN_LABEL}=host-uv-{uv_version}",
            "--change",
            'ENTRYPOINT=["/uv"]',
            archive.name,
            uv_tag(uv_version),
        )


def ensure_base_images(python_version: str, uv_version: str) -> dict[str, float | None]:
    """Make whichever stand-in is missing: the seconds each one took (None: it was there)."""
    seconds: dict[str, float | None] = {}
    for tag, make in (
        (python_tag(python_version), lambda: make_python_image(python_version)),
        (uv_tag(uv_version), lambda: make_uv_image(uv_version)),
    ):
        seconds[tag] = None
        if not image_exists(tag):
            start = time.monotonic()
            make()
            seconds[tag] = round(time.monotonic() - start, 1)
    return seconds


def prune_stale_builds(days: int = 7) -> None:
    """Remove untagged images built on a stand-in (they inherit its label) that no image uses
    and that are older than `days`: old build caches, so that storage does not grow run by run.
    Newer ones stay, so that a rebuild reuses its dependency layers."""
    podman(
        "image",
        "prune",
        "--force",
        "--filter",
        f"label={STAND_IN_LABEL}",
        "--filter",
        f"until={days * 24}h",
    )


# --- wheels for an air-gapped build ---------------------------------------------------------


def manylinux_platforms(newest_glibc_minor: int = 28) -> list[str]:
    """pip matches `--platform` literally: every glibc tag up to the newest the image accepts."""
    tags = [f"manylinux_2_{minor}_x86_64" for minor in range(newest_glibc_minor, 16, -1)]
    return [*tags, "manylinux2014_x86_64", "manylinux_2_5_x86_64", "manylinux1_x86_64"]


def serve_requirements(project: Path, python_version: str, output: Path) -> None:
    """The serve group, resolved and hashed for linux x86_64: what `uv export --locked
    --only-group serve` writes from a lock. Compiled from pyproject.toml instead, because a
    generated project has no uv.lock before `make setup`. Should the group ever name torch, the
    local CPU build (PIP_FIND_LINKS) is held, as in helpers.prepare_env."""
    command: list[str | Path] = [
        "uv",
        "pip",
        "compile",
        "--quiet",
        "--no-header",
        "--no-annotate",
        "--generate-hashes",
        "--no-sources",  # the cpu torch backend's index (download.pytorch.org) is unreachable
        "--python-version",
        python_version,
        "--python-platform",
        "x86_64-manylinux_2_28",
        "--group",
        f"{project / 'pyproject.toml'}:serve",
        "--output-file",
        output,
    ]
    for folder in find_links():
        command += ["--find-links", folder]
    local_torch = sorted(
        wheel for folder in find_links() for wheel in Path(folder).glob("torch-*+cpu-*.whl")
    )
    with tempfile.TemporaryDirectory() as tmp:
        if local_torch:
            constraints = Path(tmp) / "constraints.txt"
            constraints.write_text(f"torch=={local_torch[-1].name.split('-')[1]}\n")
            command += ["--constraint", constraints]
        env = {key: value for key, value in os.environ.items() if not key.startswith("UV_")}
        run(command, project, env=env, timeout=300)


def download_wheels(requirements: Path, dest: Path, python_version: str) -> None:
    """`pip download` of exactly the pinned, hashed requirements, for the image's platform."""
    command = [
        "uv",
        "tool",
        "run",
        "--quiet",
        "--from",
        "pip==26.3",
        "pip",
        "download",
        "--quiet",
        "--no-deps",
        "--only-binary=:all:",
        "--implementation",
        "cp",
        "--python-version",
        python_version,
        "--dest",
        str(dest),
        "--requirement",
        str(requirements),
    ]
    for platform in manylinux_platforms():
        command += ["--platform", platform]
    run(command, dest, timeout=900)


def default_versions() -> tuple[str, str]:
    """The Python version a generated project targets by default, and the uv it requires."""
    return (
        str(copier_config()["python_version"]["default"]),
        load_extension("toolchain").UV_VERSION,
    )


def main() -> int:
    for tag, seconds in ensure_base_images(*default_versions()).items():
        print(f"{tag}: " + ("already there" if seconds is None else f"made in {seconds} s"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
