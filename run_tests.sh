#!/usr/bin/env bash
# Runs the whole pytest suite, creating .venv with the pinned packages first if needed.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/scripts/bootstrap.sh"
ceb_bootstrap
cd "$ceb_root"
exec python -m pytest "$@"  # pytest.ini: testpaths = tests
