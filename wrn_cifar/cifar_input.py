"""CIFAR-10 loading and the tf.data input pipeline of the Wide ResNet trainer.

Images come from one of three sources, picked by `load_dataset`:

* a local copy of the CIFAR-10 python (pickle) or binary distribution
  (`--data_dir`), read straight into memory by `load_cifar10`;
* tensorflow_datasets' `cifar10`, which needs a prepared copy or network access;
* random images from `fake_cifar10`, for plumbing tests only.

`build_input_fn` turns the in-memory arrays into a TPUEstimator-style
`input_fn(params)`. Images stay in pixel units [0, 255]: the model normalizes
internally so that PGD attacks can work on raw pixels.
"""
import collections
import functools
import os
import pickle
import socket
import threading

import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds

from resnet_ceb import autoaugment
from wrn_cifar import wrn_model

IMAGE_SIZE = 32
NUM_CHANNELS = 3
NUM_CLASSES = 10
PIXELS_PER_IMAGE = IMAGE_SIZE * IMAGE_SIZE * NUM_CHANNELS  # 3072
BINARY_RECORD_BYTES = 1 + PIXELS_PER_IMAGE  # One label byte, then the pixels.
PAD_PIXELS = 4
AUGMENTS = ('none', 'autoaugment')
# The --autoaugment_policy values and the resnet_ceb.autoaugment policy each
# names: the released training code's 95 sub-policies (the default; see
# docs/FIDELITY.md) or the 25 the AutoAugment paper prints.
AUTOAUGMENT_POLICIES = {'released': 'cifar10_released', 'paper25': 'cifar10'}
DEFAULT_AUTOAUGMENT_POLICY = 'released'
# Side of the Cutout square that ends the AutoAugment pipeline (0: none).
CUTOUT_SIZE = 16

# How build_input_fn augments training images.
_TrainAugment = collections.namedtuple('_TrainAugment',
                                       ['augment', 'policy', 'cutout_size'])
# Spacing of the per-example seeds of different --seed values (2^40 examples).
_SEED_STRIDE = 2**40
SPLITS = ('train', 'test')

PYTHON_DIR = 'cifar-10-batches-py'
BINARY_DIR = 'cifar-10-batches-bin'
_TRAIN_BATCHES = tuple('data_batch_%d' % i for i in range(1, 6))
_TEST_BATCH = 'test_batch'
_BINARY_SUFFIX = '.bin'

# tfds' cifar10 builder downloads from this host; probing it first turns an
# offline machine into a quick error rather than a long stall.
TFDS_DOWNLOAD_HOST = 'www.cs.toronto.edu'
TFDS_DOWNLOAD_PORT = 443
_PROBE_TIMEOUT_SECS = 3.0


class CifarDataError(ValueError):
  """A CIFAR-10 source is missing or malformed; the message says how to fix it."""


def _data_error(data_dir, path, problem):
  """Builds a CifarDataError that names the flag, the file and the problem."""
  return CifarDataError('--data_dir %s: %s: %s' % (data_dir, path, problem))


def _check_split(split):
  """Raises ValueError unless split is 'train' or 'test'."""
  if split not in SPLITS:
    raise ValueError('split must be one of %s, got %r' % (SPLITS, split))


def _batch_names(split):
  """Returns the batch file stems (without the binary suffix) of a split."""
  _check_split(split)
  return _TRAIN_BATCHES if split == 'train' else (_TEST_BATCH,)


def _find_layout(data_dir):
  """Locates the batch files under data_dir.

  Args:
    data_dir: the batch folder itself, or a parent holding `cifar-10-batches-py`
      or `cifar-10-batches-bin`.

  Returns:
    (folder, suffix): the folder holding the batches and '' for the python
    layout or '.bin' for the binary one.

  Raises:
    CifarDataError: data_dir is missing or holds no CIFAR-10 batch file.
  """
  if not os.path.isdir(data_dir):
    raise _data_error(data_dir, data_dir, 'no such directory')
  stems = _TRAIN_BATCHES + (_TEST_BATCH,)
  for folder in (data_dir, os.path.join(data_dir, PYTHON_DIR),
                 os.path.join(data_dir, BINARY_DIR)):
    for suffix in ('', _BINARY_SUFFIX):
      if any(os.path.isfile(os.path.join(folder, s + suffix)) for s in stems):
        return folder, suffix
  raise _data_error(
      data_dir, data_dir,
      'no CIFAR-10 batch files found; expected the python distribution '
      '(%s/ with data_batch_1..5 and test_batch) or the binary distribution '
      '(%s/ with data_batch_1.bin..data_batch_5.bin and test_batch.bin), '
      'in this folder or in a subfolder of that name' % (PYTHON_DIR, BINARY_DIR))


