r"""Writes ImageNet TFRecords in the layout the TPU ResNet reference reads.

From a folder of `<wnid>/*.JPEG` (the training release's layout; sort the
validation images into wnid folders the same way first):

    python -m resnet_ceb.make_tfrecords --image_dir DIR --output_dir OUT \
        --split train --num_shards 1024

writes `OUT/train-00000-of-01024` ... with the reference's features:
`image/encoded` (JPEG bytes), `image/class/label` (1-based: 1 + the wnid's
index among the 1000 sorted ImageNet wnids), plus `image/class/synset`,
`image/format`, `image/height`, `image/width`, `image/channels`,
`image/colorspace` and `image/filename`. Images that are not RGB JPEGs (a few
ImageNet files are CMYK or PNG) are re-encoded as RGB JPEGs, as the
reference's conversion script does.

`--synthetic N` instead writes N random JPEGs per split (train and
validation) with random labels: a tiny ImageNet for tests and benchmarks.
"""
import io
import os
import random

from absl import app
from absl import flags
import numpy as np
from PIL import Image
import tensorflow as tf

from resnet_ceb import errors
from resnet_ceb import imagenet_classes

SPLITS = ('train', 'validation')
IMAGE_EXTENSIONS = ('.jpeg', '.jpg', '.png')
REENCODE_QUALITY = 95
SYNTHETIC_QUALITY = 90

FLAGS = flags.FLAGS


def define_flags(flag_values=FLAGS):
  """The tool's flags."""
  flags.DEFINE_string('image_dir', None, 'Folder of <wnid>/*.JPEG folders.',
                      flag_values=flag_values)
  flags.DEFINE_string('output_dir', None, 'Where the TFRecord shards go.',
                      flag_values=flag_values)
  flags.DEFINE_enum('split', 'train', list(SPLITS), 'Shard name prefix.',
                    flag_values=flag_values)
  flags.DEFINE_integer('num_shards', 1, 'Number of output files.',
                       flag_values=flag_values)
  flags.DEFINE_integer('synthetic', None, 'Write N random JPEGs per split '
                       'instead of reading --image_dir.', flag_values=flag_values)
  flags.DEFINE_integer('synthetic_image_size', 64, 'Side of the synthetic images.',
                       flag_values=flag_values)
  flags.DEFINE_integer('seed', 0, 'Shuffling and synthetic-data seed.',
                       flag_values=flag_values)


def _bytes_feature(value):
  return tf.train.Feature(bytes_list=tf.train.BytesList(value=[value]))


def _int64_feature(value):
  return tf.train.Feature(int64_list=tf.train.Int64List(value=[value]))


def make_example(jpeg_bytes, label, synset, height, width, filename):
  """One tf.train.Example with the reference's feature keys (label 1-based)."""
  return tf.train.Example(features=tf.train.Features(feature={
      'image/encoded': _bytes_feature(jpeg_bytes),
      'image/format': _bytes_feature(b'JPEG'),
      'image/class/label': _int64_feature(label),
      'image/class/synset': _bytes_feature(synset.encode()),
      'image/height': _int64_feature(height),
      'image/width': _int64_feature(width),
      'image/channels': _int64_feature(3),
      'image/colorspace': _bytes_feature(b'RGB'),
      'image/filename': _bytes_feature(filename.encode()),
  }))


def _encode_jpeg(image, quality):
  """A PIL image as JPEG bytes."""
  buffer = io.BytesIO()
  image.save(buffer, format='JPEG', quality=quality)
  return buffer.getvalue()


def read_as_rgb_jpeg(path):
  """The file's bytes if it is an RGB JPEG, else an RGB JPEG re-encoding; and its size."""
  with open(path, 'rb') as f:
    data = f.read()
  try:
    with Image.open(io.BytesIO(data)) as image:
      image.load()
      if image.format != 'JPEG' or image.mode != 'RGB':
        data = _encode_jpeg(image.convert('RGB'), REENCODE_QUALITY)
      return data, image.height, image.width
  except (OSError, SyntaxError) as e:  # PIL's errors for unreadable images.
    raise ValueError('%s is not a readable image: %s' % (path, e)) from e


def list_images(image_dir, wnids):
  """(path, label, wnid) for every image under image_dir/<wnid>/, sorted.

  Raises:
    FileNotFoundError: image_dir is missing or holds no images.
    ValueError: a subfolder is not one of the 1000 ImageNet wnids.
  """
  if not os.path.isdir(image_dir):
    raise FileNotFoundError('--image_dir=%s is not a directory' % image_dir)
  index = {wnid: i for i, wnid in enumerate(wnids)}
  entries = []
  for wnid in sorted(os.listdir(image_dir)):
    folder = os.path.join(image_dir, wnid)
    if not os.path.isdir(folder):
      continue
    if wnid not in index:
      raise ValueError('--image_dir=%s: folder %r is not an ImageNet wnid (see %s)'
                       % (image_dir, wnid, imagenet_classes.WNIDS_FILE))
    for name in sorted(os.listdir(folder)):
      if name.lower().endswith(IMAGE_EXTENSIONS):
        entries.append((os.path.join(folder, name), index[wnid] + 1, wnid))
  if not entries:
    raise FileNotFoundError('--image_dir=%s holds no <wnid>/*.JPEG images' % image_dir)
  return entries


