#!/usr/bin/env bash
# Set up (or update) the project's virtual environment in .venv: Python 3.11, every dependency pinned by
# constraints.txt, the `mlops` package installed in editable mode with its dev extra.
set -euo pipefail
cd "$(dirname "$0")/.."

python_bin="${PYTHON:-}"
if [ -z "$python_bin" ]; then
  for candidate in python3.11 python3; do
    if command -v "$candidate" >/dev/null 2>&1 && "$candidate" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then
      python_bin="$candidate"; break
    fi
  done
fi
if [ -z "$python_bin" ]; then
  echo "setup: Python 3.11 is required (set PYTHON=/path/to/python3.11)" >&2
  exit 1
fi

# The Models page test (tests/ui, marker `browser`) drives Debian's headless Chromium through its chromedriver
# (Selenium Manager cannot download a driver here). Installed when missing and this user may (root, apt-get).
# Checked at the paths the test uses (tests/ui/test_models_page.py), where the Debian packages put them: a
# chromium elsewhere on PATH (a snap, /usr/local/bin) would not be found by the test.
if [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/chromedriver ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "setup: installing Debian's chromium and chromium-driver (for the browser test) ..."
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver
  else
    echo "setup: chromium and chromium-driver are missing; the browser test needs them (apt-get install chromium chromium-driver)" >&2
  fi
fi

stamp=.venv/.installed
wanted="$(cat constraints.txt pyproject.toml | sha256sum | cut -d' ' -f1)"
if [ -x .venv/bin/python ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$wanted" ]; then
  echo "setup: .venv is up to date"
  exit 0
fi
[ -x .venv/bin/python ] || "$python_bin" -m venv .venv
echo "setup: installing into .venv (pinned by constraints.txt) ..."
.venv/bin/python -m pip install --quiet --upgrade "pip>=24"
.venv/bin/python -m pip install --quiet -c constraints.txt -e ".[dev]"
echo "$wanted" > "$stamp"
echo "setup: done"
