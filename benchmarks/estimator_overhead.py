"""What Estimator.train costs over a bare Session loop, for the CIFAR trainer's graph.

One process builds the CIFAR trainer's model_fn (WRN, CEB) twice on the same
input, a fixed random batch cached in the input pipeline:

* estimator: the Estimator the trainer builds (`train_utils.make_estimator`
  with wrn_main's arguments for 50000 training images: checkpoints once per
  epoch, summaries and progress every 100 steps, the model_fn's progress and
  non-finite-loss hooks), trained by one `Estimator.train(steps=N)` call per
  round, as the trainer does between evaluations;
* raw: the same model_fn's train op run N times by a bare tf.compat.v1.Session.

Rounds alternate between the two. A hook notes when each step ends, which
splits a train call into its steady state (steps 3..N, summaries and the
periodic checkpoint included) and its fixed cost (graph build, session
creation, restore, the checkpoints written at the start and end of every
call, the first steps' executor builds). Prints examples/sec of each, the
breakdown, and the ratios estimator/raw: within a call, per call of N steps,
and projected for the trainer's default call (--epochs_per_eval 10 epochs =
3900 steps) from the measured fixed cost. The last line is
`estimator_over_raw_ratio=R` (steady state; goal >= 0.95).

    python -m benchmarks.estimator_overhead [--depth 10 --width 1 --batch_size 128 \
        --steps 400 --rounds 3]
"""
import argparse
import os
import statistics
import tempfile
import time

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '3')

import tensorflow as tf  # pylint: disable=g-import-not-at-top

from benchmarks import common  # pylint: disable=g-import-not-at-top
from resnet_ceb import train_utils  # pylint: disable=g-import-not-at-top
from wrn_cifar import wrn_main  # pylint: disable=g-import-not-at-top

tf1 = tf.compat.v1

# The CIFAR-10 training set, which sets the trainer's epoch and so its cadence.
NUM_TRAIN_IMAGES = 50000
# Steps of each train call left out of its steady state: the first runs with
# the summary fetches, the second without; each builds an executor.
WARM_STEPS = 2


class _StepClock(tf1.train.SessionRunHook):
  """Notes when the session is ready and when each step, hooks and all, ends."""

  def after_create_session(self, session, coord):
    """Starts the step clock once the graph is built and the variables restored."""
    self.ready = time.perf_counter()
    self.step_ends = []

  def after_run(self, run_context, run_values):
    """Records the end of a step."""
    self.step_ends.append(time.perf_counter())


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


def trainer_estimator(f, params):
  """The Estimator `wrn_main.run` builds from these flags (keep the two in step)."""
  return train_utils.make_estimator(
      wrn_main.wrn_model_fn, f.model_dir, params, use_tpu=False,
      num_gpus=f.num_gpus, train_batch_size=f.train_batch_size,
      eval_batch_size=f.eval_batch_size,
      save_checkpoints_steps=f.save_checkpoints_steps or params['steps_per_epoch'],
      iterations_per_loop=params['log_every_n_steps'])


def _estimator_call(estimator, input_fn, steps):
  """One timed `train(steps=steps)` call: its total and its parts, in seconds."""
  clock, saves = _StepClock(), _SaveClock()
  start = time.perf_counter()
  estimator.train(input_fn, steps=steps, hooks=[clock], saving_listeners=[saves])
  end = time.perf_counter()
  ends = clock.step_ends
  steady = (ends[-1] - ends[WARM_STEPS - 1]) / (steps - WARM_STEPS)
  return {'total': end - start, 'steady': steady, 'fixed': end - start - steps * steady,
          'setup': clock.ready - start, 'tail': end - ends[-1],
          'saves': saves.count, 'save_seconds': saves.seconds}


def _median(calls, key):
  return statistics.median(call[key] for call in calls)


def report(args, raw_times, calls, call_steps):
  """Prints the table of rates and ratios, and the breakdown of a train call."""
  batch, steps = args.batch_size, args.steps
  raw_step = [t / steps for t in raw_times]
  steady = [c['steady'] for c in calls]
  projected = [c['steady'] + c['fixed'] / call_steps for c in calls]
  print('WRN-%d-%d CEB, batch %d, %d rounds x %d steps per train call'
        % (args.depth, args.width, batch, args.rounds, steps))
  common.print_table(('contender', 'examples/sec', 'estimator/raw'), [
      ('raw Session loop', '%.1f' % (batch / statistics.median(raw_step)), '1'),
      ('Estimator, steady state', '%.1f' % (batch / statistics.median(steady)),
       '%.3f' % common.median_ratio(raw_step, steady)),
      ('Estimator, call of %d steps' % steps,
       '%.1f' % (batch * steps / _median(calls, 'total')),
       '%.3f' % common.median_ratio(raw_times, [c['total'] for c in calls])),
      ('Estimator, call of %d steps (projected)' % call_steps,
       '%.1f' % (batch / statistics.median(projected)),
       '%.3f' % common.median_ratio(raw_step, projected))])
  print('fixed cost per train call %.2fs: graph+session+restore %.2fs, after the '
        'last step %.2fs, %.1f checkpoint saves of %.2fs each'
        % (_median(calls, 'fixed'), _median(calls, 'setup'), _median(calls, 'tail'),
           _median(calls, 'saves'),
           _median(calls, 'save_seconds') / max(_median(calls, 'saves'), 1)))
  print('estimator_over_raw_ratio=%.3f' % common.median_ratio(raw_step, steady))


def parse_args(argv=None):
  """Parses the benchmark's flags."""
  parser = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument('--depth', type=int, default=10)
  parser.add_argument('--width', type=int, default=1)
  parser.add_argument('--batch_size', type=int, default=128)
  parser.add_argument('--rounds', type=int, default=3)
  parser.add_argument('--steps', type=int, default=400,
                      help='steps per round: one train call, or raw steps')
  args = parser.parse_args(argv)
  if args.rounds < 1 or args.steps <= WARM_STEPS:
    parser.error('--rounds must be positive and --steps above %d' % WARM_STEPS)
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
    estimator = trainer_estimator(f, params)
    raw.run(WARM_STEPS)
    estimator.train(input_fn, steps=WARM_STEPS)  # The first checkpoint.
    results = common.paired_rounds({
        'raw': lambda: raw.run(args.steps),
        'estimator': lambda: _estimator_call(estimator, input_fn, args.steps)},
                                   args.rounds)
  report(args, results['raw'], results['estimator'],
         f.epochs_per_eval * params['steps_per_epoch'])


if __name__ == '__main__':
  main()
