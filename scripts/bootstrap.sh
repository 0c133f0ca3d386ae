# Sourced by run_cifar.sh, run_imagenet.sh and run_tests.sh.
# Picks a Python 3.9-3.11, creates or refreshes .venv with the pinned packages
# when it is missing or setup.py changed, and activates it.
ceb_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# TensorFlow's C++ start-up chatter (CUDA probes, grappler notes) hides the real output.
export TF_CPP_MIN_LOG_LEVEL="${TF_CPP_MIN_LOG_LEVEL:-3}"

# tensorflow-metadata 1.14.0 declares protobuf<4.21, and protobuf 3.20 has no compiled
# wheel for Python 3.11, so pip's choice there is pure-Python protobuf: every Estimator
# call then serializes its graph (graph.pbtxt, each checkpoint's .meta, the event file)
# in Python, 2.5x the whole time of a 4-step AutoAugment training (docs/SETUP.md,
# "The compiled protobuf").
# The generated code of tensorflow-metadata 1.14.0 is the kind protobuf 4 reads, and
# TensorFlow 2.15 allows <5, so the compiled protobuf goes in over pip's choice.
ceb_protobuf='protobuf==4.25.3'

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
  local venv="$ceb_root/.venv" stamp want py log="$ceb_root/.venv-install.log"
  want="$({ cat "$ceb_root/setup.py"; echo "$ceb_protobuf"; } | sha256sum | cut -d' ' -f1)"
  stamp="$venv/.ceb-setup-sha256"
  if [[ -f "$stamp" ]] && [[ "$(cat "$stamp")" == "$want" ]] \
      && ceb_python_ok "$venv/bin/python"; then
    source "$venv/bin/activate"
    return 0
  fi
  if ! ceb_python_ok "$venv/bin/python"; then
    if ! py="$(ceb_find_python)"; then
      echo "error: this project needs Python 3.9, 3.10 or 3.11 (TensorFlow 2.15 has" \
           "no wheel for other versions); found: $(python3 --version 2>&1 ||" \
           "echo 'no python3 on PATH'). Install a 3.11 beside the system one, name it in PYTHON," \
           "e.g. with uv: uv python install 3.11 && PYTHON=\$(uv python find 3.11)" \
           "./${0##*/}; or with pyenv: pyenv install 3.11 &&" \
           "PYTHON=\$(pyenv prefix 3.11)/bin/python3.11 ./${0##*/} (docs/SETUP.md)." >&2
      return 1
    fi
    echo "Creating $venv with $("$py" --version 2>&1)..." >&2
    rm -rf "$venv"
    "$py" -m venv "$venv" || { echo "error: could not create $venv" >&2; return 1; }
  fi
  echo "Installing the pinned packages into $venv (a few minutes the first time)..." >&2
  if ! { "$venv/bin/python" -m pip install -e "$ceb_root[test,plots]" \
         && "$venv/bin/python" -m pip install --no-deps "$ceb_protobuf"; } >"$log" 2>&1; then
    tail -n 30 "$log" >&2
    echo "error: installing the pinned packages into $venv failed; full log: $log" >&2
    return 1
  fi
  echo "$want" > "$stamp"
  source "$venv/bin/activate"
}