def _check_labels(data_dir, path, labels):
  """Returns labels as int32 after checking they are integers in 0..9."""
  labels = np.asarray(labels)
  if labels.ndim != 1 or (labels.size and labels.dtype.kind not in 'iu'):
    raise _data_error(data_dir, path,
                      'expected a flat list of integer labels, got shape %s '
                      'dtype %s' % (labels.shape, labels.dtype))
  if labels.size and (labels.min() < 0 or labels.max() >= NUM_CLASSES):
    raise _data_error(data_dir, path,
                      'labels must be in 0..%d, found %d..%d' %
                      (NUM_CLASSES - 1, labels.min(), labels.max()))
  return labels.astype(np.int32)


def _get_key(batch, name):
  """Reads a key stored as bytes (as in the official files) or as str."""
  if name.encode() in batch:
    return batch[name.encode()]
  return batch.get(name)


def _read_python_batch(data_dir, path):
  """Reads one pickled batch into (flat uint8 pixels [N, 3072], int32 labels).

  The official files are pickles, so only point --data_dir at trusted copies:
  unpickling can run arbitrary code.
  """
  try:
    with open(path, 'rb') as f:
      batch = pickle.load(f, encoding='bytes')
  except Exception as e:  # Any unpickling failure means a damaged file.
    raise _data_error(data_dir, path,
                      'truncated or unreadable pickle (%s: %s); expected a '
                      'CIFAR-10 python batch' % (type(e).__name__, e)) from e
  if not isinstance(batch, dict):
    raise _data_error(data_dir, path, 'expected a pickled dict, got %s' %
                      type(batch).__name__)
  data, labels = _get_key(batch, 'data'), _get_key(batch, 'labels')
  if data is None or labels is None:
    raise _data_error(data_dir, path, "expected keys 'data' and 'labels'")
  data = np.asarray(data)
  if data.ndim != 2 or data.shape[1] != PIXELS_PER_IMAGE or data.dtype != np.uint8:
    raise _data_error(data_dir, path,
                      "expected 'data' of N x %d uint8, got shape %s dtype %s" %
                      (PIXELS_PER_IMAGE, data.shape, data.dtype))
  labels = _check_labels(data_dir, path, labels)
  if len(labels) != len(data):
    raise _data_error(data_dir, path,
                      "'data' holds %d images but 'labels' holds %d" %
                      (len(data), len(labels)))
  return data, labels


def _read_binary_batch(data_dir, path):
  """Reads one binary batch into (flat uint8 pixels [N, 3072], int32 labels)."""
  raw = np.fromfile(path, dtype=np.uint8)
  if raw.size == 0 or raw.size % BINARY_RECORD_BYTES:
    raise _data_error(data_dir, path,
                      'size %d bytes is not a positive whole number of %d-byte '
                      'records (1 label byte + %d pixel bytes)' %
                      (raw.size, BINARY_RECORD_BYTES, PIXELS_PER_IMAGE))
  records = raw.reshape(-1, BINARY_RECORD_BYTES)
  return records[:, 1:], _check_labels(data_dir, path, records[:, 0])


def _planar_to_hwc(data):
  """Turns rows of channel-planar R, G, B planes into [N, 32, 32, 3] images."""
  planes = data.reshape(-1, NUM_CHANNELS, IMAGE_SIZE, IMAGE_SIZE)
  return np.ascontiguousarray(planes.transpose(0, 2, 3, 1))


