"""--pgd_space: PGD's epsilon in pixels or in the model's normalized inputs (eval.pgd.space).

A ResNet-18 of the ImageNet trainer is trained for a few dozen steps on a
learnable two-class set of real JPEG TFRecords (darker or brighter than mid
grey), then attacked at the same epsilon in both spaces: the normalized
reading is std_c (about 57 pixels) times larger per channel, so it must fool
the model where the pixel reading cannot, and its perturbation must have
exactly that size in pixels.
"""
import json
import os
import subprocess
import sys

from conftest import REPO_ROOT
import eval_fixtures
import numpy as np
import pytest
import tensorflow as tf

from eval import imagenet_suite
from eval import pgd
from eval.attacks import examples
from eval.kit import runner
from eval.pgd import __main__ as pgd_cli
from resnet_ceb import fileio
from resnet_ceb import imagenet_classes
from resnet_ceb import make_tfrecords
from resnet_ceb import resnet_model
from wrn_cifar import wrn_model

tf1 = tf.compat.v1

IMAGE_SIZE = 32
NUM_TRAIN = 64
NUM_VALIDATION = 16
# Mean grey level of each class; the boundary between them is near 128.
LEVELS = (100, 156)
STDDEV = np.array(resnet_model.STDDEV_RGB)


def _two_class_examples(count, rng):
  """tf.train.Examples of smooth 40x40 JPEGs whose label says dark (1) or bright (2)."""
  wnids = imagenet_classes.imagenet_wnids()
  for i in range(count):
    label = i % 2
    coarse = rng.randint(LEVELS[label] - 12, LEVELS[label] + 13, (5, 5, 3))
    pixels = coarse.repeat(8, axis=0).repeat(8, axis=1).astype(np.uint8)
    yield make_tfrecords.make_example(eval_fixtures.jpeg_bytes(pixels), label + 1,
                                      wnids[label], 40, 40, 'grey_%04d.JPEG' % i)


@pytest.fixture(scope='module')
def trained(tmp_path_factory):
  """(model_dir, data_dir) of a two-class ResNet-18 (ImageNet trainer) trained briefly."""
  root = tmp_path_factory.mktemp('pgd_space')
  data_dir = str(root / 'tfrecords')
  rng = np.random.RandomState(0)
  for split, count in (('train', NUM_TRAIN), ('validation', NUM_VALIDATION)):
    make_tfrecords.write_shards(_two_class_examples(count, rng), data_dir, split, 1)
  model_dir = str(root / 'model')
  # A separate process: --deterministic switches op determinism on for good.
  subprocess.run(
      [sys.executable, '-m', 'resnet_ceb.resnet_main', '--data_dir', data_dir,
       '--model_dir', model_dir, '--resnet_depth', '18', '--image_size', str(IMAGE_SIZE),
       '--num_label_classes', '2', '--train_batch_size', '8', '--num_train_images',
       str(NUM_TRAIN), '--train_steps', '60', '--iterations_per_loop', '60',
       '--base_learning_rate', '0.8', '--loss', 'xent', '--mode', 'train', '--deterministic'],
      check=True, cwd=REPO_ROOT, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL='3'),
      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
  return model_dir, data_dir


def _validation_batch(data_dir):
  """The validation images (as the trainer's eval pipeline crops them) and labels."""
  examples_fn = examples.load_examples('imagenet', data_dir, False, NUM_VALIDATION,
                                       NUM_VALIDATION, IMAGE_SIZE)
  with tf.Graph().as_default():
    batch = tf1.data.make_one_shot_iterator(examples_fn().batch(NUM_VALIDATION)).get_next()
    with tf1.Session() as session:
      return session.run(batch)


def _attack(model, images, labels, **kwargs):
  """pgd_attack on the restored model in a plain session: (adversarial, predictions)."""
  with tf.Graph().as_default():
    x = tf1.placeholder(tf.float32, images.shape)
    adversarial = pgd.pgd_attack(model.logits_fn, x, labels, **kwargs)
    predictions = tf.argmax(model.logits_fn(adversarial), axis=-1)
    with tf1.Session() as session:
      tf1.train.Saver().restore(session, model.checkpoint_path)
      return session.run((adversarial, predictions), {x: images})


def test_the_scale_of_each_trainer_is_its_models_own_normalization():
  assert pgd.channel_scale('pixels', {'trainer': 'resnet_ceb'}) is None
  assert pgd.channel_scale('normalized', {'trainer': 'resnet_ceb'}) == tuple(
      resnet_model.STDDEV_RGB)
  assert pgd.channel_scale('normalized', {'trainer': 'wrn_cifar'}) == tuple(
      wrn_model.CIFAR_STDDEV_RGB)
  with pytest.raises(ValueError, match='--pgd_space=normalized.*trainer'):
    pgd.channel_scale('normalized', {'trainer': 'other'})
  with pytest.raises(ValueError, match='pgd_space'):
    pgd.channel_scale('raw', {'trainer': 'resnet_ceb'})


