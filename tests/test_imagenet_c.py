"""Tests eval.imagenet_c: the mCE arithmetic against the paper, and the evaluation."""
import csv
import json
import math
import os
import shutil

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '3')

import eval_fixtures as ef  # pylint: disable=g-import-not-at-top
import numpy as np
import pytest

from eval import corruption_metrics
from eval import image_folders
from eval import imagenet_c
from resnet_ceb import imagenet_classes

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PAPER_TABLE = os.path.join(REPO, '..', 'shared', 'data', 'paper_table1.tsv')
ITEMS = [('gaussian_noise', 1), ('gaussian_noise', 3), ('fog', 1), ('fog', 3)]
IMAGES_PER_ITEM = 6
SIZE = 32


def _paper_columns():
  """{column: {row: value}} of Table 1, values as printed (percent)."""
  with open(PAPER_TABLE) as f:
    rows = [r for r in csv.reader(f, delimiter='\t') if r and not r[0].startswith('#')]
  columns = rows[0][1:]
  return {col: {r[0]: r[i + 1] for r in rows[1:]} for i, col in enumerate(columns)}


def test_constants_are_the_spec_numbers():
  assert corruption_metrics.CORRUPTIONS == (
      'gaussian_noise', 'shot_noise', 'impulse_noise', 'defocus_blur', 'glass_blur',
      'motion_blur', 'zoom_blur', 'snow', 'frost', 'fog', 'brightness', 'contrast',
      'elastic_transform', 'pixelate', 'jpeg_compression')
  assert imagenet_c.ALEXNET_ERRORS == {
      'gaussian_noise': 0.886428, 'shot_noise': 0.894468, 'impulse_noise': 0.922640,
      'defocus_blur': 0.819880, 'glass_blur': 0.826268, 'motion_blur': 0.785948,
      'zoom_blur': 0.798360, 'snow': 0.866816, 'frost': 0.826572, 'fog': 0.819324,
      'brightness': 0.564592, 'contrast': 0.853204, 'elastic_transform': 0.646056,
      'pixelate': 0.717840, 'jpeg_compression': 0.606500}


def test_paper_errors_give_back_its_mce_and_average():
  columns = _paper_columns()
  assert len(columns) == 14
  for name, column in columns.items():
    errors = {c: float(column[c]) / 100 for c in corruption_metrics.CORRUPTIONS}
    assert abs(100 * imagenet_c.mce(errors) - float(column['mce'])) < 0.1, name
    assert abs(100 * imagenet_c.average_error(errors)
               - float(column['average_ce'])) < 0.1, name


def test_per_severity_lists_use_the_sum_over_severities():
  rng = np.random.RandomState(0)
  lists = {c: list(rng.uniform(0.2, 0.9, 5)) for c in corruption_metrics.CORRUPTIONS}
  means = {c: float(np.mean(v)) for c, v in lists.items()}
  expected = np.mean([sum(lists[c]) / (5 * imagenet_c.ALEXNET_ERRORS[c])
                      for c in corruption_metrics.CORRUPTIONS])
  assert imagenet_c.mce(lists) == pytest.approx(expected)
  assert imagenet_c.mce(means) == pytest.approx(expected)
  assert imagenet_c.average_error(lists) == pytest.approx(np.mean(list(means.values())))
  assert imagenet_c.mce(dict(imagenet_c.ALEXNET_ERRORS)) == pytest.approx(1.0)


@pytest.mark.parametrize('change, named', [
    (lambda e: e.pop('fog'), 'fog'),
    (lambda e: e.update(blur=0.5), 'blur'),
    (lambda e: e.update(fog=[0.5] * 4), 'fog'),
    (lambda e: e.update(fog=[0.5, 0.5, math.nan, 0.5, 0.5]), 'fog'),
    (lambda e: e.update(snow=math.inf), 'snow'),
    (lambda e: e.update(snow=45.0), 'snow'),
    (lambda e: e.update(snow='0.4'), 'snow'),
])
def test_bad_errors_are_value_errors_naming_the_corruption(change, named):
  errors = {c: 0.5 for c in corruption_metrics.CORRUPTIONS}
  change(errors)
  for function in (imagenet_c.mce, imagenet_c.average_error):
    with pytest.raises(ValueError, match=named):
      function(errors)


