r"""What pure-Python protobuf costs a short training: the reason for bootstrap's pin.

tensorflow-metadata 1.14.0 declares protobuf<4.21, and protobuf 3.20 has no
compiled wheel for Python 3.11, so pip alone installs pure-Python protobuf
there. Every Estimator call then serializes its graph in Python: graph.pbtxt,
each checkpoint's .meta file and the event file's graph. scripts/bootstrap.sh
installs the compiled protobuf (upb) over pip's choice.

This runs the same short CIFAR trainer process (wrn_main, WRN-10-1 CEB,
AutoAugment, fake data: one train call of --steps steps with a checkpoint
every other step, then its evaluation) under both implementations, the pure
one forced with PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION=python, alternating
over --rounds rounds. Printed: each process's wall and CPU seconds (imports
included) and, last, `python_over_compiled_wall=R python_over_compiled_cpu=C`
(medians of the paired ratios).

    python -m benchmarks.protobuf_impl [--rounds 3 --steps 4]
"""
import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time

from benchmarks import common

IMPLEMENTATIONS = {'python': {'PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION': 'python'},
                   'compiled': {}}


def _env(name):
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL='3')
  env.pop('PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION', None)
  env.update(IMPLEMENTATIONS[name])
  return env


def _implementation(name):
  """The protobuf implementation a child process gets under `name`'s environment."""
  probe = 'from google.protobuf.internal import api_implementation as a; print(a.Type())'
  return subprocess.run([sys.executable, '-c', probe], env=_env(name), check=True,
                        capture_output=True, text=True).stdout.strip()


def _training(name, steps, root):
  """A callable: one trainer process under `name`; returns (wall, CPU) seconds."""
  runs = []

  def run():
    model_dir = os.path.join(root, '%s-%d' % (name, len(runs)))
    runs.append(model_dir)
    argv = [sys.executable, '-m', 'wrn_cifar.wrn_main', '--model_dir=' + model_dir,
            '--fake_data', '--depth=10', '--width=1', '--loss=ceb', '--train_epochs=1',
            '--num_train_images=%d' % (128 * steps), '--num_eval_images=128',
            '--train_batch_size=128', '--augment_name=autoaugment', '--epochs_per_eval=1',
            '--save_checkpoints_steps=2']
    cpu = resource.getrusage(resource.RUSAGE_CHILDREN)
    wall = time.perf_counter()
    subprocess.run(argv, env=_env(name), check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)
    wall = time.perf_counter() - wall
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime + after.ru_stime) - (cpu.ru_utime + cpu.ru_stime)

  return run


def main():
  """Parses the flags, checks each environment's implementation, prints the ratios."""
  parser = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument('--rounds', type=int, default=3)
  parser.add_argument('--steps', type=int, default=4, help='training steps per process')
  args = parser.parse_args()
  found = {name: _implementation(name) for name in IMPLEMENTATIONS}
  if found['python'] != 'python' or found['compiled'] == 'python':
    sys.exit('error: expected pure-Python and compiled protobuf, got %s (run '
             'scripts/bootstrap.sh to install the compiled one)' % found)
  with tempfile.TemporaryDirectory() as root:
    seconds = common.paired_rounds(
        {name: _training(name, args.steps, root) for name in IMPLEMENTATIONS}, args.rounds)
  common.print_table(['protobuf', 'implementation', 'wall s per process', 'CPU s'], [
      [name, found[name], ' '.join('%.1f' % s[0] for s in seconds[name]),
       ' '.join('%.1f' % s[1] for s in seconds[name])] for name in IMPLEMENTATIONS])
  wall = common.median_ratio([s[0] for s in seconds['python']],
                             [s[0] for s in seconds['compiled']])
  cpu = common.median_ratio([s[1] for s in seconds['python']],
                            [s[1] for s in seconds['compiled']])
  print('python_over_compiled_wall=%.2f python_over_compiled_cpu=%.2f' % (wall, cpu))


if __name__ == '__main__':
  main()