def shard_paths(output_dir, split, num_shards):
  """The reference's shard names: <split>-00000-of-00004 etc."""
  return [os.path.join(output_dir, '%s-%05d-of-%05d' % (split, i, num_shards))
          for i in range(num_shards)]


def write_shards(examples, output_dir, split, num_shards):
  """Writes serialized examples round-robin into num_shards files, atomically.

  Each shard is written to a temporary name and renamed when complete, so an
  interrupted run never leaves a truncated shard under a final name.

  Returns:
    The shard paths.
  """
  os.makedirs(output_dir, exist_ok=True)
  paths = shard_paths(output_dir, split, num_shards)
  temps = [p + '.tmp' for p in paths]
  writers = [tf.io.TFRecordWriter(t) for t in temps]
  try:
    for i, example in enumerate(examples):
      writers[i % num_shards].write(example.SerializeToString())
  finally:
    for writer in writers:
      writer.close()
  for temp, path in zip(temps, paths):
    os.replace(temp, path)
  return paths


def convert_image_dir(image_dir, output_dir, split, num_shards, seed=0):
  """Converts image_dir/<wnid>/*.JPEG into split shards; training order shuffled.

  Returns:
    (shard paths, number of images).
  """
  entries = list_images(image_dir, imagenet_classes.imagenet_wnids())
  if split == 'train':
    random.Random(seed).shuffle(entries)

  def examples():
    for path, label, wnid in entries:
      data, height, width = read_as_rgb_jpeg(path)
      yield make_example(data, label, wnid, height, width, os.path.basename(path))

  return write_shards(examples(), output_dir, split, num_shards), len(entries)


def synthetic_examples(num_examples, image_size, rng, wnids):
  """Random smooth-ish JPEGs with random labels in 1..1000."""
  for i in range(num_examples):
    label = int(rng.randint(1, len(wnids) + 1))
    height = image_size + int(rng.randint(0, image_size // 2 + 1))
    coarse = rng.randint(0, 256, size=(4, 4, 3)).astype(np.uint8)
    image = Image.fromarray(coarse).resize((image_size, height), Image.BILINEAR)
    noise = rng.randint(-20, 21, size=(height, image_size, 3))
    pixels = np.clip(np.asarray(image, np.int32) + noise, 0, 255).astype(np.uint8)
    data = _encode_jpeg(Image.fromarray(pixels), SYNTHETIC_QUALITY)
    yield make_example(data, label, wnids[label - 1], height, image_size,
                       'synthetic_%06d.JPEG' % i)


def write_synthetic_imagenet(output_dir, num_per_split, image_size=64, seed=0,
                             num_shards=1):
  """Writes a tiny ImageNet of real JPEGs: train-* and validation-* shards.

  Images are image_size wide and image_size to 1.5 * image_size tall, so crops
  see non-square inputs as with real ImageNet.

  Returns:
    {split: list of shard paths}.
  """
  wnids = imagenet_classes.imagenet_wnids()
  rng = np.random.RandomState(seed)
  return {split: write_shards(
      synthetic_examples(num_per_split, image_size, rng, wnids),
      output_dir, split, num_shards) for split in SPLITS}


def validate_flags(f):
  """Raises ValueError naming the flag before anything is written."""
  if not f.output_dir:
    raise ValueError('--output_dir is required')
  if f.num_shards < 1:
    raise ValueError('--num_shards=%d must be positive' % f.num_shards)
  if f.synthetic is not None:
    if f.synthetic < 1:
      raise ValueError('--synthetic=%d must be positive' % f.synthetic)
    if f.synthetic_image_size < 8:
      raise ValueError('--synthetic_image_size=%d must be at least 8'
                       % f.synthetic_image_size)
  elif not f.image_dir:
    raise ValueError('--image_dir is required (or --synthetic N)')


def run(f):
  """Runs the tool for parsed flags; returns the shard paths written."""
  validate_flags(f)
  if f.synthetic is not None:
    shards = write_synthetic_imagenet(f.output_dir, f.synthetic,
                                      f.synthetic_image_size, f.seed, f.num_shards)
    paths = [p for split in SPLITS for p in shards[split]]
    print('wrote %d synthetic images per split to %d files in %s'
          % (f.synthetic, len(paths), f.output_dir))
    return paths
  paths, count = convert_image_dir(f.image_dir, f.output_dir, f.split,
                                   f.num_shards, f.seed)
  print('wrote %d images to %d %s shards in %s'
        % (count, len(paths), f.split, f.output_dir))
  return paths


def main(argv):
  """Entry point: runs the tool, printing `error: ...` (exit 2) for bad input."""
  del argv
  with errors.exit_on_bad_input():
    run(FLAGS)


if __name__ == '__main__':
  define_flags()
  app.run(main)
