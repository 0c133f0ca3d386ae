"""The ImageNet TFRecord tool, preprocessing and input pipeline, on generated JPEGs."""
import io
import os
import subprocess
import sys

from conftest import REPO_ROOT
import numpy as np
from PIL import Image
import pytest
import tensorflow as tf

from resnet_ceb import imagenet_classes
from resnet_ceb import imagenet_input
from resnet_ceb import make_tfrecords
from resnet_ceb import resnet_preprocessing

tf1 = tf.compat.v1

NUM_PER_SPLIT = 8
SOURCE_SIZE = 48
IMAGE_SIZE = 32


@pytest.fixture(scope='module')
def data_dir(tmp_path_factory):
  path = str(tmp_path_factory.mktemp('imagenet'))
  make_tfrecords.write_synthetic_imagenet(path, NUM_PER_SPLIT, SOURCE_SIZE, seed=1)
  return path


def _file_labels(path):
  """The 1-based labels stored in a TFRecord file, in order."""
  labels = []
  for record in tf.data.TFRecordDataset(path):
    example = tf.train.Example.FromString(record.numpy())
    labels.append(example.features.feature['image/class/label'].int64_list.value[0])
  return labels


def _batches(input_fn, batch_size, count=None):
  """Runs an input_fn in a graph; returns its batches (all, or the first `count`)."""
  with tf.Graph().as_default():
    dataset = input_fn({'batch_size': batch_size})
    if count:
      dataset = dataset.take(count)
    next_batch = tf1.data.make_one_shot_iterator(dataset).get_next()
    out = []
    with tf1.Session() as sess:
      while True:
        try:
          out.append(sess.run(next_batch))
        except tf.errors.OutOfRangeError:
          return out


def _jpeg(pixels):
  buffer = io.BytesIO()
  Image.fromarray(pixels).save(buffer, format='JPEG', quality=95)
  return buffer.getvalue()


def _write_records(path, examples):
  with tf.io.TFRecordWriter(path) as writer:
    for example in examples:
      writer.write(example.SerializeToString())


def test_synthetic_set_has_both_splits_with_valid_labels(data_dir):
  names = sorted(os.listdir(data_dir))
  assert names == ['train-00000-of-00001', 'validation-00000-of-00001']
  labels = _file_labels(os.path.join(data_dir, names[1]))
  assert len(labels) == NUM_PER_SPLIT
  assert all(1 <= label <= 1000 for label in labels)


def test_training_batches(data_dir):
  train = imagenet_input.ImageNetInput(True, data_dir, image_size=IMAGE_SIZE, seed=0)
  (images, labels), = _batches(train.input_fn, 3, count=1)
  assert images.shape == (3, IMAGE_SIZE, IMAGE_SIZE, 3) and images.dtype == np.float32
  assert images.min() >= 0.0 and images.max() <= 255.0 and images.max() > 1.0
  file_labels = _file_labels(os.path.join(data_dir, 'train-00000-of-00001'))
  assert set(labels + 1) <= set(file_labels)


def test_training_repeats_and_drops_the_remainder(data_dir):
  train = imagenet_input.ImageNetInput(True, data_dir, image_size=IMAGE_SIZE, seed=0)
  batches = _batches(train.input_fn, 3, count=5)  # 15 images > 8 in the file.
  assert [len(labels) for _, labels in batches] == [3] * 5


def test_eval_reads_once_in_order_and_keeps_the_last_batch(data_dir):
  evaluate = imagenet_input.ImageNetInput(False, data_dir, image_size=IMAGE_SIZE)
  batches = _batches(evaluate.input_fn, 3)
  assert [len(labels) for _, labels in batches] == [3, 3, 2]
  labels = np.concatenate([labels for _, labels in batches])
  expected = _file_labels(os.path.join(data_dir, 'validation-00000-of-00001'))
  np.testing.assert_array_equal(labels, np.array(expected) - 1)


