"""Tests of wrn_cifar.cifar_input: the on-disk loaders, tfds fallback and tf.data pipeline.

The loaders are exercised on small files written in the real python (pickle)
and binary distribution formats, with odd batch sizes. Set CEB_CIFAR10_DIR to
also check the real CIFAR-10 subset shipped in shared/data/cifar10.
"""
import json
import os
import pickle
import socket
import threading
import time

import numpy as np
import pytest
import tensorflow as tf

from resnet_ceb import autoaugment
from wrn_cifar import cifar_input
from wrn_cifar import wrn_model

# Images per batch file of the small generated distributions.
TRAIN_SIZES = (7, 3, 5, 1, 2)
TEST_SIZE = 3
# The colour of the AutoAugment pipeline's padding and Cutout: the model's
# mean, which no integer pixel equals.
CUTOUT_FILL = np.array(wrn_model.CIFAR_MEAN_RGB, np.float32)
# Images per batch file of the real subset, from its README.
REAL_SIZES = {'data_batch_1': 4000, 'data_batch_2': 1017, 'data_batch_3': 1017,
              'data_batch_4': 1285, 'data_batch_5': 1017, 'test_batch': 1017}


def _random_split(num, seed):
  """Random uint8 images and int labels in 0..9."""
  rng = np.random.RandomState(seed)
  images = rng.randint(0, 256, (num, 32, 32, 3)).astype(np.uint8)
  return images, rng.randint(0, 10, num)


def _planar_rows(images):
  """Flattens HWC images to the channel-planar R, G, B rows of the files."""
  return images.transpose(0, 3, 1, 2).reshape(len(images), 3072)


def _write_pickle(path, batch):
  with open(path, 'wb') as f:
    pickle.dump(batch, f, protocol=2)


def _write_python_batch(path, images, labels, str_keys=False):
  """Writes a batch like the official pickles: bytes keys, list labels."""
  batch = {b'batch_label': b'generated', b'labels': [int(label) for label in labels],
           b'data': _planar_rows(images),
           b'filenames': [b'img_%d.png' % i for i in range(len(images))]}
  if str_keys:
    batch = {k.decode(): v for k, v in batch.items()}
  _write_pickle(path, batch)


def _write_binary_batch(path, images, labels):
  """Writes a batch of 3073-byte records: the label byte, then the pixels."""
  label_bytes = np.asarray(labels, np.uint8)[:, None]
  np.concatenate([label_bytes, _planar_rows(images)], axis=1).tofile(path)


def _write_distribution(folder, binary=False, str_keys=False):
  """Writes data_batch_1..5 and test_batch into folder; returns the expected splits."""
  os.makedirs(folder, exist_ok=True)
  suffix = '.bin' if binary else ''
  stems = ['data_batch_%d' % i for i in range(1, 6)] + ['test_batch']
  parts = []
  for i, (stem, num) in enumerate(zip(stems, TRAIN_SIZES + (TEST_SIZE,))):
    images, labels = _random_split(num, seed=i)
    path = os.path.join(folder, stem + suffix)
    if binary:
      _write_binary_batch(path, images, labels)
    else:
      _write_python_batch(path, images, labels, str_keys)
    parts.append((images, labels))
  train = tuple(np.concatenate(p) for p in zip(*parts[:5]))
  return {'train': train, 'test': parts[5]}


def _assert_split(loaded, expected):
  images, labels = loaded
  assert images.dtype == np.uint8 and images.shape == expected[0].shape
  assert labels.dtype == np.int32
  np.testing.assert_array_equal(images, expected[0])
  np.testing.assert_array_equal(labels, expected[1])


@pytest.mark.parametrize('layout', ['python', 'binary', 'python_str_keys'])
@pytest.mark.parametrize('use_parent', [False, True])
def test_round_trip(tmp_path, layout, use_parent):
  name = 'cifar-10-batches-bin' if layout == 'binary' else 'cifar-10-batches-py'
  folder = str(tmp_path / name)
  expected = _write_distribution(folder, binary=layout == 'binary',
                                 str_keys=layout == 'python_str_keys')
  data_dir = str(tmp_path) if use_parent else folder
  for split in ('train', 'test'):
    _assert_split(cifar_input.load_cifar10(data_dir, split), expected[split])
  assert len(expected['train'][1]) == sum(TRAIN_SIZES)


