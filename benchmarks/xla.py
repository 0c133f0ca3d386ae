"""XLA auto-clustering of the train step on CPU: step time with and without, side by side.

For each of two trainers' train steps, the CIFAR WRN (wrn_main's model_fn,
CEB, default WRN-16-4) and the ImageNet ResNet (resnet_main's model_fn, CEB,
default ResNet-18 on 224-pixel images), one process builds the step twice on
the same fixed batch (benchmarks.common.RawLoop, a bare Session): once with
the session's `global_jit_level` OFF and once ON_1 (auto-clustering), then
alternates timed rounds between the two. Prints the median step times, the
number of XLA clusters each session runs (the `_XlaRun` nodes of a step's
partitioned graph: zero means XLA did nothing) and, one line per model,
`xla_over_plain_step_time_ratio=R` (median of per-round ratios; below 1: XLA
is faster).

In TensorFlow 2.15, ON_1 alone clusters nothing on the CPU: the CPU must also
be made eligible with `TF_XLA_FLAGS=--tf_xla_cpu_global_jit`, a flag TF reads
once, at the process's first session run. This module adds it to
TF_XLA_FLAGS when imported; it has no effect where the jit level is OFF.

    python -m benchmarks.xla [--depth 16 --width 4 --batch_size 64 \
        --image_size 224 --resnet_batch_size 4 --rounds 5 --steps 3]
"""
import argparse
import os
import statistics

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '3')
os.environ['TF_XLA_FLAGS'] = os.environ.get('TF_XLA_FLAGS', '') + ' --tf_xla_cpu_global_jit'

from absl import flags  # pylint: disable=g-import-not-at-top
import tensorflow as tf  # pylint: disable=g-import-not-at-top

from benchmarks import common  # pylint: disable=g-import-not-at-top
from resnet_ceb import resnet_main  # pylint: disable=g-import-not-at-top
from wrn_cifar import wrn_main  # pylint: disable=g-import-not-at-top

tf1 = tf.compat.v1

# Untimed steps before the rounds: XLA compiles a cluster on its second run.
WARM_STEPS = 3
JIT_LEVELS = {'plain': tf1.OptimizerOptions.OFF, 'xla': tf1.OptimizerOptions.ON_1}


def session_config(jit_level):
  """A session config with this global jit level (what a trainer's --xla would set)."""
  config = tf1.ConfigProto()
  config.graph_options.optimizer_options.global_jit_level = jit_level
  return config


def xla_clusters(loop):
  """Runs one step and counts the XLA clusters it ran (`_XlaRun` nodes)."""
  metadata = tf1.RunMetadata()
  loop.session.run(loop.train_op, options=tf1.RunOptions(output_partition_graphs=True),
                   run_metadata=metadata)
  return sum(node.op == '_XlaRun' for graph in metadata.partition_graphs
             for node in graph.node)


def wrn_step(args):
  """The CIFAR trainer's WRN model_fn, params and input, at --depth, --width."""
  f = wrn_main.make_flags(['--model_dir', 'unused', '--depth', str(args.depth),
                           '--width', str(args.width), '--loss', 'ceb',
                           '--train_batch_size', str(args.batch_size)])
  params = dict(wrn_main.params_from_flags(f, 50000), batch_size=args.batch_size)
  name = 'WRN-%d-%d, %d px, batch %d' % (args.depth, args.width, wrn_main.IMAGE_SIZE,
                                          args.batch_size)
  return name, wrn_main.wrn_model_fn, params, common.constant_batch_input_fn(
      wrn_main.IMAGE_SIZE, wrn_main.NUM_CLASSES)


def resnet_step(args):
  """The ImageNet trainer's ResNet model_fn, params and input, at --resnet_depth."""
  f = flags.FlagValues()
  resnet_main.define_flags(f)
  f(['resnet_main', '--model_dir', 'unused', '--resnet_depth', str(args.resnet_depth),
     '--image_size', str(args.image_size), '--loss', 'ceb',
     '--train_batch_size', str(args.resnet_batch_size)])
  params = dict(resnet_main.params_from_flags(f), batch_size=args.resnet_batch_size)
  name = 'ResNet-%d, %d px, batch %d' % (args.resnet_depth, args.image_size,
                                          args.resnet_batch_size)
  return name, resnet_main.resnet_model_fn, params, common.constant_batch_input_fn(
      args.image_size, params['num_classes'])


def race(model_fn, params, input_fn, args):
  """Plain against XLA for one train step: median step seconds, clusters, ratio."""
  loops = {name: common.RawLoop(model_fn, input_fn, params, session_config(level))
           for name, level in JIT_LEVELS.items()}
  clusters = {name: xla_clusters(loop) for name, loop in loops.items()}
  for loop in loops.values():
    loop.run(WARM_STEPS)
  times = common.paired_rounds({name: lambda loop=loop: loop.run(args.steps) / args.steps
                                for name, loop in loops.items()}, args.rounds)
  medians = {name: statistics.median(t) for name, t in times.items()}
  return medians, clusters, common.median_ratio(times['xla'], times['plain'])


def parse_args(argv=None):
  """Parses the benchmark's flags."""
  parser = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument('--depth', type=int, default=16, help='WRN depth')
  parser.add_argument('--width', type=int, default=4, help='WRN width')
  parser.add_argument('--batch_size', type=int, default=64, help='WRN batch')
  parser.add_argument('--resnet_depth', type=int, default=18)
  parser.add_argument('--image_size', type=int, default=224, help='ResNet image side')
  parser.add_argument('--resnet_batch_size', type=int, default=4)
  parser.add_argument('--rounds', type=int, default=5)
  parser.add_argument('--steps', type=int, default=3, help='timed steps per round')
  args = parser.parse_args(argv)
  if args.rounds < 1 or args.steps < 1:
    parser.error('--rounds and --steps must be positive')
  return args


def main(argv=None):
  """Races plain against XLA-clustered train steps of both trainers; prints the table."""
  args = parse_args(argv)
  tf1.logging.set_verbosity(tf1.logging.ERROR)
  rows, ratios = [], []
  for build in (wrn_step, resnet_step):
    name, model_fn, params, input_fn = build(args)
    medians, clusters, ratio = race(model_fn, params, input_fn, args)
    rows.append((name, '%.3f' % medians['plain'], '%.3f' % medians['xla'],
                 '%d / %d' % (clusters['plain'], clusters['xla']), '%.3f' % ratio))
    ratios.append((name.split(',')[0], ratio))
  print('CPU train step (CEB), %d rounds x %d steps' % (args.rounds, args.steps))
  common.print_table(('model', 'plain s/step', 'xla s/step', 'clusters plain / xla',
                      'xla/plain'), rows)
  for name, ratio in ratios:
    print('%s xla_over_plain_step_time_ratio=%.3f' % (name, ratio))


if __name__ == '__main__':
  main()
