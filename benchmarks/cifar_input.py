"""Throughput of the CIFAR-10 training input pipeline, with and without AutoAugment.

Builds the trainer's training input_fn twice (--augment autoaugment and none)
over the same in-memory images, then alternates short timed rounds between the
two so machine noise hits both alike. Each round first pulls a few untimed
batches to drain what the prefetch buffer filled while the other pipeline was
being timed. Prints per-round medians and, last,
`autoaugment_images_per_sec=N plain_images_per_sec=M`.

    python -m benchmarks.cifar_input [--data_dir DIR] [--batch_size 128] [--rounds 5]
"""
import argparse
import os

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '3')

from benchmarks import common  # pylint: disable=g-import-not-at-top
from wrn_cifar import cifar_input  # pylint: disable=g-import-not-at-top

MODES = ('autoaugment', 'none')


def parse_args(argv=None):
  """Parses the benchmark's flags."""
  parser = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument('--data_dir', default=None,
                      help='local CIFAR-10 python or binary distribution; fake images if unset')
  parser.add_argument('--num_fake', type=int, default=2048,
                      help='fake training images when --data_dir is unset')
  parser.add_argument('--batch_size', type=int, default=128)
  parser.add_argument('--rounds', type=int, default=5, help='timed rounds per pipeline')
  parser.add_argument('--steps', type=int, default=20, help='timed batches per round')
  parser.add_argument('--warmup_steps', type=int, default=3,
                      help='untimed batches before each round')
  args = parser.parse_args(argv)
  for name in ('num_fake', 'batch_size', 'rounds', 'steps'):
    if getattr(args, name) < 1:
      parser.error('--%s must be positive' % name)
  return args


def main(argv=None):
  """Measures both pipelines side by side and prints their rates."""
  args = parse_args(argv)
  images, labels = cifar_input.load_dataset(args.data_dir, 'train',
                                            fake_data=not args.data_dir,
                                            num_fake=args.num_fake)
  params = {'batch_size': args.batch_size}
  iterators = {mode: iter(cifar_input.build_input_fn(images, labels, True, mode, seed=0)(params))
               for mode in MODES}
  medians = common.median_images_per_sec(iterators, args.batch_size, args.rounds,
                                         args.steps, args.warmup_steps)
  source = args.data_dir or '%d fake images' % args.num_fake
  print('%s, batch %d, %d rounds x %d steps: median images/sec autoaugment %.0f, plain %.0f'
        % (source, args.batch_size, args.rounds, args.steps, medians['autoaugment'],
           medians['none']))
  print('autoaugment_images_per_sec=%d plain_images_per_sec=%d'
        % (round(medians['autoaugment']), round(medians['none'])))


if __name__ == '__main__':
  main()