def test_planar_rows_become_hwc_pixel_by_pixel(tmp_path):
  """Builds a file row by its documented layout, independent of the writers above."""
  index = np.arange(3072)
  channel, row, col = index // 1024, (index % 1024) // 32, index % 32
  pixel = ((channel * 97 + row * 7 + col * 3) % 256).astype(np.uint8)
  folder = tmp_path / 'cifar-10-batches-py'
  folder.mkdir()
  _write_pickle(str(folder / 'test_batch'),
                {b'data': pixel[None, :], b'labels': [4]})
  images, labels = cifar_input.load_cifar10(str(tmp_path), 'test')
  assert labels.tolist() == [4]
  for c in range(3):
    for y in range(32):
      for x in range(32):
        assert images[0, y, x, c] == (c * 97 + y * 7 + x * 3) % 256


def _error_for(data_dir, split='train'):
  with pytest.raises(cifar_input.CifarDataError) as info:
    cifar_input.load_cifar10(str(data_dir), split)
  message = str(info.value)
  assert '--data_dir' in message
  assert isinstance(info.value, ValueError)
  return message


def test_missing_dir(tmp_path):
  missing = tmp_path / 'nowhere'
  assert str(missing) in _error_for(missing)


def test_no_batch_files_names_both_layouts(tmp_path):
  (tmp_path / 'readme.txt').write_text('not cifar')
  message = _error_for(tmp_path)
  assert 'cifar-10-batches-py' in message and 'cifar-10-batches-bin' in message
  assert 'data_batch_1' in message and 'test_batch.bin' in message


@pytest.mark.parametrize('binary', [False, True])
def test_missing_training_batch(tmp_path, binary):
  _write_distribution(str(tmp_path), binary=binary)
  name = 'data_batch_3' + ('.bin' if binary else '')
  os.remove(str(tmp_path / name))
  assert name in _error_for(tmp_path)
  cifar_input.load_cifar10(str(tmp_path), 'test')  # The test split still loads.


def test_missing_test_batch(tmp_path):
  _write_distribution(str(tmp_path))
  os.remove(str(tmp_path / 'test_batch'))
  assert 'test_batch' in _error_for(tmp_path, 'test')


def test_truncated_pickle(tmp_path):
  _write_distribution(str(tmp_path))
  path = tmp_path / 'data_batch_2'
  path.write_bytes(path.read_bytes()[:500])
  message = _error_for(tmp_path)
  assert 'data_batch_2' in message and 'truncated' in message


def _overwrite_batch(folder, name, batch):
  _write_distribution(str(folder))
  _write_pickle(str(folder / name), batch)


@pytest.mark.parametrize('batch, expected', [
    ({b'data': np.zeros((3, 3072), np.uint8), b'labels': [1, 2]}, "'labels' holds 2"),
    ({b'data': np.zeros((3, 3000), np.uint8), b'labels': [1, 2, 3]}, 'N x 3072 uint8'),
    ({b'data': np.zeros((3, 3072), np.int64), b'labels': [1, 2, 3]}, 'N x 3072 uint8'),
    ({b'data': np.zeros((2, 3072), np.uint8), b'labels': [1, 10]}, 'labels must be in 0..9'),
    ({b'data': np.zeros((2, 3072), np.uint8), b'labels': [-1, 0]}, 'labels must be in 0..9'),
    ({b'labels': [1]}, "expected keys 'data' and 'labels'"),
    ([1, 2, 3], 'expected a pickled dict'),
])
def test_bad_pickle_contents(tmp_path, batch, expected):
  _overwrite_batch(tmp_path, 'data_batch_4', batch)
  message = _error_for(tmp_path)
  assert 'data_batch_4' in message and expected in message


@pytest.mark.parametrize('size', [0, 3073 * 2 + 5, 100])
def test_binary_size_not_whole_records(tmp_path, size):
  _write_distribution(str(tmp_path), binary=True)
  (tmp_path / 'data_batch_5.bin').write_bytes(b'\x01' * size)
  message = _error_for(tmp_path)
  assert 'data_batch_5.bin' in message and '3073-byte records' in message


