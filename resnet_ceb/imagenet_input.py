"""The ImageNet input pipeline of the TPU ResNet reference (imagenet_input.py).

`ImageNetInput(...).input_fn(params)` reads the TFRecords the reference's
conversion script (or `resnet_ceb.make_tfrecords`) writes: `train-*` and
`validation-*` files of tf.train.Examples with `image/encoded` (JPEG) and
`image/class/label` (1-based). Labels are shifted to 0-based and checked to
lie in 0..num_classes-1. Images come out as float pixels in [0, 255] (see
resnet_preprocessing), batched by `params['batch_size']`.

Unlike the reference, a missing folder or pattern fails at construction with
a FileNotFoundError, and errors raised while reading (a corrupt record, a bad
JPEG, a bad label) can be turned into a message naming --data_dir with
`reading_errors`. With `data_dir=None` or `fake_data=True` the pipeline
produces random images and labels (the reference's "null input"), for
plumbing and speed tests only.
"""
import contextlib
import functools
import os

import tensorflow as tf

from resnet_ceb import imagenet_classes
from resnet_ceb import resnet_preprocessing

# Per-file read buffer, as the reference.
READ_BUFFER_BYTES = 8 * 1024 * 1024
CYCLE_LENGTH = 16
SHUFFLE_BUFFER = 1024
CACHED_SHUFFLE_BUFFER = 16 * 1024
FAKE_SEED = 0


class ImageNetDataError(ValueError):
  """Reading the TFRecords failed; the message names --data_dir and the cause."""


def file_pattern(data_dir, is_training):
  """The reference's shard pattern: data_dir/train-* or data_dir/validation-*."""
  return os.path.join(data_dir, 'train-*' if is_training else 'validation-*')


def check_files(data_dir, is_training):
  """Lists the split's files, raising FileNotFoundError naming --data_dir if none."""
  pattern = file_pattern(data_dir, is_training)
  if not tf.io.gfile.isdir(data_dir):
    raise FileNotFoundError('--data_dir=%s is not a directory (expected TFRecord '
                            'files matching %s)' % (data_dir, pattern))
  files = tf.io.gfile.glob(pattern)
  if not files:
    raise FileNotFoundError('--data_dir=%s holds no files matching %s (make them '
                            'with python -m resnet_ceb.make_tfrecords)'
                            % (data_dir, pattern))
  return sorted(files)


def _input_pipeline_error(error):
  """Whether a TF error was raised by a tf.data iterator rather than the model."""
  return 'GetNext' in error.message


_BOILERPLATE = ('Graph execution error', 'Detected at node', 'Node:')


def _error_cause(message):
  """The line of a TF error message that says what went wrong."""
  lines = [line.strip() for line in message.splitlines()
           if line and not line[0].isspace() and not line.startswith(_BOILERPLATE)]
  return lines[-1] if lines else message.strip()


@contextlib.contextmanager
def reading_errors(data_dir):
  """Re-raises input-pipeline read errors as ImageNetDataError naming --data_dir.

  A corrupt or truncated record surfaces as DataLossError, an undecodable JPEG
  or a label outside 1..num_classes as InvalidArgumentError; both only when a
  batch is read, deep inside Estimator.train/evaluate.
  """
  try:
    yield
  except (tf.errors.DataLossError, tf.errors.InvalidArgumentError) as e:
    if not _input_pipeline_error(e):
      raise
    raise ImageNetDataError(
        '--data_dir=%s: reading the ImageNet TFRecords failed (%s: %s). A record '
        'is corrupt or truncated, an image is not a decodable JPEG, or a label '
        'is out of range; rewrite the files with python -m '
        'resnet_ceb.make_tfrecords.'
        % (data_dir, type(e).__name__, _error_cause(e.message))) from e


