"""Tests eval.clean: CIFAR-10 clean accuracy from fake data and a local copy."""
import json
import os
import pickle

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '3')

import eval_fixtures as ef  # pylint: disable=g-import-not-at-top
import numpy as np
import pytest

from eval import clean
from eval import top1
from resnet_ceb import train_utils
from wrn_cifar import cifar_input


@pytest.fixture(scope='module')
def model_dir(tmp_path_factory):
  return ef.make_model_dir(str(tmp_path_factory.mktemp('model')), num_classes=10)


def _expected_accuracy(model_dir, images, labels):
  predictions = ef.direct_logits(model_dir, images).argmax(axis=1)
  return float(np.mean(predictions == labels))


def _write_python_test_batch(data_dir, images, labels):
  """Writes test_batch in the CIFAR-10 python format (channel-planar rows)."""
  folder = os.path.join(data_dir, 'cifar-10-batches-py')
  os.makedirs(folder)
  rows = images.transpose(0, 3, 1, 2).reshape(len(images), -1)
  with open(os.path.join(folder, 'test_batch'), 'wb') as f:
    pickle.dump({b'data': rows, b'labels': [int(label) for label in labels]}, f)


def test_fake_data_accuracy_matches_the_models_own_predictions(model_dir, tmp_path):
  output = str(tmp_path / 'clean.json')
  data = clean.main(['--model_dir', model_dir, '--fake_data', '--output', output,
                     '--batch_size', '256'])
  images, labels = cifar_input.load_dataset(None, 'test', fake_data=True)
  expected = _expected_accuracy(model_dir, images, labels)
  summary = data['summary']
  assert summary['accuracy'] == pytest.approx(expected)
  assert summary['error'] == pytest.approx(1 - expected)
  assert summary['num_examples'] == len(labels) == 1024
  with open(output) as f:
    assert json.load(f) == data and data['complete']


def test_local_copy_accuracy_matches_and_a_rerun_keeps_the_file(
    model_dir, tmp_path, monkeypatch):
  images = ef.random_images(30, 32, 32, 4)
  predictions = ef.direct_logits(model_dir, images).argmax(axis=1)
  labels = np.where(np.arange(30) % 3, predictions, (predictions + 1) % 10)
  data_dir = str(tmp_path / 'cifar')
  _write_python_test_batch(data_dir, images, labels)
  output = str(tmp_path / 'clean.json')
  argv = ['--model_dir', model_dir, '--data_dir', data_dir, '--output', output,
          '--batch_size', '8']
  data = clean.main(argv)
  assert data['summary']['accuracy'] == pytest.approx(
      _expected_accuracy(model_dir, images, labels))
  assert data['summary']['accuracy'] == pytest.approx(2 / 3)
  with open(output, 'rb') as f:
    first = f.read()

  def must_not_run(*args, **kwargs):
    raise AssertionError('a finished evaluation was run again')

  monkeypatch.setattr(top1, 'count_correct', must_not_run)
  clean.main(argv)
  with open(output, 'rb') as f:
    assert f.read() == first


@pytest.mark.parametrize('flags, named', [
    (['--fake_data', '--data_dir', '/tmp'], '--fake_data'),
    (['--fake_data', '--batch_size', '0'], '--batch_size'),
    (['--data_dir', '/nonexistent/cifar'], '/nonexistent/cifar'),
    (['--fake_data', '--batch_size', 'x'], '--batch_size'),
    (['--fake_data', '--dataset', 'mnist'], '--dataset'),
])
def test_bad_input_exits_2_naming_it(model_dir, tmp_path, capsys, flags, named):
  output = str(tmp_path / 'clean.json')
  message = ef.cli_error(clean.main, ['--model_dir', model_dir, '--output', output]
                         + flags, capsys)
  assert named in message
  assert not os.path.exists(output)


def test_a_model_without_10_classes_is_refused(tmp_path, capsys):
  big = ef.make_model_dir(str(tmp_path / 'model1000'), num_classes=1000)
  output = str(tmp_path / 'clean.json')
  message = ef.cli_error(clean.main, ['--model_dir', big, '--fake_data',
                                      '--output', output], capsys)
  assert '1000-class' in message and not os.path.exists(output)


def test_a_missing_flag_is_refused(capsys):
  assert '--model_dir' in ef.cli_error(clean.main, ['--fake_data'], capsys)


def test_a_missing_model_dir_is_refused(tmp_path, capsys):
  missing = str(tmp_path / 'no_model')
  message = ef.cli_error(clean.main, ['--model_dir', missing, '--fake_data'], capsys)
  assert missing in message and not os.path.exists(missing)


def test_a_legacy_class_count_key_is_read(tmp_path, capsys):
  # The ImageNet trainer once recorded `num_label_classes`; it still counts.
  legacy = ef.make_model_dir(str(tmp_path / 'legacy'), num_classes=1000)
  path = os.path.join(legacy, train_utils.PARAMS_FILE)
  with open(path) as f:
    text = f.read()
  with open(path, 'w') as f:
    f.write(text.replace('"num_classes"', '"num_label_classes"'))
  output = str(tmp_path / 'clean.json')
  message = ef.cli_error(clean.main, ['--model_dir', legacy, '--fake_data',
                                      '--output', output], capsys)
  assert '1000-class' in message and not os.path.exists(output)