def test_binary_label_out_of_range(tmp_path):
  _write_distribution(str(tmp_path), binary=True)
  images, _ = _random_split(2, seed=9)
  _write_binary_batch(str(tmp_path / 'test_batch.bin'), images, [3, 12])
  message = _error_for(tmp_path, 'test')
  assert 'test_batch.bin' in message and '0..9' in message


def test_unknown_split(tmp_path):
  _write_distribution(str(tmp_path))
  with pytest.raises(ValueError, match='split'):
    cifar_input.load_cifar10(str(tmp_path), 'validation')


def _assert_names_both_options(message):
  assert '--data_dir DIR' in message
  assert 'python' in message and 'binary' in message
  assert 'network access' in message and 'cifar10' in message


def _load_tfds_timed(tmp_path):
  start = time.time()
  with pytest.raises(cifar_input.CifarDataError) as info:
    cifar_input.load_tfds_cifar10('train', tfds_data_dir=str(tmp_path))
  assert time.time() - start < 20
  _assert_names_both_options(str(info.value))


def test_tfds_without_network_fails_fast(tmp_path, monkeypatch):
  def refuse(*args, **kwargs):
    raise OSError('network is unreachable')

  monkeypatch.setattr(socket, 'create_connection', refuse)
  _load_tfds_timed(tmp_path)


def test_tfds_hanging_network_fails_fast(tmp_path, monkeypatch):
  release = threading.Event()

  def hang(*args, **kwargs):
    release.wait(60)
    raise OSError('timed out')

  monkeypatch.setattr(socket, 'create_connection', hang)
  try:
    _load_tfds_timed(tmp_path)
  finally:
    release.set()


def test_tfds_on_this_machine_fails_fast_when_offline(tmp_path):
  if cifar_input._host_reachable(cifar_input.TFDS_DOWNLOAD_HOST,
                                 cifar_input.TFDS_DOWNLOAD_PORT, 3):
    pytest.skip('the download host is reachable; this would download CIFAR-10')
  _load_tfds_timed(tmp_path)


class _PreparedBuilder:
  """Stands in for a tfds builder whose cifar10 copy is already on disk."""

  data_dir = '/prepared'

  def __init__(self, images, labels):
    self._arrays = images, labels

  def is_prepared(self):
    return True

  def as_dataset(self, split, as_supervised, batch_size):
    assert (split, as_supervised, batch_size) == ('test', True, -1)
    return tuple(tf.constant(a) for a in self._arrays)


def test_tfds_prepared_copy_skips_network(monkeypatch):
  images, labels = _random_split(4, seed=1)
  monkeypatch.setattr(cifar_input.tfds, 'builder',
                      lambda name, data_dir: _PreparedBuilder(images, labels))
  monkeypatch.setattr(cifar_input, '_host_reachable',
                      lambda *args: pytest.fail('probed the network'))
  _assert_split(cifar_input.load_tfds_cifar10('test'), (images, labels))


def test_load_dataset_dispatch(tmp_path, monkeypatch):
  images, labels = cifar_input.load_dataset(None, 'train', fake_data=True)
  assert images.dtype == np.uint8 and images.shape[1:] == (32, 32, 3)
  assert labels.dtype == np.int32 and labels.min() >= 0 and labels.max() <= 9
  expected = _write_distribution(str(tmp_path))
  _assert_split(cifar_input.load_dataset(str(tmp_path), 'test'), expected['test'])
  monkeypatch.setattr(cifar_input, 'load_tfds_cifar10', lambda split: ('tfds', split))
  assert cifar_input.load_dataset(None, 'test') == ('tfds', 'test')


def test_fake_data_repeats_with_seed():
  first, second = cifar_input.fake_cifar10(5, seed=3), cifar_input.fake_cifar10(5, seed=3)
  np.testing.assert_array_equal(first[0], second[0])
  np.testing.assert_array_equal(first[1], second[1])


def _batches(input_fn, num=None, **params):
  dataset = input_fn(dict(params))
  if num is not None:
    dataset = dataset.take(num)
  return list(dataset.as_numpy_iterator())


