# Sourced by run_cifar.sh, run_imagenet.sh and run_tests.sh.
# Picks a Python 3.9-3.11, creates or refreshes .venv with the pinned packages
# when it is missing or setup.py changed, and activates it.
ceb_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

ceb_python_ok() {
  "$1" -c 'import sys; sys.exit(0 if (3, 9) <= sys.version_info[:2] <= (3, 11) else 1)' 2>/dev/null
}

ceb_find_python() {
  local candidate
  for candidate in "${PYTHON:-}" python3.11 python3.10 python3.9 python3 python; do
    [[ -n "$candidate" ]] || continue
    command -v "$candidate" >/dev/null 2>&1 || continue
    if ceb_python_ok "$candidate"; then
      echo "$candidate"
      return 0
    fi
  done
  return 1
}

ceb_bootstrap() {
  local venv="$ceb_root/.venv" stamp want py
  want="$(cat "$ceb_root/setup.py" | sha256sum | cut -d' ' -f1)"
  stamp="$venv/.ceb-setup-sha256"
  if [[ -x "$venv/bin/python" ]] && ceb_python_ok "$venv/bin/python" \
      && [[ -f "$stamp" ]] && [[ "$(cat "$stamp")" == "$want" ]]; then
    source "$venv/bin/activate"
    return 0
  fi
  if ! py="$(ceb_find_python)"; then
    local found
    found="$(python3 --version 2>&1 || echo 'no python3 on PATH')"
    echo "error: this project needs Python 3.9, 3.10 or 3.11 (TensorFlow 2.15 has no" \
         "wheel for other versions); found: $found. Install one of them, or point" \
         "PYTHON=/path/to/python3.11 at it, and run again." >&2
    return 1
  fi
  echo "Setting up $venv with $("$py" --version 2>&1) (one-time, a few minutes)..." >&2
  rm -rf "$venv"
  "$py" -m venv "$venv" || { echo "error: could not create $venv" >&2; return 1; }
  "$venv/bin/python" -m pip install --quiet --upgrade pip >&2 || true
  if ! "$venv/bin/python" -m pip install --quiet -e "$ceb_root[test,plots]" >&2; then
    echo "error: installing the pinned packages into $venv failed (see above)." >&2
    return 1
  fi
  echo "$want" > "$stamp"
  source "$venv/bin/activate"
}
