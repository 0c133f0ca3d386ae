"""Throughput of the ImageNet training input pipeline, with and without AutoAugment.

Writes a small set of generated JPEG TFRecords (resnet_ceb.make_tfrecords,
images --source_size wide and up to 1.5x as tall, like typical ImageNet
photos), builds the trainer's training input_fn twice (AutoAugment policy v0
and none) and alternates short timed rounds between the two so machine noise
hits both alike. Each timed batch went through the whole pipeline: read,
parse, JPEG decode with the random crop, resize, flip, (AutoAugment,) batch.
Each round first pulls a few untimed batches to drain what the prefetch
buffer filled while the other pipeline was being timed. Prints per-round
medians and, last, `autoaugment_images_per_sec=N plain_images_per_sec=M`.

    python -m benchmarks.imagenet_input [--image_size 224] [--batch_size 32] [--rounds 3]
"""
import argparse
import os
import tempfile

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '3')

from benchmarks import common  # pylint: disable=g-import-not-at-top
from resnet_ceb import imagenet_input  # pylint: disable=g-import-not-at-top
from resnet_ceb import make_tfrecords  # pylint: disable=g-import-not-at-top

MODES = ('autoaugment', None)


def parse_args(argv=None):
  """Parses the benchmark's flags."""
  parser = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument('--num_images', type=int, default=256,
                      help='generated training images')
  parser.add_argument('--source_size', type=int, default=320,
                      help='width of the generated JPEGs')
  parser.add_argument('--image_size', type=int, default=224, help='model input side')
  parser.add_argument('--batch_size', type=int, default=32)
  parser.add_argument('--rounds', type=int, default=3, help='timed rounds per pipeline')
  parser.add_argument('--steps', type=int, default=4, help='timed batches per round')
  parser.add_argument('--warmup_steps', type=int, default=2,
                      help='untimed batches before each round')
  args = parser.parse_args(argv)
  for name in ('num_images', 'source_size', 'image_size', 'batch_size', 'rounds', 'steps'):
    if getattr(args, name) < 1:
      parser.error('--%s must be positive' % name)
  return args


def main(argv=None):
  """Generates the data, times both pipelines and prints the rates."""
  args = parse_args(argv)
  with tempfile.TemporaryDirectory() as data_dir:
    make_tfrecords.write_synthetic_imagenet(data_dir, args.num_images,
                                            args.source_size, seed=0, num_shards=4)
    params = {'batch_size': args.batch_size}
    iterators = {
        mode: iter(imagenet_input.ImageNetInput(
            True, data_dir, image_size=args.image_size, augment_name=mode).input_fn(params))
        for mode in MODES}
    medians = common.median_images_per_sec(iterators, args.batch_size, args.rounds,
                                           args.steps, args.warmup_steps)
  print('%d generated JPEGs %d px wide -> %d px, batch %d, %d rounds x %d steps: '
        'median images/sec autoaugment %.0f, plain %.0f'
        % (args.num_images, args.source_size, args.image_size, args.batch_size,
           args.rounds, args.steps, medians['autoaugment'], medians[None]))
  print('autoaugment_images_per_sec=%d plain_images_per_sec=%d'
        % (round(medians['autoaugment']), round(medians[None])))


if __name__ == '__main__':
  main()