def load_cifar10(data_dir, split):
  """Loads one split of a local CIFAR-10 copy into memory.

  Batch files may hold any number of images, so partial copies load too.

  Args:
    data_dir: folder of the python or binary distribution, or its parent.
    split: 'train' (data_batch_1..5, concatenated in order) or 'test'.

  Returns:
    (images, labels): uint8 [N, 32, 32, 3] and int32 [N].

  Raises:
    CifarDataError: the folder, a batch file or its contents are not CIFAR-10.
    ValueError: split is not 'train' or 'test'.
  """
  stems = _batch_names(split)
  folder, suffix = _find_layout(data_dir)
  read = _read_binary_batch if suffix else _read_python_batch
  data, labels = [], []
  for stem in stems:
    path = os.path.join(folder, stem + suffix)
    if not os.path.isfile(path):
      raise _data_error(data_dir, path,
                        'batch file missing; the %s split needs %s' %
                        (split, ', '.join(s + suffix for s in stems)))
    batch_data, batch_labels = read(data_dir, path)
    data.append(batch_data)
    labels.append(batch_labels)
  return _planar_to_hwc(np.concatenate(data)), np.concatenate(labels)


def _host_reachable(host, port, timeout):
  """Returns whether a TCP connection to host:port opens within timeout.

  The attempt runs in a daemon thread because name resolution has no timeout
  of its own and can hang on a machine without network.
  """
  result = []

  def probe():
    try:
      socket.create_connection((host, port), timeout=timeout).close()
      result.append(True)
    except OSError:
      result.append(False)

  thread = threading.Thread(target=probe, daemon=True)
  thread.start()
  thread.join(timeout)
  return bool(result and result[0])


def _tfds_error(reason):
  """Builds the CifarDataError that lists both ways to get CIFAR-10."""
  return CifarDataError(
      'CIFAR-10 is not available through tensorflow_datasets (%s). Either pass '
      '--data_dir DIR pointing at a local copy of the CIFAR-10 python '
      '(cifar-10-batches-py) or binary (cifar-10-batches-bin) distribution, or '
      'give this machine network access so that tfds can download cifar10.' %
      reason)


def load_tfds_cifar10(split, tfds_data_dir=None):
  """Loads one split of tensorflow_datasets' `cifar10` into memory.

  A prepared copy in tfds_data_dir is used without touching the network.
  Otherwise the download host is probed for a few seconds before tfds
  downloads, so an offline machine fails at once instead of stalling.

  Args:
    split: 'train' or 'test'.
    tfds_data_dir: tfds data folder; None means tfds' default.

  Returns:
    (images, labels): uint8 [N, 32, 32, 3] and int32 [N].

  Raises:
    CifarDataError: no prepared copy and the download is impossible or failed.
    ValueError: split is not 'train' or 'test'.
  """
  _check_split(split)
  try:
    builder = tfds.builder('cifar10', data_dir=tfds_data_dir)
  except Exception as e:  # tfds raises many unrelated types here.
    raise _tfds_error('creating the tfds builder failed: %s' % e) from e
  if not builder.is_prepared():
    if not _host_reachable(TFDS_DOWNLOAD_HOST, TFDS_DOWNLOAD_PORT,
                           _PROBE_TIMEOUT_SECS):
      raise _tfds_error('no prepared copy in %s and %s:%d is unreachable' %
                        (builder.data_dir, TFDS_DOWNLOAD_HOST, TFDS_DOWNLOAD_PORT))
    try:
      builder.download_and_prepare()
    except Exception as e:  # Network, disk and checksum errors alike.
      raise _tfds_error('download failed: %s' % e) from e
  dataset = builder.as_dataset(split=split, as_supervised=True, batch_size=-1)
  images, labels = tfds.as_numpy(dataset)
  return images.astype(np.uint8), labels.astype(np.int32)


def fake_cifar10(num_examples, seed=0):
  """Returns random CIFAR-10-shaped data, for plumbing tests only.

  The images are noise, so nothing trained on them means anything.

  Args:
    num_examples: number of images.
    seed: numpy seed, so runs repeat.

  Returns:
    (images, labels): uint8 [num_examples, 32, 32, 3] and int32 [num_examples].
  """
  rng = np.random.RandomState(seed)
  images = rng.randint(0, 256, size=(num_examples, IMAGE_SIZE, IMAGE_SIZE,
                                     NUM_CHANNELS), dtype=np.uint8)
  labels = rng.randint(0, NUM_CLASSES, size=num_examples).astype(np.int32)
  return images, labels


