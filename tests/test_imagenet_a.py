"""Tests eval.imagenet_a: the 200 classes, the preprocessing and the evaluation."""
import json
import os
import shutil

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '3')

import eval_fixtures as ef  # pylint: disable=g-import-not-at-top
import numpy as np
from PIL import Image
import pytest
import tensorflow as tf

from eval import image_folders
from eval import imagenet_a
from resnet_ceb import imagenet_classes

# Test images are HEIGHT x WIDTH; with --resize_size HEIGHT the resize keeps
# them as they are and the evaluation's preprocessing is decode + center crop.
HEIGHT, WIDTH, CROP = 32, 40, 32
IMAGES = 12


def test_the_200_wnids_are_sorted_unique_imagenet_classes():
  wnids = imagenet_a.IMAGENET_A_WNIDS
  assert len(wnids) == 200 and len(set(wnids)) == 200
  assert list(wnids) == sorted(wnids)
  assert set(wnids) <= set(imagenet_classes.imagenet_wnids())


def test_indices_map_back_to_the_wnids():
  indices = imagenet_a.imagenet_a_indices()
  all_wnids = imagenet_classes.imagenet_wnids()
  assert len(indices) == 200 and list(indices) == sorted(set(indices))
  assert [all_wnids[i] for i in indices] == list(imagenet_a.IMAGENET_A_WNIDS)
  # Spot checks against the reference evaluation's 1000 -> 200 map.
  assert list(indices[:5]) == [6, 11, 13, 15, 17]
  assert indices[38] == 207 and indices[100] == 496 and indices[199] == 988


def test_preprocessing_resizes_the_shorter_side_and_center_crops(tmp_path):
  image = ef.random_images(1, 48, 64, 0)[0]
  path = str(tmp_path / 'wide.png')
  Image.fromarray(image).save(path)
  out = imagenet_a.resize_and_crop_preprocess(36, 30)(tf.constant(path)).numpy()
  assert out.shape == (30, 30, 3) and out.dtype == np.float32
  resized = np.asarray(Image.fromarray(image).resize((48, 36), Image.BILINEAR), np.float32)
  expected = resized[3:33, 9:39]
  assert np.mean(np.abs(out - expected)) < 1.5


def test_preprocessing_keeps_an_image_already_at_the_resize_size(tmp_path):
  image = ef.random_images(1, HEIGHT, WIDTH, 1)[0]
  path = str(tmp_path / 'exact.png')
  Image.fromarray(image).save(path)
  out = imagenet_a.resize_and_crop_preprocess(HEIGHT, CROP)(tf.constant(path)).numpy()
  np.testing.assert_allclose(out, image[:, 4:36].astype(np.float32), atol=1e-3)


@pytest.fixture(scope='module')
def model_dir(tmp_path_factory):
  return ef.make_model_dir(str(tmp_path_factory.mktemp('model')), num_classes=1000)


@pytest.fixture(scope='module')
def dataset(model_dir, tmp_path_factory):
  """An imagenet-a folder of JPEGs; half filed under the class the model picks.

  Returns:
    (root, expected error computed from the model's own logits).
  """
  root = str(tmp_path_factory.mktemp('imagenet-a'))
  images = ef.random_images(IMAGES, HEIGHT, WIDTH, 5)
  contents = [ef.jpeg_bytes(image) for image in images]
  left = (WIDTH - CROP) // 2
  crops = np.stack([ef.decode_jpeg(c)[:, left:left + CROP] for c in contents])
  logits = ef.direct_logits(model_dir, crops)
  predictions = logits[:, imagenet_a.imagenet_a_indices()].argmax(axis=1)
  labels = [(p + i % 2) % 200 for i, p in enumerate(predictions)]
  for i, (label, data) in enumerate(zip(labels, contents)):
    ef.write_file(os.path.join(root, imagenet_a.IMAGENET_A_WNIDS[label], '%d.jpg' % i), data)
  with open(os.path.join(root, 'README.txt'), 'w') as f:
    f.write('files beside the class folders are ignored\n')
  return root, float(np.mean(predictions != np.array(labels)))


def _argv(model_dir, root, output, *extra):
  return ['--model_dir', model_dir, '--data_dir', root, '--output', output,
          '--batch_size', str(IMAGES), '--resize_size', str(HEIGHT),
          '--crop_size', str(CROP)] + list(extra)


def test_evaluation_matches_the_models_own_predictions(model_dir, dataset, tmp_path,
                                                       monkeypatch):
  root, expected = dataset
  output = str(tmp_path / 'a.json')
  data = imagenet_a.main(_argv(model_dir, root, output))
  assert 0 < expected < 1
  assert data['summary']['error'] == pytest.approx(expected)
  assert data['summary']['accuracy'] == pytest.approx(1 - expected)
  assert data['summary']['num_examples'] == IMAGES
  with open(output, 'rb') as f:
    first = f.read()
  assert json.loads(first) == data and data['complete']

  def must_not_run(*args, **kwargs):
    raise AssertionError('a finished evaluation was run again')

  monkeypatch.setattr(image_folders, 'evaluate_files', must_not_run)
  imagenet_a.main(_argv(model_dir, root, output))
  with open(output, 'rb') as f:
    assert f.read() == first


@pytest.mark.parametrize('breakage, flags', [
    ('missing_root', ()),
    ('not_an_imagenet_a_class', ()),
    ('no_images', ()),
    ('corrupt_jpeg', ()),
    (None, ('--crop_size', '40')),
    (None, ('--batch_size', '-1')),
])
def test_bad_input_exits_2_naming_it_and_writes_nothing(
    model_dir, dataset, tmp_path, capsys, breakage, flags):
  root = str(tmp_path / 'imagenet-a')
  shutil.copytree(dataset[0], root)
  named = flags[0] if flags else None
  if breakage == 'missing_root':
    root = named = str(tmp_path / 'nowhere')
  elif breakage == 'not_an_imagenet_a_class':
    named = os.path.join(root, 'n01440764')  # tench: ImageNet, not ImageNet-A.
    os.makedirs(named)
  elif breakage == 'no_images':
    root = named = str(tmp_path / 'empty')
    os.makedirs(os.path.join(root, imagenet_a.IMAGENET_A_WNIDS[0]))
  elif breakage == 'corrupt_jpeg':
    named = os.path.join(root, imagenet_a.IMAGENET_A_WNIDS[3], 'broken.jpg')
    ef.write_file(named, b'\xff\xd8\xff\xe0 not really a jpeg')
  output = str(tmp_path / 'out' / 'a.json')
  message = ef.cli_error(imagenet_a.main, _argv(model_dir, root, output, *flags), capsys)
  assert named in message, message
  assert not os.path.exists(os.path.dirname(output))