class ImageNetInput:
  """The reference's ImageNet input: TFRecords -> preprocessed (image, label) batches.

  Args:
    is_training: read train-* with random crops, shuffling and repetition;
      else validation-* once, in a fixed order, center-cropped.
    data_dir: folder of the TFRecords; None means fake data.
    image_size: output side in pixels.
    augment_name: None or 'autoaugment' (training only).
    use_bfloat16: emit bfloat16 images (TPU).
    fake_data: random images and labels instead of files.
    cache: cache the serialized records in memory (the reference's --use_cache).
    num_classes: labels must lie in 1..num_classes in the files.
    num_examples: evaluation reads at most this many records.
    seed: None: fast non-deterministic reading, as the reference's sloppy
      interleave. An int: training reads epoch e in an order seeded by
      (seed, e), and each example's crop, flip and AutoAugment are stateless
      functions of (seed, e, position), so `input_fn(params, start_step)`
      resumes the stream exactly (--use_cache is then ignored).

  Raises:
    FileNotFoundError: data_dir or its split's files are missing.
    ValueError: unknown augment_name.
  """

  def __init__(self, is_training, data_dir, image_size=224, augment_name=None,
               use_bfloat16=False, fake_data=False, cache=False,
               num_classes=imagenet_classes.NUM_CLASSES, num_examples=None, seed=None):
    resnet_preprocessing.check_augment_name(augment_name)
    self.is_training = is_training
    self.data_dir = None if fake_data or not data_dir else data_dir
    self.image_size = image_size
    self.augment_name = augment_name
    self.use_bfloat16 = use_bfloat16
    self.cache = cache
    self.num_classes = num_classes
    self.num_examples = num_examples
    self.seed = seed
    self._records_per_epoch = {}
    if self.data_dir:
      check_files(self.data_dir, is_training)

  @property
  def file_pattern(self):
    """This split's shard pattern under data_dir."""
    return file_pattern(self.data_dir, self.is_training)

  def dataset_parser(self, value, example_seed=None):
    """Parses one serialized Example into (image, 0-based label).

    `example_seed` (shape [2]) makes the training augmentation stateless.
    """
    parsed = tf.io.parse_single_example(value, {
        'image/encoded': tf.io.FixedLenFeature((), tf.string, ''),
        'image/class/label': tf.io.FixedLenFeature([], tf.int64, -1),
    })
    image = resnet_preprocessing.preprocess_image(
        parsed['image/encoded'], self.is_training, self.image_size,
        self.use_bfloat16, self.augment_name if self.is_training else None,
        example_seed)
    return image, self._checked_label(parsed['image/class/label'])

  def _checked_label(self, label):
    """Subtracts one (labels are 1-based in the files) after checking the range."""
    valid = tf.logical_and(label >= 1, label <= self.num_classes)
    check = tf.debugging.Assert(valid, [
        'ImageNet label outside 1..%d in %s: image/class/label =' % (
            self.num_classes, self.file_pattern), label])
    with tf.control_dependencies([check]):
      return tf.cast(label, tf.int32) - 1

  def _fake_example(self, index):
    """A random image and label, a pure function of the index."""
    seed = tf.stack([tf.constant(FAKE_SEED, tf.int64), index])
    image = tf.random.stateless_uniform(
        [self.image_size, self.image_size, 3], seed, maxval=255.0)
    label = tf.random.stateless_uniform(
        [], seed + 1, maxval=self.num_classes, dtype=tf.int32)
    return tf.cast(image, tf.bfloat16 if self.use_bfloat16 else tf.float32), label

  def _records(self, host, num_hosts):
    """The serialized Examples of this host's share of the files (unseeded)."""
    files = tf.data.Dataset.list_files(self.file_pattern, shuffle=self.is_training)
    files = files.shard(num_hosts, host)
    if self.is_training and not self.cache:
      files = files.repeat()
    records = files.interleave(
        functools.partial(tf.data.TFRecordDataset, buffer_size=READ_BUFFER_BYTES),
        cycle_length=CYCLE_LENGTH, num_parallel_calls=tf.data.AUTOTUNE,
        deterministic=not self.is_training)
    if self.cache:
      records = records.cache()
    if not self.is_training:
      return records
    buffer = CACHED_SHUFFLE_BUFFER if self.cache else SHUFFLE_BUFFER
    records = records.shuffle(buffer)
    return records.repeat() if self.cache else records

  def _host_files(self, host, num_hosts):
    """This host's share of the split's files, in sorted order."""
    return check_files(self.data_dir, self.is_training)[host::num_hosts]

  def _count_records(self, files):
    """Records in `files` (one read of the data, once per input), for skipping epochs."""
    key = tuple(files)
    if key not in self._records_per_epoch:
      # A Python reader: input_fn runs while the Estimator builds its graph.
      self._records_per_epoch[key] = sum(
          1 for path in files for _ in tf.compat.v1.io.tf_record_iterator(path))
    return self._records_per_epoch[key]

  def _epoch_records(self, files, epoch):
    """Epoch `epoch`'s records with their stateless example seeds [seed_e, position]."""
    epoch_seed = self.seed * 2**20 + epoch
    shuffled_files = tf.data.Dataset.from_tensor_slices(files).shuffle(
        len(files), seed=epoch_seed)
    records = shuffled_files.interleave(
        functools.partial(tf.data.TFRecordDataset, buffer_size=READ_BUFFER_BYTES),
        cycle_length=CYCLE_LENGTH, num_parallel_calls=tf.data.AUTOTUNE,
        deterministic=True)
    records = records.shuffle(SHUFFLE_BUFFER, seed=epoch_seed).enumerate()
    return records.map(
        lambda position, record: (record, tf.stack([epoch_seed, position])))

  def _seeded_train_dataset(self, host, num_hosts, start_example):
    """The seeded training stream from example `start_example` on.

    Whole epochs are skipped without reading them (after one count of the
    records); only the remainder is read and dropped, unparsed.
    """
    files = self._host_files(host, num_hosts)
    start_epoch, offset = 0, start_example
    if start_example:
      start_epoch, offset = divmod(start_example, self._count_records(files))
    epochs = tf.data.Dataset.range(start_epoch, 2**62)
    records = epochs.flat_map(functools.partial(self._epoch_records, files))
    return records.skip(offset).map(self.dataset_parser,
                                    num_parallel_calls=tf.data.AUTOTUNE)

  def make_source_dataset(self, host=0, num_hosts=1, start_example=0):
    """Parsed (image, label) examples, before batching.

    `start_example` skips that many training examples of a seeded stream.
    """
    if self.data_dir is None:
      dataset = tf.data.Dataset.range(start_example, 2**62).map(self._fake_example)
    elif self.is_training and self.seed is not None:
      dataset = self._seeded_train_dataset(host, num_hosts, start_example)
    else:
      dataset = self._records(host, num_hosts).map(
          self.dataset_parser, num_parallel_calls=tf.data.AUTOTUNE,
          deterministic=not self.is_training)
    if not self.is_training and self.num_examples:
      dataset = dataset.take(self.num_examples)
    return dataset

  def input_fn(self, params, start_step=0):
    """TPUEstimator input_fn: batches of (images [B, H, W, 3], labels [B]).

    Training drops the last partial batch (and so does evaluation on TPU,
    which needs static shapes); evaluation off TPU keeps it. With a seed,
    training starts at global step `start_step`'s first example.
    """
    batch_size = params['batch_size']
    host, num_hosts = 0, 1
    if 'context' in params:
      host = params['context'].current_input_fn_deployment()[1]
      num_hosts = params['context'].num_hosts
    drop_remainder = self.is_training or bool(params.get('use_tpu'))
    dataset = self.make_source_dataset(host, num_hosts, start_step * batch_size)
    dataset = dataset.batch(batch_size, drop_remainder=drop_remainder)
    return dataset.prefetch(tf.data.AUTOTUNE)


def image_serving_input_fn(image_size=224):
  """Serving input of JPEG bytes ('image_bytes'), center-cropped as in eval."""
  image_bytes = tf.compat.v1.placeholder(tf.string, [None], name='image_bytes')
  images = tf.map_fn(
      lambda b: resnet_preprocessing.preprocess_image(b, False, image_size),
      image_bytes, fn_output_signature=tf.float32)
  return tf.estimator.export.TensorServingInputReceiver(
      images, {'image_bytes': image_bytes})


def pixel_serving_input_fn(image_size=224):
  """Serving input of float pixels [B, image_size, image_size, 3] in [0, 255]."""
  images = tf.compat.v1.placeholder(
      tf.float32, [None, image_size, image_size, 3], name='images')
  return tf.estimator.export.TensorServingInputReceiver(images, {'images': images})
