"""What Estimator.train costs over a bare Session loop, for the CIFAR trainer's graph.

One process builds the CIFAR trainer's model_fn (WRN, CEB) twice on the same
input, a fixed random batch cached in the input pipeline:

* estimator: the Estimator the trainer builds (`wrn_main.build_estimator`
  with wrn_main's arguments for 50000 training images: checkpoints once per
  epoch, summaries and progress every 100 steps, the model_fn's progress and
  non-finite-loss hooks), trained by one `Estimator.train(steps=N)` call per
  round, as the trainer trains between evaluations;
* raw: the same model_fn's train op run by a bare tf.compat.v1.Session
  (benchmarks.common.RawLoop), nothing else.

The two are interleaved finely: a hook pauses each train call every --chunk
steps to run as many raw steps, so both meet the same moment of a shared
machine. Within a call the first 2 steps (each builds an executor) are left
out of the steady state, which keeps everything else the hooks do (progress
and summaries every 100 steps, the periodic checkpoint). The rest of a
call's time is its fixed cost: graph build, session creation, restore, the
graph files and checkpoint written at the start and the checkpoint at the
end of every call, and closing the session. Closing waits for tf.data's
autotuning thread (the trainer's input is autotuned too), which sleeps for
periods doubling up to 60 s: a call that lasts over a minute or so can wait
up to a minute more, so the fixed cost is shown per call. Wall time is
what a user waits; process CPU time is less disturbed by other processes on
a busy machine, so both are shown.

Prints examples/sec, the estimator/raw ratios (steady state; one call of
--steps steps; and projected for the trainer's default call, --epochs_per_eval
10 epochs = 3900 steps at batch 128, from the mean fixed cost), the
breakdown of the fixed cost and, last,
`estimator_over_raw_ratio=R estimator_over_raw_cpu_ratio=C` (steady state,
medians over calls; goal R >= 0.95).

    python -m benchmarks.estimator_overhead [--depth 10 --width 1 --batch_size 128 \
        --steps 400 --rounds 3]
"""
import argparse
import os
import statistics
import tempfile
import time

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '3')

import numpy as np  # pylint: disable=g-import-not-at-top
import tensorflow as tf  # pylint: disable=g-import-not-at-top

from benchmarks import common  # pylint: disable=g-import-not-at-top
from wrn_cifar import wrn_main  # pylint: disable=g-import-not-at-top

tf1 = tf.compat.v1

# The CIFAR-10 training set, which sets the trainer's epoch and so its cadence.
NUM_TRAIN_IMAGES = 50000
# Steps of each train call left out of its steady state: the first runs with
# the summary fetches, the second without; each builds an executor.
WARM_STEPS = 2


class _Interleave(tf1.train.SessionRunHook):
  """Pauses a train call every `chunk` steps to run as many raw steps, timing both.

  Only the steps after the first WARM_STEPS count. Times are common.clocks()
  arrays (wall, process CPU). The Estimator's exclude the pauses; whatever its
  hooks do between steps (summaries, the periodic checkpoint) falls in them.
  """

  def __init__(self, raw, chunk, steps):
    self._raw = raw
    self._chunk = chunk
    self._steps = steps
    self._step = 0
    self._pending = 0
    self.estimator = 0.0
    self.raw = 0.0

  def after_create_session(self, session, coord):
    """Notes when the session is ready: graph built, variables restored."""
    self.ready = common.clocks()

  def after_run(self, run_context, run_values):
    """After every `chunk` counted steps, and the last, runs as many raw steps."""
    now = common.clocks()
    self._step += 1
    if self._step <= WARM_STEPS:
      self.resumed = now
      return
    self._pending += 1
    if self._pending == self._chunk or self._step == self._steps:
      self.estimator += now - self.resumed
      self._raw.run(self._pending)
      self.resumed = common.clocks()
      self.raw += self.resumed - now
      self._pending = 0


class _SaveClock(tf1.train.CheckpointSaverListener):
  """Counts the checkpoints a train call writes and the seconds they take."""

  def __init__(self):
    self.count = 0
    self.seconds = 0.0

  def before_save(self, session, global_step_value):
    """Starts timing a save."""
    self._start = time.perf_counter()

  def after_save(self, session, global_step_value):
    """Adds a save's time."""
    self.count += 1
    self.seconds += time.perf_counter() - self._start


def trainer_setup(args, model_dir):
  """The CIFAR trainer's flags and params, as `wrn_main.run` derives them."""
  f = wrn_main.make_flags(['--model_dir', model_dir, '--depth', str(args.depth),
                           '--width', str(args.width), '--loss', 'ceb',
                           '--train_batch_size', str(args.batch_size)])
  return f, wrn_main.params_from_flags(f, NUM_TRAIN_IMAGES)


