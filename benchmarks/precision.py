"""bfloat16 against float32: the trainers' own train steps, side by side in one process.

For the CIFAR trainer (wrn_main's model_fn, CEB, default WRN-16-4 at batch
128) one process builds four train steps, each run by a bare Session
(benchmarks.common.RawLoop): float32 and --precision=bfloat16, each fed once
by the trainer's real input pipeline (`cifar_input.build_input_fn` over
CIFAR-10 from --data_dir with the trainer's AutoAugment defaults; unseeded,
as without --deterministic) and once by a constant batch (the model alone).
Then the ImageNet trainer's (resnet_main's model_fn, CEB, default ResNet-50
on 224-pixel images at batch 8) on a constant batch, in both precisions.
Rounds alternate between the contenders of a pair (benchmarks.common.
paired_rounds); each round first runs --warmup_steps untimed steps, so
batches one pipeline prefetched while another ran do not count.

Prints whether /proc/cpuinfo reports the bfloat16 instructions oneDNN can
use (avx512_bf16, amx_bf16), a table of median step times, one ratio line
per pair, and last the CIFAR trainer's with the real input:
`bfloat16_over_float32_step_time=R` (median of per-round ratios of step
time; below 1: bfloat16 is faster; issue 20's goal R <= 0.67).

    python -m benchmarks.precision [--data_dir ../shared/data/cifar10 \
        --depth 16 --width 4 --batch_size 128 --resnet_depth 50 \
        --image_size 224 --resnet_batch_size 8 --rounds 5 --steps 5]
"""
import argparse
import os
import statistics

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '3')

from absl import flags  # pylint: disable=g-import-not-at-top
import tensorflow as tf  # pylint: disable=g-import-not-at-top

from benchmarks import common  # pylint: disable=g-import-not-at-top
from resnet_ceb import precision  # pylint: disable=g-import-not-at-top
from resnet_ceb import resnet_main  # pylint: disable=g-import-not-at-top
from wrn_cifar import cifar_input  # pylint: disable=g-import-not-at-top
from wrn_cifar import wrn_main  # pylint: disable=g-import-not-at-top

tf1 = tf.compat.v1

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_DATA_DIR = os.path.join(os.path.dirname(REPO_ROOT), 'shared', 'data', 'cifar10')
CPU_FLAGS = ('avx512_bf16', 'amx_bf16')


def cpu_bf16_flags(path='/proc/cpuinfo'):
  """{flag: reported?} for CPU_FLAGS, from the first `flags` line of `path`."""
  reported = set()
  if os.path.exists(path):
    with open(path) as cpuinfo:
      for line in cpuinfo:
        if line.startswith('flags'):
          reported = set(line.split(':', 1)[1].split())
          break
  return {flag: flag in reported for flag in CPU_FLAGS}


def wrn_params(args, num_images, precision_name):
  """The CIFAR trainer's params for these flags in one precision."""
  f = wrn_main.make_flags(['--model_dir', 'unused', '--depth', str(args.depth),
                           '--width', str(args.width), '--loss', 'ceb',
                           '--train_batch_size', str(args.batch_size),
                           '--precision', precision_name])
  return dict(wrn_main.params_from_flags(f, num_images), batch_size=args.batch_size)


def resnet_params(args, precision_name):
  """The ImageNet trainer's params for these flags in one precision."""
  f = flags.FlagValues()
  resnet_main.define_flags(f)
  f(['resnet_main', '--model_dir', 'unused', '--resnet_depth', str(args.resnet_depth),
     '--image_size', str(args.image_size), '--loss', 'ceb',
     '--train_batch_size', str(args.resnet_batch_size), '--precision', precision_name])
  return dict(resnet_main.params_from_flags(f), batch_size=args.resnet_batch_size)


