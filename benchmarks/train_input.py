"""Does the CIFAR input pipeline slow training? Real input against a constant batch.

One process builds the CIFAR trainer's train step (wrn_main's model_fn, CEB)
twice, each run by a bare Session (benchmarks.common.RawLoop):

* real: fed by the trainer's own input_fn over CIFAR-10 loaded from --data_dir
  (`cifar_input.build_input_fn` with the trainer's defaults: shuffle, the
  AutoAugment policy, pad-and-crop, flip, Cutout; unseeded, as without
  --deterministic);
* constant: fed one fixed batch cached in the input pipeline, so its input
  costs nothing.

Rounds alternate between the two; each round first runs --warmup_steps
untimed steps, so the batches the real pipeline prefetched while the other
contender ran do not count. The pipeline's threads share the machine's cores
with the model's, which is what this measures. Prints examples/sec of each,
the time to the first batch after the input_fn is rebuilt (paid once per
train call of the trainer's train/evaluate cycle) and, last,
`real_over_constant_input_ratio=R real_over_constant_cpu_ratio=C`, the
medians of per-round ratios of examples/sec by wall time (goal R >= 0.97)
and by this process's CPU time (the pipeline's extra work, which on a busy
machine shows more steadily than its wall-time cost).

    python -m benchmarks.train_input --data_dir ../shared/data/cifar10 \
        [--depth 16 --width 4 --batch_size 128 --rounds 5 --steps 5]
"""
import argparse
import os
import statistics
import time

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '3')

import tensorflow as tf  # pylint: disable=g-import-not-at-top

from benchmarks import common  # pylint: disable=g-import-not-at-top
from wrn_cifar import cifar_input  # pylint: disable=g-import-not-at-top
from wrn_cifar import wrn_main  # pylint: disable=g-import-not-at-top

tf1 = tf.compat.v1


def trainer_params(args, images):
  """The CIFAR trainer's flags and params for these training images."""
  f = wrn_main.make_flags(['--model_dir', 'unused', '--data_dir', args.data_dir,
                           '--depth', str(args.depth), '--width', str(args.width),
                           '--loss', 'ceb', '--train_batch_size', str(args.batch_size)])
  params = wrn_main.params_from_flags(f, len(images))
  return f, dict(params, batch_size=args.batch_size)


def first_batch_seconds(input_fn, params):
  """Seconds from a fresh input_fn's iterator to its first batch."""
  with tf.Graph().as_default():
    iterator = tf1.data.make_initializable_iterator(input_fn(params))
    batch = iterator.get_next()
    with tf1.Session() as session:
      start = time.perf_counter()
      session.run(iterator.initializer)
      session.run(batch)
      return time.perf_counter() - start


def _timed_round(loop, warmup_steps, steps):
  """Untimed warm-up steps, then the (wall, CPU) seconds of `steps` steps."""
  loop.run(warmup_steps)
  start = common.clocks()
  loop.run(steps)
  return common.clocks() - start


def report(args, augment, num_images, times, first_batch):
  """Prints the table of rates and the wall-time and CPU-time ratios."""
  wall, cpu = (common.median_ratio([t[i] for t in times['constant']],
                                   [t[i] for t in times['real']]) for i in (0, 1))
  print('WRN-%d-%d CEB, batch %d, %d training images (%s), %d rounds x %d steps'
        % (args.depth, args.width, args.batch_size, num_images, augment,
           args.rounds, args.steps))
  rate = {name: args.batch_size * args.steps / statistics.median(t[0] for t in runs)
          for name, runs in times.items()}
  common.print_table(('input', 'examples/sec', 'real/constant wall', 'real/constant CPU'), [
      ('constant batch', '%.1f' % rate['constant'], '1', '1'),
      ('real pipeline', '%.1f' % rate['real'], '%.3f' % wall, '%.3f' % cpu)])
  print('first batch of a rebuilt input_fn after %.2fs' % first_batch)
  print('real_over_constant_input_ratio=%.3f real_over_constant_cpu_ratio=%.3f'
        % (wall, cpu))


def parse_args(argv=None):
  """Parses the benchmark's flags."""
  parser = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument('--data_dir', required=True,
                      help='CIFAR-10 python or binary distribution (or its parent)')
  parser.add_argument('--depth', type=int, default=16)
  parser.add_argument('--width', type=int, default=4)
  parser.add_argument('--batch_size', type=int, default=128)
  common.add_round_flags(parser)
  args = parser.parse_args(argv)
  common.check_round_flags(parser, args)
  return args


def main(argv=None):
  """Races the real input pipeline against a constant batch and prints the table."""
  args = parse_args(argv)
  tf1.logging.set_verbosity(tf1.logging.ERROR)
  images, labels = cifar_input.load_dataset(args.data_dir, 'train')
  f, params = trainer_params(args, images)
  real_fn = cifar_input.build_input_fn(images, labels, True, f.augment_name)
  first_batch = first_batch_seconds(real_fn, params)
  loops = {'real': common.RawLoop(wrn_main.wrn_model_fn, real_fn, params),
           'constant': common.RawLoop(
               wrn_main.wrn_model_fn,
               common.constant_batch_input_fn(wrn_main.IMAGE_SIZE, wrn_main.NUM_CLASSES),
               params)}
  times = common.paired_rounds(
      {name: lambda loop=loop: _timed_round(loop, args.warmup_steps, args.steps)
       for name, loop in loops.items()}, args.rounds)
  report(args, f.augment_name, len(images), times, first_batch)


if __name__ == '__main__':
  main()
