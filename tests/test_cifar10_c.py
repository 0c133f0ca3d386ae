"""Tests eval.cifar10_c on small files in the released CIFAR-10-C format."""
import json
import os
import shutil

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '3')

import eval_fixtures as ef  # pylint: disable=g-import-not-at-top
import numpy as np
import pytest

from eval import cifar10_c
from eval import corruption_metrics
from eval import top1

PER_SEVERITY = 4  # rows per severity; the release has 10000.
N = 5 * PER_SEVERITY
PRESENT = ('fog', 'spatter')
BASELINE = {'fog': 0.5, 'spatter': 0.25, 'gaussian_noise': 0.75}


@pytest.fixture(scope='module')
def model_dir(tmp_path_factory):
  return ef.make_model_dir(str(tmp_path_factory.mktemp('model')), num_classes=10,
                           loss='ceb')


@pytest.fixture(scope='module')
def dataset(model_dir, tmp_path_factory):
  """A CIFAR-10-C folder and the per-row correctness the model must show on it.

  labels.npy puts every other image under the class the model predicts, so
  errors are neither 0 nor 1.
  """
  root = str(tmp_path_factory.mktemp('cifar10_c'))
  arrays = {c: ef.random_images(N, 32, 32, seed) for seed, c in enumerate(PRESENT)}
  predictions = {c: ef.direct_logits(model_dir, a).argmax(axis=1) for c, a in arrays.items()}
  labels = (predictions['fog'] + np.arange(N) % 2) % 10
  np.save(os.path.join(root, 'labels.npy'), labels.astype(np.int64))
  for corruption, images in arrays.items():
    np.save(os.path.join(root, corruption + '.npy'), images)
  correct = {c: p == labels for c, p in predictions.items()}
  with open(os.path.join(root, 'baseline.json'), 'w') as f:
    json.dump(BASELINE, f)
  return root, correct


def _argv(model_dir, root, output, *extra):
  return ['--model_dir', model_dir, '--data_dir', root, '--output', output,
          '--batch_size', '8'] + list(extra)


def _expected_errors(correct):
  return {c: [1 - np.mean(correct[c][(s - 1) * PER_SEVERITY:s * PER_SEVERITY])
              for s in range(1, 6)] for c in PRESENT}


@pytest.fixture(scope='module')
def full_run(model_dir, dataset, tmp_path_factory):
  output = str(tmp_path_factory.mktemp('out') / 'cifar10_c.json')
  baseline = os.path.join(dataset[0], 'baseline.json')
  return output, cifar10_c.main(_argv(model_dir, dataset[0], output,
                                      '--baseline_errors', baseline))


def test_severity_rows_split_any_multiple_of_five():
  assert cifar10_c.severity_rows(50000, 1) == slice(0, 10000)
  assert cifar10_c.severity_rows(50000, 5) == slice(40000, 50000)
  assert cifar10_c.severity_rows(15, 2) == slice(3, 6)


def test_evaluation_matches_the_models_own_predictions(dataset, full_run):
  expected = _expected_errors(dataset[1])
  data = full_run[1]
  for corruption, errors in expected.items():
    for severity, error in enumerate(errors, 1):
      item = data['items']['%s/%d' % (corruption, severity)]
      assert item['error'] == pytest.approx(error)
      assert item['num_examples'] == PER_SEVERITY
  summary = data['summary']
  means = {c: np.mean(e) for c, e in expected.items()}
  assert 0 < min(means.values()) and max(means.values()) < 1
  assert means['fog'] != pytest.approx(means['spatter'])  # Mixing them would show.
  # Only the benchmark corruption (fog) enters the average and the mCE.
  assert summary['corruption_errors'] == pytest.approx({'fog': means['fog']})
  assert summary['severity_errors'] == pytest.approx(
      {str(s): expected['fog'][s - 1] for s in range(1, 6)})
  assert summary['average_error'] == pytest.approx(means['fog'])
  assert summary['corruption_ce'] == pytest.approx({'fog': means['fog'] / BASELINE['fog']})
  assert summary['mce'] == pytest.approx(means['fog'] / BASELINE['fog'])
  # The extra corruption (spatter) is summarized on its own.
  extra = summary['extra_corruptions']
  assert extra['corruption_errors'] == pytest.approx({'spatter': means['spatter']})
  assert extra['severity_errors'] == pytest.approx(
      {str(s): expected['spatter'][s - 1] for s in range(1, 6)})
  assert extra['average_error'] == pytest.approx(means['spatter'])
  with open(full_run[0]) as f:
    assert json.load(f) == data


