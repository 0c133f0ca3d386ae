"""Result and params files survive SIGKILL during their writes.

A child process rewrites one JSON file in a tight loop through
`fileio.atomic_write_json`; it is killed at many random moments and the file
must always load, whole, as one of the versions written. (Checkpoints killed
mid-write are covered by test_determinism's kill points.)
"""
import os
import random
import signal
import subprocess
import sys
import time

from conftest import REPO_ROOT

from resnet_ceb import fileio

KILLS = 30
# Big enough that one write spans many kernel write calls.
WRITER = '''
import sys
from resnet_ceb import fileio
path, i = sys.argv[1], 0
while True:
  i += 1
  fileio.atomic_write_json(path, {"version": i, "values": [i] * 200000})
  print(i, flush=True)
'''


def _kill_writer(path, delay):
  proc = subprocess.Popen([sys.executable, '-c', WRITER, path], cwd=REPO_ROOT,
                          stdout=subprocess.PIPE, text=True)
  proc.stdout.readline()  # At least one complete write.
  time.sleep(delay)
  proc.send_signal(signal.SIGKILL)
  proc.wait()
  proc.stdout.close()


def test_json_written_atomically_loads_after_any_kill(tmp_path):
  path = str(tmp_path / 'results.json')
  draw = random.Random(6)
  versions = []
  for _ in range(KILLS):
    _kill_writer(path, draw.uniform(0.0, 0.3))
    result = fileio.read_json(path)
    assert result['values'] == [result['version']] * 200000
    versions.append(result['version'])
  # Temp files of killed writes may remain, hidden; the result is always whole.
  assert os.listdir(str(tmp_path)).count('results.json') == 1
  assert len(set(versions)) > 1