def load_dataset(data_dir, split, fake_data=False, num_fake=1024):
  """Loads a split from fake data, a local copy (data_dir) or tfds, in that order.

  Args:
    data_dir: local CIFAR-10 folder, or None/'' to use tfds.
    split: 'train' or 'test'.
    fake_data: whether to return `fake_cifar10` noise instead.
    num_fake: number of fake images.

  Returns:
    (images, labels): uint8 [N, 32, 32, 3] and int32 [N].
  """
  if fake_data:
    _check_split(split)
    return fake_cifar10(num_fake, seed=SPLITS.index(split))
  if data_dir:
    return load_cifar10(data_dir, split)
  return load_tfds_cifar10(split)


def _in_memory_arrays(images, labels):
  """A one-element dataset holding the whole (images, labels) arrays.

  Under an Estimator the input_fn is traced in graph mode, where
  `from_tensor_slices(array)` would bake the data set into the GraphDef as a
  constant, and so into every checkpoint's .meta file and graph.pbtxt. Instead
  one numpy_function hands the arrays over once and `cache` keeps them for
  later epochs. (`from_generator` would also keep them out of the graph, but
  its iterators can hang the interpreter at exit.)
  """
  def load(_):
    image_array, label_array = tf.numpy_function(
        lambda: (images, labels), [], (tf.as_dtype(images.dtype), tf.int32))
    image_array = tf.ensure_shape(image_array, (None,) + images.shape[1:])
    return image_array, tf.ensure_shape(label_array, [None])

  return tf.data.Dataset.from_tensors(0).map(load).cache()


def in_memory_dataset(images, labels):
  """Yields the (image, label) pairs of in-memory arrays, in order.

  Args:
    images: [N, ...] numpy array (CIFAR: uint8 [N, 32, 32, 3]).
    labels: int32 [N] numpy array.
  """
  return _in_memory_arrays(images, labels).unbatch()


def _autoaugment(image, policy, seed=None):
  """Applies an AutoAugment CIFAR-10 policy to a uint8 image (stateless if seeded)."""
  image = autoaugment.distort_image_with_autoaugment(
      image, AUTOAUGMENT_POLICIES[policy], seed=seed)
  return tf.ensure_shape(image, [IMAGE_SIZE, IMAGE_SIZE, NUM_CHANNELS])


def _cutout(image, size, seed):
  """Cutout of a size x size square, filled with the colour the model maps to 0.

  The original pipeline zeroed the square after mean/std normalisation, so
  the network saw zeros there. Images here stay in pixels and the model
  normalizes with wrn_model.CIFAR_MEAN_RGB (the same per-channel mean), so
  the float square holds that mean and the network again sees exact zeros.
  """
  return autoaugment.random_cutout(image, size, wrn_model.CIFAR_MEAN_RGB, seed)


def _pad(image, fill):
  """Pads a float image by PAD_PIXELS on each side with the per-channel `fill`.

  The AutoAugment pipeline pads with the mean colour: the released code padded
  with zeros after normalising, as it cut out. The plain pipeline pads black.
  """
  padding = [[PAD_PIXELS, PAD_PIXELS], [PAD_PIXELS, PAD_PIXELS], [0, 0]]
  inside = tf.pad(tf.ones_like(image[:, :, :1], dtype=tf.bool), padding)
  return tf.where(inside, tf.pad(image, padding), tf.constant(fill, tf.float32))


