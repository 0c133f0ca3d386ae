"""The whole tree is clean under the project's linter (ruff.toml: Google style, 2 spaces)."""
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_ruff_is_clean_on_the_whole_tree():
  done = subprocess.run([sys.executable, '-m', 'ruff', 'check', '--no-cache', ROOT],
                        cwd=ROOT, capture_output=True, text=True, check=False)
  assert done.returncode == 0, done.stdout + done.stderr