@pytest.mark.parametrize('norm,epsilon', [('linf', 1.0), ('l2', 8.0)])
def test_normalized_perturbation_has_its_size_in_pixels(trained, norm, epsilon):
  model = runner.load_model(trained[0])
  images, labels = _validation_batch(trained[1])
  scale = pgd.channel_scale('normalized', model.params)
  adversarial, _ = _attack(model, images, labels, norm=norm, epsilon=epsilon, num_steps=5,
                           channel_scale=scale)
  delta = (adversarial.astype(np.float64) - images).reshape(len(images), -1, 3)
  if norm == 'linf':
    # |delta_c| <= eps * std_c (about 57 pixels), reached in every channel.
    reach = np.abs(delta).max(axis=(0, 1))
    assert np.all(reach <= epsilon * STDDEV + 1e-3)
    assert np.all(reach >= epsilon * STDDEV - 1e-3)
  else:
    normalized = np.sqrt(np.square(delta / STDDEV).sum(axis=(1, 2)))
    pixel_norm = np.sqrt(np.square(delta).sum(axis=(1, 2)))
    assert normalized.max() <= epsilon * (1 + 1e-5) and normalized.max() >= 0.9 * epsilon
    assert pixel_norm.max() <= epsilon * STDDEV.max() * (1 + 1e-5)
    assert pixel_norm.max() >= 0.9 * epsilon * STDDEV.min()
    assert pixel_norm.max() > 50 * epsilon  # The pixel reading would stop at epsilon.


def _sweep(trained, output, *extra):
  pgd_cli.main(['--model_dir', trained[0], '--data_dir', trained[1], '--num_examples',
                str(NUM_VALIDATION), '--batch_size', '8', '--num_steps', '5',
                '--output', str(output)] + list(extra))
  with open(output) as f:
    return json.load(f)


@pytest.mark.parametrize('norm,epsilon', [
    ('linf', '1'), pytest.param('l2', '8', marks=pytest.mark.slow)])
def test_the_two_readings_of_one_epsilon_give_different_errors(trained, tmp_path, norm,
                                                               epsilon):
  common = ('--norm', norm, '--epsilons', epsilon)
  pixels = _sweep(trained, tmp_path / 'pixels.json', *common)
  normalized = _sweep(trained, tmp_path / 'normalized.json', *common,
                      '--pgd_space', 'normalized')
  assert pixels['evaluation'] == 'pgd_' + norm
  assert normalized['evaluation'] == 'pgd_%s_normalized' % norm
  assert pixels['header']['flags']['pgd_space'] == 'pixels'
  assert normalized['header']['flags']['pgd_space'] == 'normalized'
  at_pixels, at_normalized = (result['items']['eps=' + epsilon]
                               for result in (pixels, normalized))
  clean = at_pixels['clean_accuracy']
  assert clean >= 0.75 and at_normalized['clean_accuracy'] == clean
  at_pixels, at_normalized = at_pixels['accuracy'], at_normalized['accuracy']
  # A pixel or two cannot cross the grey boundary; std_c times that can.
  assert at_pixels >= clean - 0.125
  assert at_normalized <= 0.25 and at_pixels - at_normalized >= 0.5


def test_a_result_file_of_the_other_space_is_refused(trained, tmp_path, capsys):
  output = tmp_path / 'r.json'
  _sweep(trained, output, '--epsilons', '0', '--num_steps', '1')
  before = output.read_bytes()
  line = eval_fixtures.cli_error(pgd_cli.main, [
      '--model_dir', trained[0], '--data_dir', trained[1], '--num_examples', '4',
      '--epsilons', '0', '--num_steps', '1', '--pgd_space', 'normalized',
      '--output', str(output)], capsys)
  assert 'another evaluation' in line and output.read_bytes() == before
  assert "--pgd_space: invalid choice: 'raw'" in eval_fixtures.cli_error(
      pgd_cli.main, ['--model_dir', trained[0], '--epsilons', '1', '--pgd_space', 'raw'],
      capsys)


@pytest.mark.slow
def test_imagenet_suite_runs_the_papers_pgd_in_either_space_side_by_side(trained):
  model_dir, data_dir = trained
  for space in ('pixels', 'normalized'):
    assert imagenet_suite.main(['--model_dir', model_dir, '--data_dir', data_dir,
                                '--num_examples', '8', '--batch_size', '8',
                                '--pgd_space', space]) == 0
  names = sorted(os.listdir(os.path.join(model_dir, 'results')))
  assert [n.split('-step')[0] for n in names] == [
      'clean', 'pgd_l2_targeted', 'pgd_l2_targeted_normalized', 'pgd_linf_targeted',
      'pgd_linf_targeted_normalized']
  data = {n.split('-step')[0]: fileio.read_json(os.path.join(model_dir, 'results', n))
          for n in names}
  for norm in ('l2', 'linf'):
    pixels = data['pgd_%s_targeted' % norm]
    normalized = data['pgd_%s_targeted_normalized' % norm]
    assert pixels['header']['flags']['pgd_space'] == 'pixels'
    assert normalized['header']['flags']['pgd_space'] == 'normalized'
    assert normalized['items']['eps=16']['step_size'] == 2.0
    # L-inf 16 normalized is a cube wider than [0, 255]; L2 16 normalized is
    # about 920 pixels against 16: both hit every target.
    assert normalized['items']['eps=16']['target_hit_rate'] >= 0.75
  l2_pixels = data['pgd_l2_targeted']['items']['eps=16']
  assert l2_pixels['accuracy'] == l2_pixels['clean_accuracy']  # 16 pixels of L2: nothing.