def _augment_train(options, example, seed, stateless_autoaugment=False):
  """Augments one training example in the order of the AutoAugment CIFAR code.

  With options.augment 'autoaugment': the policy, pad-by-4 (with the mean
  colour) random crop, flip, then Cutout (unless options.cutout_size is 0);
  with 'none' only the black-padded crop and the flip. Crop, flip and Cutout
  are stateless, driven by the per-example int64 `seed`; the policy too when
  `stateless_autoaugment`, so the pipeline repeats exactly.

  Returns:
    (float32 image in pixel units, label).
  """
  image, label = example
  autoaugmented = options.augment == 'autoaugment'
  if autoaugmented:
    image = _autoaugment(image, options.policy,
                         tf.stack([seed, 2]) if stateless_autoaugment else None)
  image = _pad(tf.cast(image, tf.float32),
               wrn_model.CIFAR_MEAN_RGB if autoaugmented else (0.0, 0.0, 0.0))
  image = tf.image.stateless_random_crop(
      image, [IMAGE_SIZE, IMAGE_SIZE, NUM_CHANNELS], seed=tf.stack([seed, 0]))
  image = tf.image.stateless_random_flip_left_right(image,
                                                     seed=tf.stack([seed, 1]))
  if autoaugmented and options.cutout_size:
    image = _cutout(image, options.cutout_size, tf.stack([seed, 3]))
  return image, label


def _epoch_examples(seed, num_examples, arrays, epoch):
  """One epoch in the order of a stateless permutation drawn from (seed, epoch).

  Yields ((image, label), example_seed), the per-example seed a stateless
  function of (seed, epoch, position).
  """
  images, labels = arrays
  epoch_seed = tf.stack([tf.constant(seed, tf.int64), epoch])
  order = tf.argsort(tf.random.stateless_uniform([num_examples], epoch_seed))
  position = epoch * num_examples + tf.range(num_examples, dtype=tf.int64)
  # Unique per (seed, position); the stateless ops hash their seeds anyway.
  example_seeds = seed * _SEED_STRIDE + position
  return tf.data.Dataset.from_tensor_slices(
      ((tf.gather(images, order), tf.gather(labels, order)), example_seeds))


def _deterministic_train_examples(images, labels, seed, start_example):
  """The seeded training stream from example `start_example` on.

  Shuffled order and augmentation seeds are functions of (seed, epoch,
  position) only, so a run resumed at step s (start_example = s * batch)
  sees exactly the examples an uninterrupted run sees from step s on. Whole
  epochs are skipped without producing their examples.
  """
  num_examples = len(images)
  start_epoch, offset = divmod(start_example, num_examples)
  arrays = _in_memory_arrays(images, labels)
  epochs = tf.data.Dataset.range(start_epoch, 2**62)
  dataset = tf.data.Dataset.zip((arrays.repeat(), epochs)).flat_map(
      functools.partial(_epoch_examples, seed, num_examples))
  return dataset.skip(offset)


def _to_float(image, label):
  """Casts an image to float32 pixel units."""
  return tf.cast(image, tf.float32), label


def _check_augment(options):
  """Validates the augmentation arguments, naming the flags that set them."""
  if options.augment not in AUGMENTS:
    raise ValueError('--augment_name must be one of %s, got %r' % (AUGMENTS, options.augment))
  if options.policy not in AUTOAUGMENT_POLICIES:
    raise ValueError('--autoaugment_policy must be one of %s, got %r' %
                     (sorted(AUTOAUGMENT_POLICIES), options.policy))
  size = options.cutout_size
  if (isinstance(size, bool) or not isinstance(size, (int, np.integer))
      or not 0 <= size <= IMAGE_SIZE or size % 2):
    raise ValueError('--cutout_size must be 0 (off) or an even number of pixels '
                     'up to %d, got %r' % (IMAGE_SIZE, size))


def check_augment_flags(augment, autoaugment_policy, cutout_size):
  """Raises ValueError naming --augment_name, --autoaugment_policy or --cutout_size."""
  _check_augment(_TrainAugment(augment, autoaugment_policy, cutout_size))


def _check_inputs(images, labels, options):
  """Validates the arrays and the augmentation before any graph is built."""
  _check_augment(options)
  if images.dtype != np.uint8 or images.shape[1:] != (IMAGE_SIZE, IMAGE_SIZE,
                                                      NUM_CHANNELS):
    raise ValueError('images must be uint8 [N, 32, 32, 3], got %s %s' %
                     (images.dtype, images.shape))
  if labels.shape != (len(images),):
    raise ValueError('labels must have shape [%d], got %s' %
                     (len(images), labels.shape))