def test_eval_num_examples_limits_the_pass(data_dir):
  evaluate = imagenet_input.ImageNetInput(False, data_dir, image_size=IMAGE_SIZE,
                                          num_examples=5)
  assert sum(len(labels) for _, labels in _batches(evaluate.input_fn, 4)) == 5


def test_autoaugment_pipeline_runs(data_dir):
  train = imagenet_input.ImageNetInput(True, data_dir, image_size=IMAGE_SIZE,
                                       augment_name='autoaugment', seed=0)
  (images, _), = _batches(train.input_fn, 4, count=1)
  assert images.shape == (4, IMAGE_SIZE, IMAGE_SIZE, 3)
  assert images.min() >= 0.0 and images.max() <= 255.0


def test_fake_data_needs_no_files():
  fake = imagenet_input.ImageNetInput(True, None, image_size=IMAGE_SIZE)
  (images, labels), = _batches(fake.input_fn, 2, count=1)
  assert images.shape == (2, IMAGE_SIZE, IMAGE_SIZE, 3)
  assert np.all((labels >= 0) & (labels < 1000))


def test_preprocessing_keeps_a_flat_colour_and_the_size():
  colour = np.array([200, 30, 90], np.uint8)
  jpeg = _jpeg(np.tile(colour, (60, 90, 1)))
  with tf.Graph().as_default():
    outputs = [resnet_preprocessing.preprocess_image(tf.constant(jpeg), training, 40)
               for training in (True, False)]
    with tf1.Session() as sess:
      for image in sess.run(outputs):
        assert image.shape == (40, 40, 3)
        np.testing.assert_allclose(image.mean(axis=(0, 1)), colour, atol=3.0)


def test_eval_center_crop_is_224_of_256_of_the_shorter_side():
  """64x80 image, red inside the central 56x56 (= 224/256 * 64): all red out."""
  pixels = np.zeros((64, 80, 3), np.uint8)
  pixels[4:60, 12:68] = (255, 0, 0)
  with tf.Graph().as_default():
    image = resnet_preprocessing.preprocess_image(tf.constant(_jpeg(pixels)), False, 224)
    with tf1.Session() as sess:
      out = sess.run(image)
  inner = out[4:-4, 4:-4]
  assert inner[..., 0].min() > 200 and inner[..., 1:].max() < 60
  # A crop one source pixel larger on each side would show black edges.
  assert out[:, :2, 0].mean() > 100 and out[-2:, :, 0].mean() > 100


def test_unknown_augment_name_names_the_flag():
  with pytest.raises(ValueError, match='--augment_name'):
    imagenet_input.ImageNetInput(True, None, augment_name='randaugment')


def test_missing_data_dir_or_files_name_the_flag_and_pattern(tmp_path):
  missing = str(tmp_path / 'nowhere')
  with pytest.raises(FileNotFoundError, match='--data_dir.*train-\\*'):
    imagenet_input.ImageNetInput(True, missing)
  with pytest.raises(FileNotFoundError, match='--data_dir.*validation-\\*'):
    imagenet_input.ImageNetInput(False, str(tmp_path))


@pytest.mark.parametrize('bad_label', [0, 1001])
def test_label_outside_1_to_1000_is_a_clear_error(tmp_path, bad_label):
  jpeg = _jpeg(np.full((40, 40, 3), 128, np.uint8))
  _write_records(str(tmp_path / 'train-00000-of-00001'), [
      make_tfrecords.make_example(jpeg, bad_label, 'n01440764', 40, 40, 'x.JPEG')])
  train = imagenet_input.ImageNetInput(True, str(tmp_path), image_size=IMAGE_SIZE)
  with pytest.raises(imagenet_input.ImageNetDataError) as error:
    with imagenet_input.reading_errors(str(tmp_path)):
      _batches(train.input_fn, 1, count=1)
  message = str(error.value)
  assert '--data_dir=%s' % tmp_path in message
  assert 'outside 1..1000' in message and 'train-*' in message
  assert '[%d]' % bad_label in message