def test_printed_summary_has_the_extras_line_only_when_extras_were_evaluated(
    model_dir, dataset, full_run, tmp_path, capsys):
  baseline = os.path.join(dataset[0], 'baseline.json')
  capsys.readouterr()
  cifar10_c.main(_argv(model_dir, dataset[0], full_run[0], '--baseline_errors', baseline))
  lines = capsys.readouterr().out.splitlines()
  summary = full_run[1]['summary']
  assert ('benchmark corruptions (1 of 15): average error %.4f, mCE %.4f'
          % (summary['average_error'], summary['mce'])) in lines
  assert ('extra corruptions (spatter; not in the average or mCE): average error %.4f'
          % summary['extra_corruptions']['average_error']) in lines
  benchmark_only = cifar10_c.main(_argv(model_dir, dataset[0], str(tmp_path / 'fog.json'),
                                        '--corruptions', 'fog', '--baseline_errors',
                                        baseline))['summary']
  out = capsys.readouterr().out
  assert 'extra corruptions' not in out and 'benchmark corruptions' in out
  assert 'extra_corruptions' not in benchmark_only
  for key in ('corruption_errors', 'severity_errors', 'average_error', 'mce'):
    assert benchmark_only[key] == summary[key]


def _items(errors):
  return {'%s/%d' % (c, s): {'error': e} for c, per in errors.items()
          for s, e in enumerate(per, 1)}


def test_the_15_corruption_average_and_mce_ignore_the_4_extras():
  rng = np.random.RandomState(0)
  benchmark = {c: list(rng.uniform(0.1, 0.6, 5)) for c in corruption_metrics.CORRUPTIONS}
  extras = {c: list(rng.uniform(0.7, 0.9, 5))
            for c in corruption_metrics.EXTRA_CORRUPTIONS}
  baseline = {c: 0.5 for c in benchmark}
  severities = [1, 2, 3, 4, 5]
  alone = cifar10_c.summarize(_items(benchmark), list(benchmark), severities, baseline, 'b')
  both = cifar10_c.summarize(_items(dict(benchmark, **extras)), list(cifar10_c.CORRUPTIONS),
                             severities, baseline, 'b')
  means = [np.mean(e) for e in benchmark.values()]
  assert alone['average_error'] == pytest.approx(np.mean(means))
  assert alone['mce'] == pytest.approx(np.mean(means) / 0.5)
  assert {k: v for k, v in both.items() if k != 'extra_corruptions'} == alone
  assert both['extra_corruptions']['average_error'] == pytest.approx(
      np.mean([np.mean(e) for e in extras.values()]))
  assert sorted(both['extra_corruptions']['corruption_errors']) == sorted(extras)


def test_only_extras_give_no_average_and_no_mce():
  extras = {'spatter': [0.2] * 5, 'saturate': [0.4] * 5}
  summary = cifar10_c.summarize(_items(extras), ['spatter', 'saturate'], [1, 2, 3, 4, 5],
                                {}, 'b')
  assert summary['average_error'] is None and summary['mce'] is None
  assert summary['extra_corruptions']['average_error'] == pytest.approx(0.3)
  assert cifar10_c.format_summary(summary) == [
      'extra corruptions (spatter, saturate; not in the average or mCE): average error 0.3000']


def test_a_result_file_serves_as_the_baseline(model_dir, dataset, full_run, tmp_path):
  output = str(tmp_path / 'self.json')
  data = cifar10_c.main(_argv(model_dir, dataset[0], output,
                              '--baseline_errors', full_run[0]))
  assert data['summary']['mce'] == pytest.approx(1.0)


@pytest.mark.slow
def test_resume_skips_done_items_and_writes_the_same_file(
    model_dir, dataset, full_run, tmp_path, monkeypatch):
  output = str(tmp_path / 'resumed.json')
  real = top1.count_correct
  calls = []

  def interrupted(*args, **kwargs):
    if len(calls) == 3:
      raise KeyboardInterrupt
    calls.append(1)
    return real(*args, **kwargs)

  argv = _argv(model_dir, dataset[0], output, '--baseline_errors',
               os.path.join(dataset[0], 'baseline.json'))
  monkeypatch.setattr(top1, 'count_correct', interrupted)
  with pytest.raises(KeyboardInterrupt):
    cifar10_c.main(argv)
  with open(output) as f:
    assert len(json.load(f)['items']) == 3
  monkeypatch.setattr(top1, 'count_correct',
                      lambda *a, **k: calls.append(1) or real(*a, **k))
  cifar10_c.main(argv)
  assert len(calls) == 10
  with open(output, 'rb') as f, open(full_run[0], 'rb') as g:
    assert f.read() == g.read()