def _train_examples(images, labels, options, seed, start_example):
  """The augmented training stream: seeded and resumable, or fast and random."""
  if seed is None:
    dataset = in_memory_dataset(images, labels).shuffle(len(images)).repeat()
    # Random per-example seeds still drive the stateless crop, flip and Cutout.
    dataset = tf.data.Dataset.zip((dataset, tf.data.Dataset.random()))
    augment_fn = functools.partial(_augment_train, options)
  else:
    dataset = _deterministic_train_examples(images, labels, seed, start_example)
    augment_fn = functools.partial(_augment_train, options,
                                   stateless_autoaugment=True)
  return dataset.map(augment_fn, num_parallel_calls=tf.data.AUTOTUNE)


def build_input_fn(images, labels, is_training, augment, seed=None, start_step=0,
                   autoaugment_policy=DEFAULT_AUTOAUGMENT_POLICY,
                   cutout_size=CUTOUT_SIZE):
  """Builds a TPUEstimator-style input_fn over in-memory CIFAR-10 arrays.

  Training shuffles, repeats forever, then augments each image. With
  augment='autoaugment' this is the pipeline of the released AutoAugment
  CIFAR code: the policy on the uint8 image, the pad-by-4 random 32x32 crop,
  the random horizontal flip, then a 16x16 Cutout, padding and Cutout filled
  with the mean colour (the zeros of that code's normalized images); with
  'none' only the zero-pad (black) crop and the flip. Training batches drop
  the remainder. Evaluation makes one pass in order with no augmentation and
  keeps the final partial batch unless params['drop_remainder'] is set.

  Args:
    images: uint8 [N, 32, 32, 3].
    labels: int32 [N].
    is_training: whether to build the training pipeline.
    augment: 'none' or 'autoaugment' (the --augment_name flag); only used in
      training.
    seed: None: fast, non-repeatable training input. An int: the order of
      every epoch and every example's augmentation are stateless functions of
      (seed, epoch, position), so the stream is the same in every run.
    start_step: with a seed, start the stream at this training step's
      first example (step * batch), to resume exactly after a restart.
    autoaugment_policy: a key of AUTOAUGMENT_POLICIES: 'released' (the
      released code's 95 sub-policies) or 'paper25' (the paper's 25).
    cutout_size: side of the Cutout square of the 'autoaugment' pipeline,
      an even number of pixels; 0 turns Cutout off.

  Returns:
    input_fn(params) returning a tf.data.Dataset of (images float32
    [B, 32, 32, 3] in [0, 255], labels int32 [B]), B = params['batch_size'].

  Raises:
    ValueError: an augmentation argument is unknown or out of range, or the
      arrays have the wrong shape or type.
  """
  images, labels = np.asarray(images), np.asarray(labels, dtype=np.int32)
  options = _TrainAugment(augment, autoaugment_policy, cutout_size)
  _check_inputs(images, labels, options)

  def input_fn(params):
    batch_size = params['batch_size']
    if not is_training:
      dataset = in_memory_dataset(images, labels).map(
          _to_float, num_parallel_calls=tf.data.AUTOTUNE)
      dataset = dataset.batch(
          batch_size, drop_remainder=bool(params.get('drop_remainder', False)))
      return _without_autotune(dataset.prefetch(tf.data.AUTOTUNE))
    dataset = _train_examples(images, labels, options, seed, start_step * batch_size)
    dataset = dataset.batch(batch_size, drop_remainder=True)
    return _without_autotune(dataset.prefetch(tf.data.AUTOTUNE))

  return input_fn


def _without_autotune(dataset):
  """Turns tf.data's autotuner off: AUTOTUNE stages then run at a fixed parallelism.

  Closing a session waits for the autotune thread, which wakes on a period that
  doubles up to 60 s; the trainer closes one after every train and evaluate
  call (benchmarks/estimator_overhead.py). Measured on the real subset with
  AutoAugment, the pipeline is no slower without it.
  """
  options = tf.data.Options()
  options.autotune.enabled = False
  return dataset.with_options(options)