def test_summary_of_all_items_has_average_and_mce():
  corruptions, severities = corruption_metrics.CORRUPTIONS, corruption_metrics.SEVERITIES
  items = {corruption_metrics.item_key(c, s): {'error': 0.1 * s, 'num_examples': 2}
           for c in corruptions for s in severities}
  summary = imagenet_c.summarize(items, corruptions, severities)
  assert summary['average_error'] == pytest.approx(0.3)
  assert summary['mce'] == pytest.approx(np.mean(
      [0.3 / imagenet_c.ALEXNET_ERRORS[c] for c in corruptions]))
  assert summary['num_examples'] == 150


@pytest.fixture(scope='module')
def model_dir(tmp_path_factory):
  return ef.make_model_dir(str(tmp_path_factory.mktemp('model')), num_classes=1000)


def _write_item(model_dir, folder, seed):
  """Writes one severity folder; half the images go to the wnid the model predicts.

  Returns:
    The error a correct evaluation must report, from the model's own logits.
  """
  wnids = imagenet_classes.imagenet_wnids()
  images = ef.random_images(IMAGES_PER_ITEM, SIZE, SIZE, seed)
  contents = [ef.jpeg_bytes(image) for image in images]
  logits = ef.direct_logits(model_dir, np.stack([ef.decode_jpeg(c) for c in contents]))
  predictions = logits.argmax(axis=1)
  labels = [(p + (i % 2)) % 1000 for i, p in enumerate(predictions)]
  for i, (label, data) in enumerate(zip(labels, contents)):
    ef.write_file(os.path.join(folder, wnids[label], 'img%d.JPEG' % i), data)
  return float(np.mean(predictions != np.array(labels)))


@pytest.fixture(scope='module')
def dataset(model_dir, tmp_path_factory):
  """An ImageNet-C tree of 32x32 JPEGs and the errors the model must get on it."""
  root = str(tmp_path_factory.mktemp('imagenet_c'))
  expected = {}
  for seed, (corruption, severity) in enumerate(ITEMS):
    folder = os.path.join(root, corruption, str(severity))
    expected[corruption_metrics.item_key(corruption, severity)] = _write_item(
        model_dir, folder, seed)
  return root, expected


def _argv(model_dir, root, output, *extra):
  return ['--model_dir', model_dir, '--data_dir', root, '--output', output,
          '--corruptions', 'gaussian_noise,fog', '--severities', '1,3',
          '--batch_size', '8', '--image_size', str(SIZE)] + list(extra)


@pytest.fixture(scope='module')
def full_run(model_dir, dataset, tmp_path_factory):
  """One uninterrupted CLI run over the whole test tree; returns (output, data)."""
  output = str(tmp_path_factory.mktemp('out') / 'imagenet_c.json')
  data = imagenet_c.main(_argv(model_dir, dataset[0], output))
  return output, data


def test_evaluation_matches_the_models_own_predictions(dataset, full_run):
  _, expected = dataset
  output, data = full_run
  assert set(data['items']) == set(expected)
  for key, error in expected.items():
    assert data['items'][key]['error'] == pytest.approx(error)
    assert data['items'][key]['num_examples'] == IMAGES_PER_ITEM
  assert 0 < min(expected.values()) and max(expected.values()) < 1
  summary = data['summary']
  for corruption in ('gaussian_noise', 'fog'):
    assert summary['corruption_errors'][corruption] == pytest.approx(np.mean(
        [expected[corruption_metrics.item_key(corruption, s)] for s in (1, 3)]))
  assert summary['mce'] is None and summary['average_error'] is None
  with open(output) as f:
    assert json.load(f) == data
  assert data['complete']


@pytest.mark.slow
def test_resume_skips_done_items_and_writes_the_same_file(
    model_dir, dataset, full_run, tmp_path, monkeypatch):
  output = str(tmp_path / 'resumed.json')
  real = image_folders.evaluate_files
  calls = []

  def interrupted(*args, **kwargs):
    if len(calls) == 2:
      raise KeyboardInterrupt
    calls.append(1)
    return real(*args, **kwargs)

  monkeypatch.setattr(image_folders, 'evaluate_files', interrupted)
  with pytest.raises(KeyboardInterrupt):
    imagenet_c.main(_argv(model_dir, dataset[0], output))
  with open(output) as f:
    partial = json.load(f)
  assert len(partial['items']) == 2 and not partial['complete']

  def counted(*args, **kwargs):
    calls.append(1)
    return real(*args, **kwargs)

  monkeypatch.setattr(image_folders, 'evaluate_files', counted)
  imagenet_c.main(_argv(model_dir, dataset[0], output))
  assert len(calls) == 4
  with open(output, 'rb') as f, open(full_run[0], 'rb') as g:
    assert f.read() == g.read()


