"""The README's commands refuse a Python other than 3.9-3.11 with a clear message."""
import os
import shutil
import subprocess

from conftest import REPO_ROOT


def test_wrong_python_gets_a_clear_message(tmp_path):
  root = tmp_path / 'repo'
  (root / 'scripts').mkdir(parents=True)
  for name in ('setup.py', 'run_tests.sh', 'scripts/bootstrap.sh'):
    shutil.copy(os.path.join(REPO_ROOT, name), root / name)
  # A PATH whose only Python is a 3.12 impostor.
  bin_dir = tmp_path / 'bin'
  bin_dir.mkdir()
  for tool in ('bash', 'cat', 'cut', 'dirname', 'sha256sum', 'rm'):
    os.symlink(shutil.which(tool), bin_dir / tool)
  fake = bin_dir / 'python3'
  fake.write_text('#!/bin/sh\n[ "$1" = "--version" ] && echo "Python 3.12.1" && exit 0\n'
                  'exit 1\n')
  fake.chmod(0o755)
  env = {'PATH': str(bin_dir), 'HOME': str(tmp_path)}
  result = subprocess.run(['bash', str(root / 'run_tests.sh')], env=env,
                          capture_output=True, text=True, timeout=60)
  assert result.returncode != 0
  assert 'needs Python 3.9, 3.10 or 3.11' in result.stderr
  assert 'Python 3.12.1' in result.stderr
  # The way out for a machine whose only Python is newer: a 3.11 beside it, named in PYTHON,
  # with the command that was run (docs/SETUP.md says which tools were checked).
  assert 'uv python install 3.11 && PYTHON=$(uv python find 3.11) ./run_tests.sh' in result.stderr
  assert ('pyenv install 3.11 && PYTHON=$(pyenv prefix 3.11)/bin/python3.11 ./run_tests.sh'
          in result.stderr)
  assert not (root / '.venv').exists()


def test_protobuf_is_the_compiled_one():
  # scripts/bootstrap.sh installs it over pip's choice: pure-Python protobuf makes every
  # Estimator call serialize its graph in Python (docs/SETUP.md, "The compiled protobuf").
  from google.protobuf.internal import api_implementation
  assert api_implementation.Type() in ('upb', 'cpp')