def test_corruptions_and_severities_flags_select_items(model_dir, dataset, tmp_path):
  data = cifar10_c.main(_argv(model_dir, dataset[0], str(tmp_path / 'r.json'),
                              '--corruptions', 'spatter', '--severities', '2,4',
                              '--baseline_errors',
                              os.path.join(dataset[0], 'baseline.json')))
  assert sorted(data['items']) == ['spatter/2', 'spatter/4']
  assert data['summary']['mce'] is None  # CE needs all five severities.


def _save(root, name, array):
  np.save(os.path.join(root, name), array)
  return os.path.join(root, name)


@pytest.mark.parametrize('breakage', [
    'missing_dir', 'no_labels', 'labels_2d', 'labels_out_of_range', 'labels_short',
    'wrong_shape', 'wrong_dtype', 'not_multiple_of_5', 'not_npy', 'unknown_file',
    'unknown_flag', 'named_file_missing', 'baseline_unknown', 'baseline_missing_entry',
    'baseline_percent', 'baseline_not_json', 'bad_severity',
])
def test_bad_input_exits_2_naming_it_and_writes_nothing(
    model_dir, dataset, tmp_path, capsys, breakage):
  root = str(tmp_path / 'data')
  shutil.copytree(dataset[0], root)
  flags = []
  labels = os.path.join(root, 'labels.npy')
  fog = os.path.join(root, 'fog.npy')
  baseline = os.path.join(root, 'baseline.json')
  named = {'labels_2d': labels, 'labels_out_of_range': labels, 'labels_short': fog,
           'wrong_shape': fog, 'wrong_dtype': fog, 'not_multiple_of_5': fog,
           'not_npy': fog}.get(breakage)
  if breakage == 'missing_dir':
    root = named = str(tmp_path / 'nowhere')
  elif breakage == 'no_labels':
    os.remove(labels)
    named = labels
  elif breakage == 'labels_2d':
    _save(root, 'labels.npy', np.zeros((N, 1), np.int64))
  elif breakage == 'labels_out_of_range':
    _save(root, 'labels.npy', np.full(N, 10, np.int64))
  elif breakage == 'labels_short':
    _save(root, 'labels.npy', np.zeros(N - 5, np.int64))
  elif breakage == 'wrong_shape':
    _save(root, 'fog.npy', np.zeros((N, 28, 28, 3), np.uint8))
  elif breakage == 'wrong_dtype':
    _save(root, 'fog.npy', np.zeros((N, 32, 32, 3), np.float32))
  elif breakage == 'not_multiple_of_5':
    _save(root, 'fog.npy', np.zeros((N - 1, 32, 32, 3), np.uint8))
  elif breakage == 'not_npy':
    with open(fog, 'wb') as f:
      f.write(b'this is not a numpy file')
  elif breakage == 'unknown_file':
    named = _save(root, 'blurry.npy', np.zeros((N, 32, 32, 3), np.uint8))
  elif breakage == 'unknown_flag':
    flags, named = ['--corruptions', 'fog,blurry'], 'blurry'
  elif breakage == 'named_file_missing':
    flags, named = ['--corruptions', 'frost'], os.path.join(root, 'frost.npy')
  elif breakage.startswith('baseline'):
    content = {'baseline_unknown': dict(BASELINE, blurry=0.5),
               'baseline_missing_entry': {'spatter': 0.25},  # fog is required
               'baseline_percent': dict(BASELINE, fog=50.0)}.get(breakage)
    with open(baseline, 'w') as f:
      f.write(json.dumps(content) if content else '{"fog": 0.5,')
    flags, named = ['--baseline_errors', baseline], baseline
  elif breakage == 'bad_severity':
    flags, named = ['--severities', '0'], "'0'"
  output = str(tmp_path / 'out' / 'r.json')
  message = ef.cli_error(cifar10_c.main, _argv(model_dir, root, output, *flags), capsys)
  assert named in message, message
  assert not os.path.exists(os.path.dirname(output))