def race(model_fn, params_of, input_fn_of, args):
  """float32 against bfloat16 for one train step: median s/step of each, and the ratio.

  Args:
    model_fn: the trainer's model_fn.
    params_of: precision name -> params.
    input_fn_of: precision name -> a fresh input_fn (one pipeline per step).
    args: the parsed flags (rounds, steps, warmup_steps).
  """
  loops = {name: common.RawLoop(model_fn, input_fn_of(name), params_of(name))
           for name in precision.PRECISIONS}

  def timed(loop):
    loop.run(args.warmup_steps)
    return loop.run(args.steps) / args.steps

  times = common.paired_rounds({name: lambda loop=loop: timed(loop)
                                for name, loop in loops.items()}, args.rounds)
  for loop in loops.values():
    loop.session.close()
  medians = {name: statistics.median(t) for name, t in times.items()}
  return medians, common.median_ratio(times[precision.BFLOAT16], times[precision.FLOAT32])


def wrn_races(args):
  """The CIFAR step with the real input, then on a constant batch: (name, medians, ratio)."""
  images, labels = cifar_input.load_dataset(args.data_dir, 'train')
  name = 'WRN-%d-%d CEB, batch %d' % (args.depth, args.width, args.batch_size)

  def params_of(precision_name):
    return wrn_params(args, len(images), precision_name)

  def real_input(unused_precision):
    return cifar_input.build_input_fn(images, labels, True, 'autoaugment')

  def constant_input(unused_precision):
    return common.constant_batch_input_fn(wrn_main.IMAGE_SIZE, wrn_main.NUM_CLASSES)

  real = race(wrn_main.wrn_model_fn, params_of, real_input, args)
  constant = race(wrn_main.wrn_model_fn, params_of, constant_input, args)
  return [(name + ', AutoAugment input (%d images)' % len(images),) + real,
          (name + ', constant batch',) + constant]


def resnet_race(args):
  """The ImageNet step on a constant batch: (name, medians, ratio)."""
  name = 'ResNet-%d CEB, %d px, batch %d, constant batch' % (
      args.resnet_depth, args.image_size, args.resnet_batch_size)
  params = {p: resnet_params(args, p) for p in precision.PRECISIONS}
  medians, ratio = race(
      resnet_main.resnet_model_fn, params.get,
      lambda unused: common.constant_batch_input_fn(args.image_size,
                                                    params['float32']['num_classes']),
      args)
  return name, medians, ratio


def parse_args(argv=None):
  """Parses the benchmark's flags."""
  parser = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument('--data_dir', default=DEFAULT_DATA_DIR,
                      help='CIFAR-10 python or binary distribution (default: %(default)s)')
  parser.add_argument('--depth', type=int, default=16, help='WRN depth')
  parser.add_argument('--width', type=int, default=4, help='WRN width')
  parser.add_argument('--batch_size', type=int, default=128, help='WRN batch')
  parser.add_argument('--resnet_depth', type=int, default=50)
  parser.add_argument('--image_size', type=int, default=224, help='ResNet image side')
  parser.add_argument('--resnet_batch_size', type=int, default=8)
  common.add_round_flags(parser)
  args = parser.parse_args(argv)
  common.check_round_flags(parser, args)
  if not os.path.isdir(args.data_dir):
    parser.error('--data_dir=%s is no folder: give a CIFAR-10 copy' % args.data_dir)
  return args


def main(argv=None):
  """Races float32 against bfloat16 train steps of both trainers; prints the table."""
  args = parse_args(argv)
  tf1.logging.set_verbosity(tf1.logging.ERROR)
  print('CPU reports: %s' % ', '.join('%s=%s' % (flag, 'yes' if present else 'no')
                                      for flag, present in cpu_bf16_flags().items()))
  rows = wrn_races(args) + [resnet_race(args)]
  print('train step, %d rounds x %d steps (+%d warm-up)'
        % (args.rounds, args.steps, args.warmup_steps))
  common.print_table(('step', 'float32 s/step', 'bfloat16 s/step', 'bfloat16/float32'), [
      (name, '%.3f' % medians['float32'], '%.3f' % medians['bfloat16'], '%.3f' % ratio)
      for name, medians, ratio in rows])
  for name, _, ratio in rows[1:]:
    print('%s: bfloat16_over_float32=%.3f' % (name, ratio))
  print('bfloat16_over_float32_step_time=%.3f' % rows[0][2])


if __name__ == '__main__':
  main()