def estimator_call(estimator, input_fn, raw, args):
  """One `train(steps=N)` call interleaved with N - WARM_STEPS raw steps.

  Returns:
    dict of per-step times ('raw', 'steady': the Estimator's counted steps)
    and per-call times ('total': the call without the raw pauses, 'fixed':
    total minus N steady steps, and its parts 'setup', 'first_steps',
    'tail'), each a (wall, CPU) array; and the checkpoints written ('saves')
    and their wall seconds ('save_seconds').
  """
  clock, saves = _Interleave(raw, args.chunk, args.steps), _SaveClock()
  start = common.clocks()
  estimator.train(input_fn, steps=args.steps, hooks=[clock], saving_listeners=[saves])
  end = common.clocks()
  counted = args.steps - WARM_STEPS
  steady = clock.estimator / counted
  total = end - start - clock.raw
  fixed = total - args.steps * steady
  setup, tail = clock.ready - start, end - clock.resumed
  return {'raw': clock.raw / counted, 'steady': steady, 'total': total,
          'fixed': fixed, 'setup': setup, 'tail': tail, 'first_steps': fixed - setup - tail,
          'saves': saves.count, 'save_seconds': saves.seconds}


def _median(calls, key, clock=0):
  return statistics.median(np.atleast_1d(call[key])[clock] for call in calls)


def _seconds(values):
  return '/'.join('%.1f' % v for v in values)


def _row(name, batch, step_times, raw_step_times):
  """A table row: examples/sec, then estimator/raw in wall time and in CPU time."""
  wall = [raw[0] / est[0] for raw, est in zip(raw_step_times, step_times)]
  cpu = [raw[1] / est[1] for raw, est in zip(raw_step_times, step_times)]
  return (name, '%.1f' % (batch / statistics.median(t[0] for t in step_times)),
          '%.3f (%.3f-%.3f)' % (statistics.median(wall), min(wall), max(wall)),
          '%.3f' % statistics.median(cpu))


def report(args, calls, call_steps):
  """Prints the table of rates and ratios, and the breakdown of a train call."""
  batch, steps = args.batch_size, args.steps
  raw = [c['raw'] for c in calls]
  mean_fixed = np.mean([c['fixed'] for c in calls], axis=0)
  print('WRN-%d-%d CEB, batch %d, %d train calls of %d steps, raw steps in chunks of %d'
        % (args.depth, args.width, batch, args.rounds, steps, args.chunk))
  common.print_table(
      ('contender', 'examples/sec', 'estimator/raw wall (range)', 'estimator/raw CPU'), [
          _row('raw Session loop', batch, raw, raw),
          _row('Estimator, steady state', batch, [c['steady'] for c in calls], raw),
          _row('Estimator, call of %d steps' % steps, batch,
               [c['total'] / steps for c in calls], raw),
          # A call's fixed cost varies (see the session close below): project the mean.
          _row('Estimator, call of %d steps (projected)' % call_steps, batch,
               [c['steady'] + mean_fixed / call_steps for c in calls], raw)])
  saves = _median(calls, 'saves')
  print('fixed cost per train call %.2fs (mean; per call %s): medians %.2fs before the '
        'first step (graph, session, restore, graph files, first checkpoint), %.2fs in the '
        'first %d steps over the steady state, %.2fs after the last (checkpoint, session '
        'close; per call %s); %d checkpoints per call, %.2fs each'
        % (mean_fixed[0], _seconds(c['fixed'][0] for c in calls), _median(calls, 'setup'),
           _median(calls, 'first_steps'), WARM_STEPS, _median(calls, 'tail'),
           _seconds(c['tail'][0] for c in calls), saves,
           _median(calls, 'save_seconds') / max(saves, 1)))
  print('estimator_over_raw_ratio=%.3f estimator_over_raw_cpu_ratio=%.3f' % tuple(
      statistics.median(c['raw'][i] / c['steady'][i] for c in calls) for i in (0, 1)))


def parse_args(argv=None):
  """Parses the benchmark's flags."""
  parser = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument('--depth', type=int, default=10)
  parser.add_argument('--width', type=int, default=1)
  parser.add_argument('--batch_size', type=int, default=128)
  parser.add_argument('--rounds', type=int, default=3, help='timed train calls')
  parser.add_argument('--steps', type=int, default=400, help='steps per train call')
  parser.add_argument('--chunk', type=int, default=20,
                      help='Estimator steps between runs of as many raw steps')
  args = parser.parse_args(argv)
  if args.rounds < 1 or args.chunk < 1 or args.steps <= WARM_STEPS:
    parser.error('--rounds and --chunk must be positive, --steps above %d' % WARM_STEPS)
  return args


def main(argv=None):
  """Races the trainer's Estimator against the raw loop and prints the table."""
  args = parse_args(argv)
  tf1.logging.set_verbosity(tf1.logging.ERROR)
  with tempfile.TemporaryDirectory() as model_dir:
    f, params = trainer_setup(args, model_dir)
    input_fn = common.constant_batch_input_fn(wrn_main.IMAGE_SIZE, wrn_main.NUM_CLASSES)
    raw = common.RawLoop(wrn_main.wrn_model_fn, input_fn,
                         dict(params, batch_size=args.batch_size))
    estimator = wrn_main.build_estimator(f, params)
    raw.run(WARM_STEPS)
    estimator.train(input_fn, steps=WARM_STEPS)  # The first checkpoint.
    calls = [estimator_call(estimator, input_fn, raw, args) for _ in range(args.rounds)]
  report(args, calls, f.epochs_per_eval * params['steps_per_epoch'])


if __name__ == '__main__':
  main()