def _copy_tree(root, tmp_path):
  copy = str(tmp_path / 'root')
  shutil.copytree(root, copy)
  return copy


@pytest.mark.parametrize('breakage, flags, named', [
    ('remove_root', (), 'root'),
    (None, ('--corruptions', 'snow'), os.path.join('root', 'snow')),
    (None, ('--corruptions', 'fog,blurry'), 'blurry'),
    (None, ('--severities', '1,6'), "'6'"),
    (None, ('--batch_size', '0'), '--batch_size'),
    ('unknown_corruption_folder', (), 'blurry_fog'),
    ('unknown_severity_folder', (), os.path.join('fog', '7')),
    ('unknown_wnid_folder', (), 'n99999999'),
    ('no_images', (), os.path.join('fog', '3')),
    ('corrupt_jpeg', (), None),
    ('wrong_size', (), None),
])
def test_bad_input_exits_2_naming_it_and_writes_nothing(
    model_dir, dataset, tmp_path, capsys, breakage, flags, named):
  root = _copy_tree(dataset[0], tmp_path)
  if breakage == 'remove_root':
    root = str(tmp_path / 'root_missing')
  elif breakage == 'unknown_corruption_folder':
    os.makedirs(os.path.join(root, 'blurry_fog'))
  elif breakage == 'unknown_severity_folder':
    os.makedirs(os.path.join(root, 'fog', '7'))
  elif breakage == 'unknown_wnid_folder':
    os.makedirs(os.path.join(root, 'fog', '3', 'n99999999'))
  elif breakage == 'no_images':
    for wnid in os.listdir(os.path.join(root, 'fog', '3')):
      shutil.rmtree(os.path.join(root, 'fog', '3', wnid))
    os.makedirs(os.path.join(root, 'fog', '3', 'n01440764'))
  elif breakage == 'corrupt_jpeg':
    # gaussian_noise/1 is the first item, so nothing is finished before it.
    path = os.path.join(root, 'gaussian_noise', '1', 'n01440764', 'img_bad.JPEG')
    ef.write_file(path, ef.jpeg_bytes(ef.random_images(1, SIZE, SIZE, 9)[0])[:300])
    named = path
  elif breakage == 'wrong_size':
    path = os.path.join(root, 'gaussian_noise', '1', 'n01440764', 'img_big.JPEG')
    ef.write_file(path, ef.jpeg_bytes(ef.random_images(1, SIZE, SIZE + 8, 9)[0]))
    named = path
  output = str(tmp_path / 'out' / 'result.json')
  message = ef.cli_error(imagenet_c.main, _argv(model_dir, root, output, *flags), capsys)
  assert named in message, message
  assert not os.path.exists(os.path.dirname(output))


def test_corrupt_jpeg_in_a_later_item_keeps_only_finished_items(
    model_dir, dataset, tmp_path, capsys):
  root = _copy_tree(dataset[0], tmp_path)
  bad = os.path.join(root, 'fog', '1', 'n01440764', 'truncated.JPEG')
  ef.write_file(bad, ef.jpeg_bytes(ef.random_images(1, SIZE, SIZE, 3)[0])[:-200])
  output = str(tmp_path / 'result.json')
  message = ef.cli_error(imagenet_c.main, _argv(model_dir, root, output), capsys)
  assert bad in message
  with open(output) as f:
    data = json.load(f)
  assert sorted(data['items']) == ['gaussian_noise/1', 'gaussian_noise/3']
  assert not data['complete']


def test_output_of_another_evaluation_is_refused_and_kept(
    model_dir, dataset, tmp_path, capsys):
  output = str(tmp_path / 'other.json')
  with open(output, 'w') as f:
    f.write('{"evaluation": "pgd_linf", "header": {}, "items": {}}\n')
  with open(output) as f:
    before = f.read()
  message = ef.cli_error(imagenet_c.main, _argv(model_dir, dataset[0], output), capsys)
  assert output in message
  with open(output) as f:
    assert f.read() == before


def test_a_model_without_1000_classes_is_refused(dataset, tmp_path, capsys):
  small = ef.make_model_dir(str(tmp_path / 'model10'), num_classes=10)
  output = str(tmp_path / 'result.json')
  message = ef.cli_error(imagenet_c.main, _argv(small, dataset[0], output), capsys)
  assert '10-class' in message and not os.path.exists(output)