def test_train_batches_shapes_types_and_range():
  images, labels = cifar_input.fake_cifar10(10)
  input_fn = cifar_input.build_input_fn(images, labels, True, 'none', seed=1)
  dataset = input_fn({'batch_size': 4})
  assert dataset.element_spec[0].shape.as_list() == [4, 32, 32, 3]
  assert dataset.element_spec[0].dtype == tf.float32
  assert dataset.element_spec[1].shape.as_list() == [4]
  assert dataset.element_spec[1].dtype == tf.int32
  for batch_images, batch_labels in _batches(input_fn, 6, batch_size=4):
    assert batch_images.min() >= 0 and batch_images.max() <= 255
    np.testing.assert_array_equal(batch_images, np.round(batch_images))
    assert set(batch_labels) <= set(range(10))


def test_eval_keeps_order_and_count():
  images, labels = cifar_input.fake_cifar10(10)
  input_fn = cifar_input.build_input_fn(images, labels, False, 'none')
  batches = _batches(input_fn, batch_size=4)
  assert [len(b[1]) for b in batches] == [4, 4, 2]
  assert batches[0][0].dtype == np.float32 and batches[0][1].dtype == np.int32
  np.testing.assert_array_equal(np.concatenate([b[0] for b in batches]),
                                images.astype(np.float32))
  np.testing.assert_array_equal(np.concatenate([b[1] for b in batches]), labels)
  dropped = _batches(input_fn, batch_size=4, drop_remainder=True)
  assert [len(b[1]) for b in dropped] == [4, 4]


