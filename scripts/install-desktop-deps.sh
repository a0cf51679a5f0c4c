#!/usr/bin/env bash
# Installs the Debian/Ubuntu packages deskpilot's desktop needs (only the missing ones; sudo
# when not root). The package list lives in the package, src/deskpilot/install.py, so a pip
# install has the same step: `deskpilot doctor --install` or `python -m deskpilot.install`.
# This wrapper runs it from a clone before any venv exists; arguments pass through
# (--dry-run, --required).
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
PYTHONPATH="$here/src${PYTHONPATH:+:$PYTHONPATH}" exec "${PYTHON:-python3}" -m deskpilot.install "$@"