def test_corrupt_record_is_a_clear_error(data_dir, tmp_path):
  with open(os.path.join(data_dir, 'train-00000-of-00001'), 'rb') as f:
    data = bytearray(f.read())
  data[100] ^= 0xFF
  with open(str(tmp_path / 'train-00000-of-00001'), 'wb') as f:
    f.write(bytes(data))
  train = imagenet_input.ImageNetInput(True, str(tmp_path), image_size=IMAGE_SIZE)
  with pytest.raises(imagenet_input.ImageNetDataError,
                     match='--data_dir=.*DataLossError: corrupted record'):
    with imagenet_input.reading_errors(str(tmp_path)):
      _batches(train.input_fn, 2, count=1)


def test_serving_input_fns_give_model_inputs():
  jpeg = _jpeg(np.full((50, 70, 3), 100, np.uint8))
  with tf.Graph().as_default():
    receiver = imagenet_input.image_serving_input_fn(IMAGE_SIZE)
    pixels = imagenet_input.pixel_serving_input_fn(IMAGE_SIZE)
    with tf1.Session() as sess:
      images = sess.run(receiver.features,
                        {receiver.receiver_tensors['image_bytes']: [jpeg, jpeg]})
  assert images.shape == (2, IMAGE_SIZE, IMAGE_SIZE, 3)
  np.testing.assert_allclose(images, 100.0, atol=3.0)
  assert pixels.features.shape.as_list() == [None, IMAGE_SIZE, IMAGE_SIZE, 3]


def _image_folder(root, wnid, name, image):
  os.makedirs(os.path.join(root, wnid), exist_ok=True)
  image.save(os.path.join(root, wnid, name))


def test_make_tfrecords_labels_and_reencoding(tmp_path):
  wnids = imagenet_classes.load_wnids()
  root = str(tmp_path / 'images')
  _image_folder(root, wnids[0], 'a.JPEG', Image.new('RGB', (30, 20), (10, 20, 30)))
  _image_folder(root, wnids[-1], 'b.JPEG', Image.new('CMYK', (16, 16)))
  _image_folder(root, wnids[-1], 'c.png', Image.new('RGB', (16, 16)))
  out = str(tmp_path / 'records')
  paths, count = make_tfrecords.convert_image_dir(root, out, 'validation', 2)
  assert count == 3
  assert [os.path.basename(p) for p in paths] == [
      'validation-00000-of-00002', 'validation-00001-of-00002']
  found = {}
  for record in tf.data.TFRecordDataset(paths):
    feature = tf.train.Example.FromString(record.numpy()).features.feature
    name = feature['image/filename'].bytes_list.value[0].decode()
    found[name] = feature['image/class/label'].int64_list.value[0]
    decoded = tf.io.decode_jpeg(feature['image/encoded'].bytes_list.value[0])
    assert decoded.shape[-1] == 3
  assert found == {'a.JPEG': 1, 'b.JPEG': 1000, 'c.png': 1000}


def test_make_tfrecords_rejects_unknown_wnids_and_empty_folders(tmp_path):
  with pytest.raises(FileNotFoundError, match='--image_dir'):
    make_tfrecords.list_images(str(tmp_path), imagenet_classes.load_wnids())
  _image_folder(str(tmp_path), 'n99999999', 'a.JPEG', Image.new('RGB', (8, 8)))
  with pytest.raises(ValueError, match='n99999999.*not an ImageNet wnid'):
    make_tfrecords.list_images(str(tmp_path), imagenet_classes.load_wnids())


def test_make_tfrecords_command_reports_bad_input_with_exit_2(tmp_path):
  out = tmp_path / 'records'
  result = subprocess.run(
      [sys.executable, '-m', 'resnet_ceb.make_tfrecords',
       '--image_dir=%s' % (tmp_path / 'nowhere'), '--output_dir=%s' % out],
      cwd=REPO_ROOT, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL='3'),
      capture_output=True, text=True, timeout=120)
  assert result.returncode == 2
  assert result.stderr.strip().splitlines()[-1] == (
      'error: --image_dir=%s is not a directory' % (tmp_path / 'nowhere'))
  assert not out.exists()