def test_train_epoch_is_a_shuffled_permutation():
  """Constant images whose value encodes their index show each appears once per epoch."""
  num = 12
  values = np.arange(num) * 20 + 10
  images = np.broadcast_to(values[:, None, None, None], (num, 32, 32, 3)).astype(np.uint8)
  labels = np.arange(num) % 10
  input_fn = cifar_input.build_input_fn(images, labels, True, 'none', seed=5)
  epochs = []
  for start in (0, 3):
    batches = _batches(input_fn, start + 3, batch_size=4)[start:]
    found = [(int(img.max()) - 10) // 20 for b in batches for img in b[0]]
    assert sorted(found) == list(range(num))
    assert [label for b in batches for label in b[1]] == [i % 10 for i in found]
    epochs.append(found)
  assert epochs[0] != list(range(num)) or epochs[1] != list(range(num))


def test_constant_image_stays_constant_inside_the_padding():
  images = np.full((1, 32, 32, 3), 200, np.uint8)
  input_fn = cifar_input.build_input_fn(images, [3], True, 'none', seed=0)
  for batch_images, _ in _batches(input_fn, 20, batch_size=1):
    image = batch_images[0]
    assert set(np.unique(image)) <= {0.0, 200.0}
    rows, cols = np.nonzero(image[..., 0])
    box = image[rows.min():rows.max() + 1, cols.min():cols.max() + 1]
    assert (box == 200).all()
    assert box.shape[0] >= 28 and box.shape[1] >= 28


def _crop_and_flip(padded, output):
  """Returns the (row, col, flipped) window of padded that output is, or None."""
  for row in range(9):
    for col in range(9):
      window = padded[row:row + 32, col:col + 32]
      for flipped in (False, True):
        if np.array_equal(window[:, ::-1] if flipped else window, output):
          return row, col, flipped
  return None


def test_train_images_are_flipped_windows_of_the_padded_image():
  images, labels = cifar_input.fake_cifar10(1, seed=4)
  input_fn = cifar_input.build_input_fn(images, labels, True, 'none', seed=2)
  padded = np.pad(images[0], [(4, 4), (4, 4), (0, 0)]).astype(np.float32)
  seen = set()
  for batch_images, _ in _batches(input_fn, 30, batch_size=1):
    match = _crop_and_flip(padded, batch_images[0])
    assert match is not None
    seen.add(match)
  assert len({m[:2] for m in seen}) > 3 and {m[2] for m in seen} == {False, True}


def test_seeded_train_pipeline_repeats():
  images, labels = cifar_input.fake_cifar10(16)
  runs = [_batches(cifar_input.build_input_fn(images, labels, True, 'none', seed=7), 5,
                   batch_size=4) for _ in range(2)]
  for first, second in zip(*runs):
    np.testing.assert_array_equal(first[0], second[0])
    np.testing.assert_array_equal(first[1], second[1])


def test_unknown_augment_names_the_flag():
  images, labels = cifar_input.fake_cifar10(2)
  with pytest.raises(ValueError, match='--augment_name'):
    cifar_input.build_input_fn(images, labels, True, 'randaugment')


def test_autoaugment_pipeline():
  """Same seed and no Cutout, so only the policy differs from the plain pipeline's batches."""
  images, labels = cifar_input.fake_cifar10(8)
  runs = {augment: _batches(cifar_input.build_input_fn(images, labels, True, augment, seed=0,
                                                       cutout_size=0),
                            3, batch_size=4)
          for augment in ('autoaugment', 'none')}
  changed = 0
  for (augmented, augmented_labels), (plain, plain_labels) in zip(*runs.values()):
    assert augmented.shape == (4, 32, 32, 3) and augmented.dtype == np.float32
    assert augmented.min() >= 0 and augmented.max() <= 255
    padding = np.all(augmented == CUTOUT_FILL, axis=-1)  # Padded with the mean colour.
    np.testing.assert_array_equal(augmented[~padding], np.round(augmented[~padding]))
    np.testing.assert_array_equal(augmented_labels, plain_labels)
    changed += sum(not np.array_equal(a, p) for a, p in zip(augmented, plain))
  assert changed > 0


def _train_images(images, labels, num_batches, augment='autoaugment', **kwargs):
  """The first num_batches * len(images) training images of a pipeline, in stream order."""
  input_fn = cifar_input.build_input_fn(images, labels, True, augment, **kwargs)
  batches = _batches(input_fn, num_batches, batch_size=len(images))
  return np.concatenate([batch[0] for batch in batches])


def _fill_mask(image):
  return np.all(image == CUTOUT_FILL, axis=-1)


def _strips(mask):
  """The pixels of mask in full rows or full columns: the padding's strips.

  Cutout, at most 16 wide, cannot fill a whole row or column of 32 with them.
  """
  return mask.all(axis=1)[:, None] | mask.all(axis=0)[None, :]


@pytest.fixture(scope='module')
def cutout_runs():
  """40 training images with and without Cutout, all else equal (seed 0, paper25)."""
  images, labels = cifar_input.fake_cifar10(8, seed=3)
  return {name: _train_images(images, labels, 5, seed=0, autoaugment_policy='paper25',
                              cutout_size=size)
          for name, size in (('cut', 16), ('uncut', 0))}


def test_autoaugment_pipeline_pads_with_the_mean_colour(cutout_runs):
  """The released code padded after normalising; its zeros are the mean colour."""
  widths = set()
  for image in cutout_runs['uncut']:
    filled = _fill_mask(image)
    np.testing.assert_array_equal(filled, _strips(filled))  # Only padding holds it...
    rows, cols = filled.all(axis=1), filled.all(axis=0)
    for strip in (rows, cols):  # ...in one band of at most 4 at an edge.
      width = strip.sum()
      assert width <= 4 and (strip[:width].all() or strip[32 - width:].all())
      widths.add(width)
  assert max(widths) > 0


def test_cutout_is_a_16x16_square_clipped_at_the_borders(cutout_runs):
  sides = []
  for with_cutout, without in zip(cutout_runs['cut'], cutout_runs['uncut']):
    changed = np.any(with_cutout != without, axis=-1)
    assert _fill_mask(with_cutout)[changed].all()
    rows, cols = np.nonzero(changed.any(axis=1))[0], np.nonzero(changed.any(axis=0))[0]
    height, width = rows[-1] + 1 - rows[0], cols[-1] + 1 - cols[0]
    assert height <= 16 and width <= 16
    sides.append((height, width) if changed.sum() == height * width else None)
  assert (16, 16) in sides and any(side not in ((16, 16), None) for side in sides)


def test_cutout_is_the_last_step_after_crop_and_flip(cutout_runs):
  """Each image is exactly Cutout applied to the cropped, flipped, policy-augmented one.

  With seed 0 the k-th example of the stream has seed k, and Cutout draws its
  centre from (k, 3); Cutout anywhere earlier would be shifted by the crop or
  mirrored by the flip, and the images would differ.
  """
  for k, (with_cutout, without) in enumerate(zip(cutout_runs['cut'], cutout_runs['uncut'])):
    expected = autoaugment.random_cutout(without, 16, wrn_model.CIFAR_MEAN_RGB,
                                         seed=tf.constant([k, 3], tf.int64))
    np.testing.assert_array_equal(with_cutout, expected.numpy())


def _cutout_pixels(image):
  """How many pixels hold the fill outside the padding's strips."""
  filled = _fill_mask(image)
  return (filled & ~_strips(filled)).sum()


def test_cutout_is_seeded_like_the_rest_of_the_stream(cutout_runs):
  images, labels = cifar_input.fake_cifar10(8, seed=3)
  again, other = (_train_images(images, labels, 5, seed=seed, autoaugment_policy='paper25')
                  for seed in (0, 1))
  np.testing.assert_array_equal(again, cutout_runs['cut'])
  masks = [[_fill_mask(image) for image in run] for run in (again, other)]
  assert any(not np.array_equal(a, b) for a, b in zip(*masks))


def test_cutout_is_on_with_autoaugment_only_and_can_be_turned_off(cutout_runs):
  images, labels = cifar_input.fake_cifar10(8, seed=2)
  unseeded = _train_images(images, labels, 2, autoaugment_policy='paper25')
  plain = _train_images(images, labels, 2, 'none', seed=0)
  # An 8x8 corner of the square at least, less a padding strip of at most 4.
  assert min(_cutout_pixels(image) for image in cutout_runs['cut']) >= 16
  assert min(_cutout_pixels(image) for image in unseeded) >= 16
  assert max(_cutout_pixels(image) for image in cutout_runs['uncut']) == 0
  assert not any(_fill_mask(image).any() for image in plain)


def test_autoaugment_policy_choice_reaches_the_pipeline(cutout_runs):
  """The default, 'released', draws from other sub-policies than 'paper25'."""
  images, labels = cifar_input.fake_cifar10(8, seed=3)
  released = _train_images(images, labels, 5, seed=0, cutout_size=0)
  assert not np.array_equal(released, cutout_runs['uncut'])


@pytest.mark.parametrize('kwargs, flag', [
    ({'cutout_size': 15}, '--cutout_size'),
    ({'cutout_size': -2}, '--cutout_size'),
    ({'cutout_size': 34}, '--cutout_size'),
    ({'cutout_size': True}, '--cutout_size'),
    ({'autoaugment_policy': 'cifar10'}, '--autoaugment_policy'),
])
def test_bad_augmentation_arguments_name_the_flag(kwargs, flag):
  images, labels = cifar_input.fake_cifar10(2)
  with pytest.raises(ValueError, match=flag):
    cifar_input.build_input_fn(images, labels, True, 'autoaugment', **kwargs)


def test_graph_mode_keeps_the_arrays_out_of_the_graph():
  """Estimators call input_fn in graph mode; the data must not become a constant."""
  images, labels = cifar_input.fake_cifar10(64)
  graph = tf.Graph()
  with graph.as_default():
    dataset = cifar_input.build_input_fn(images, labels, False, 'none')({'batch_size': 64})
    next_batch = tf.compat.v1.data.make_one_shot_iterator(dataset).get_next()
    assert graph.as_graph_def().ByteSize() < images.nbytes / 4
    with tf.compat.v1.Session() as session:
      batch_images, batch_labels = session.run(next_batch)
  np.testing.assert_array_equal(batch_images, images.astype(np.float32))
  np.testing.assert_array_equal(batch_labels, labels)


@pytest.mark.skipif(not os.environ.get('CEB_CIFAR10_DIR'),
                    reason='set CEB_CIFAR10_DIR to the real CIFAR-10 subset')
def test_real_cifar10_subset():
  data_dir = os.environ['CEB_CIFAR10_DIR']
  with open(os.path.join(data_dir, 'labels_all.json')) as f:
    all_labels = json.load(f)
  stems = {'train': ['data_batch_%d' % i for i in range(1, 6)], 'test': ['test_batch']}
  for split, count in (('train', 8336), ('test', 1017)):
    images, labels = cifar_input.load_cifar10(data_dir, split)
    assert images.shape == (count, 32, 32, 3) and images.dtype == np.uint8
    expected = [label for s in stems[split] for label in all_labels[s][:REAL_SIZES[s]]]
    assert labels.tolist() == expected
    assert 50 < images.mean() < 200  # Real photos, not blank or noise-free.
