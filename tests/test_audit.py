"""The robustness audit (eval/audit.py and its engine, indicators and sweep).

On linear models whose exact robust accuracy is known (tests/attack_fixtures):
the audit must reach it, also where PGD-20 cannot (a softmax saturated in
float32) and where no gradient exists (round, stop_gradient, NaN), and its
indicators must say why. Then the sweep: ascending, monotone, resumable to the
same file, with transferred examples; the SPEC signature, bad input, and the
command line end to end on a tiny WRN checkpoint.
"""
import inspect
import json
import os

import attack_fixtures as fixtures
import eval_fixtures
import numpy as np
import pytest

from eval import audit
from eval.audit import command as audit_command
from eval.audit import engine
from eval.audit import indicators
from eval.audit import specs
from eval.audit import sweep
from eval.kit import results
from eval.report import results_reader
from resnet_ceb import fileio

LINF, L2 = ('linf', 4.0), ('l2', 8.0)


def _small(square_queries=300):
  """The standard sequence on a small budget."""
  return [specs.Pgd(), specs.Apgd('ce', num_steps=20),
          specs.Apgd('targeted-dlr', num_steps=20), specs.Fab(num_steps=10),
          specs.Square(num_queries=square_queries)]


def _audit(model, images, labels, threat, **kwargs):
  norm, epsilon = threat
  kwargs.setdefault('attacks', _small())
  return audit.run_audit(model.logits_fn, images, labels, norm=norm, epsilon=epsilon,
                         **kwargs)


def _names(flags):
  return {indicators.flag_name(flag) for flag in flags}


def _check_result(result, model, images, labels, threat, truth):
  """The audit found the exact answer, with valid witnesses and a monotone curve."""
  np.testing.assert_array_equal(result.robust, truth)
  fooled = ~result.robust & (model.predict(images) == labels)
  fixtures.check_witnesses(images, result.adversarial, labels, model, *threat, fooled)
  np.testing.assert_array_equal(result.adversarial[result.robust], images[result.robust])
  curve = list(result.per_attack.values())
  assert curve == sorted(curve, reverse=True) and curve[-1] == result.accuracy
  assert result.indicators['unbounded_accuracy'] == 0.0


def test_run_audit_has_the_spec_signature():
  parameters = inspect.signature(audit.run_audit).parameters
  assert list(parameters) == ['logits_fn', 'images', 'labels', 'norm', 'epsilon', 'attacks',
                              'seed', 'batch_size', 'restore_fn']
  keyword_only = {name for name, p in parameters.items() if p.kind == p.KEYWORD_ONLY}
  assert keyword_only == set(list(parameters)[3:])
  defaults = {name: p.default for name, p in parameters.items() if p.default is not p.empty}
  assert defaults == {'attacks': None, 'seed': 0, 'batch_size': 256, 'restore_fn': None}


@pytest.mark.parametrize('threat', [LINF, L2])
def test_reaches_the_exact_robust_accuracy_of_a_linear_model(threat):
  model = fixtures.LinearModel()
  images, labels, truth = fixtures.clear_cut_examples(model, *threat, 16)
  result = _audit(model, images, labels, threat, batch_size=10)
  _check_result(result, model, images, labels, threat, truth)
  assert list(result.per_attack) == ['clean', 'pgd20', 'apgd-ce', 'apgd-t', 'fab-t', 'square']
  assert result.flags == [] and result.verdict == indicators.NO_SIGN
  assert result.adversarial.dtype == np.float32 and result.robust.dtype == bool


def test_a_saturated_softmax_hides_from_pgd20_not_from_the_audit():
  # Logits x 1e4: float32 softmax rounds to one-hot, so cross-entropy and its
  # gradient are exactly 0 at every clean-correct example; DLR does not care.
  model = fixtures.LinearModel(scale=1e4)
  images, labels, truth = fixtures.clear_cut_examples(model, *LINF, 16)
  result = _audit(model, images, labels, LINF)
  _check_result(result, model, images, labels, LINF, truth)
  assert result.pgd20_accuracy == result.clean_accuracy > result.accuracy
  assert {'gradient_zero', 'never_raised_loss', 'pgd20_audit_gap'} <= _names(result.flags)
  assert result.indicators['gradient_zero'] == result.clean_accuracy
  assert result.indicators['never_raised_loss']['pgd20'] == result.clean_accuracy
  assert 'gradient_zero' in result.verdict


@pytest.mark.parametrize('layer, threat, gap, broken', [
    ('round', LINF, 0.5, 'gradient_none'),
    ('nan_gradient', LINF, 0.5, 'gradient_nonfinite'),
    ('stop_gradient', L2, 1.0, 'gradient_none')])
def test_models_without_a_gradient_fall_to_square_and_are_flagged(layer, threat, gap, broken):
  model = fixtures.LinearModel(input_layer=layer)
  images, labels, truth = fixtures.clear_cut_examples(model, *threat, 16, gap=gap)
  # Square alone must find every L-inf corner here: 1,000 queries leave it no
  # example to miss, whatever seed its place in the sequence gives it.
  result = _audit(model, images, labels, threat, attacks=_small(square_queries=1000))
  _check_result(result, model, images, labels, threat, truth)
  assert {broken, 'gradient_free_only', 'gradient_broken_in_attack'} <= _names(result.flags)
  assert result.indicators[broken] == 1.0
  assert result.per_attack['apgd-ce'] > result.per_attack['square']


def test_same_seed_same_audit():
  model = fixtures.LinearModel()
  images, labels, _ = fixtures.clear_cut_examples(model, *LINF, 8)
  small = [specs.Apgd('ce', num_steps=5), specs.Square(num_queries=20)]
  first, again = (_audit(model, images, labels, LINF, attacks=small, seed=3) for _ in '12')
  np.testing.assert_array_equal(first.adversarial, again.adversarial)
  assert (first.per_attack, first.indicators) == (again.per_attack, again.indicators)


def _constant_logits(model):
  """A logits_fn that ignores its input: the model's bias, still graph-connected to x."""
  return lambda x: 0.0 * model.logits_fn(x) + model.bias


def test_a_model_no_radius_can_fool_fails_the_unbounded_check():
  model = fixtures.LinearModel()
  images, labels, _ = fixtures.clear_cut_examples(model, *LINF, 8, misclassified=0)
  labels[:] = np.argmax(model.bias)
  constant = _constant_logits(model)

  result = audit.run_audit(constant, images, labels, norm='linf', epsilon=4.0,
                           attacks=['pgd20', specs.Square(num_queries=20)])
  assert result.indicators['unbounded_accuracy'] == 1.0
  assert 'unbounded_accuracy' in _names(result.flags)


def test_an_example_never_fooled_costs_each_attack_its_whole_gradient_budget():
  model = fixtures.LinearModel()
  images, labels, _ = fixtures.clear_cut_examples(model, *LINF, 3, misclassified=0)
  labels[:] = np.argmax(model.bias)
  constant = _constant_logits(model)

  attacks = [specs.Pgd(), specs.Apgd('ce', num_steps=4, num_restarts=2),
             specs.Apgd('dlr', num_steps=3),
             specs.Apgd('targeted-dlr', num_steps=5, num_targets=2),
             specs.Fab(num_targets=3, num_steps=4, num_restarts=2), specs.Square(num_queries=6)]
  assert [a.gradient_budget() for a in attacks] == [20, 10, 4, 12, 30, 0]
  with engine.Auditor(constant, images.shape[1:], norm='linf', epsilons=[4.0],
                      attacks=attacks, batch_size=8) as auditor:
    clean = auditor.clean(images, labels)
    everyone = np.ones(len(labels), bool)
    for index, attack in enumerate(attacks):
      record = auditor.attack(index, 4.0, clean, everyone)
      assert not record.fooled.any()
      assert record.gradient_passes == len(labels) * attack.gradient_budget(), attack


def test_an_audit_with_nothing_to_attack_is_no_error():
  model = fixtures.LinearModel()
  images, labels, _ = fixtures.clear_cut_examples(model, *LINF, 4, misclassified=0)
  result = _audit(model, images, (labels + 1) % fixtures.NUM_CLASSES, LINF,
                  attacks=['pgd20', specs.Square(num_queries=5)])
  assert result.per_attack == {'clean': 0.0, 'pgd20': 0.0, 'square': 0.0}
  np.testing.assert_array_equal(result.adversarial, images)
  assert not result.robust.any() and result.indicators['unbounded_accuracy'] == 0.0


@pytest.mark.parametrize('change, message', [
    (dict(attacks=['fab']), 'unknown attack'),
    (dict(attacks='apgd-ce'), 'list'),
    (dict(attacks=['pgd20', 'pgd20']), 'twice'),
    (dict(attacks=[specs.Apgd('ce', num_steps=0)]), 'num_steps'),
    (dict(epsilon=-1.0), 'epsilon'),
    (dict(norm='l1'), 'norm'),
    (dict(labels=-np.ones(4, int)), 'labels must be >= 0'),
    (dict(labels=np.zeros(3, int)), 'labels must be integers of shape'),
    (dict(labels=np.zeros(4)), 'labels must be integers'),
    (dict(images=np.full((4,) + fixtures.SHAPE, 256.0)), r'\[0, 255\]'),
    (dict(images=np.full((4,) + fixtures.SHAPE, np.nan)), r'\[0, 255\]'),
    (dict(images=np.zeros((4, 48))), r'\[N, H, W, C\]'),
    (dict(batch_size=0), 'batch_size'),
    (dict(seed=-1), 'seed'),
])
def test_bad_input_is_a_clear_error(change, message):
  arguments = dict(images=np.zeros((4,) + fixtures.SHAPE), labels=np.zeros(4, int),
                   norm='linf', epsilon=4.0, attacks=['pgd20'])
  arguments.update(change)
  with pytest.raises(ValueError, match=message):
    audit.run_audit(fixtures.LinearModel().logits_fn, **arguments)


def test_labels_beyond_the_models_classes_are_a_clear_error():
  with pytest.raises(ValueError, match=r'labels must lie in \[0, 10\)'):
    audit.run_audit(fixtures.LinearModel().logits_fn, np.zeros((2,) + fixtures.SHAPE),
                    [3, 10], norm='linf', epsilon=1.0, attacks=['pgd20'])


# ---------------------------------------------------------------------------
# The sweep.


# Enough for the linear model under L-inf (PGD-20 alone reaches its truth); cheap to build.
_SWEEP_ATTACKS = (specs.Pgd(), specs.Apgd('ce', num_steps=10),
                  specs.Square(num_queries=30))


def _sweep(model, images, labels, path, epsilons, transfer_fn=None, attacks=None,
           result_file=None):
  """run_sweep into a result file at `path`; returns the summary."""
  header = {'model_dir': 'test', 'step': 0, 'model_params': {}, 'flags': {}}
  result_file = result_file or results.ResultFile(str(path), 'audit_linf', header)
  radii = list(epsilons) + [engine.UNBOUNDED_EPSILON['linf']]
  with engine.Auditor(model.logits_fn, fixtures.SHAPE, norm='linf', epsilons=radii,
                      attacks=attacks or _SWEEP_ATTACKS, batch_size=10) as auditor:
    return sweep.run_sweep(auditor, auditor.clean(images, labels), epsilons,
                           result_file, transfer_fn)


def test_sweep_is_ascending_monotone_and_carries_the_fooled(tmp_path):
  model = fixtures.LinearModel()
  images, labels, truth = fixtures.clear_cut_examples(model, *LINF, 16)
  summary = _sweep(model, images, labels, tmp_path / 'a.json', [8.0, 1.0, 4.0])
  assert summary['epsilons'] == [1.0, 4.0, 8.0]
  assert summary['accuracy'] == sorted(summary['accuracy'], reverse=True)
  assert summary['accuracy'][1] == np.mean(truth)
  assert summary['indicators']['unbounded_accuracy'] == 0.0
  items = fileio.read_json(str(tmp_path / 'a.json'))['items']
  assert sorted(items) == ['eps=1', 'eps=4', 'eps=8']
  # Larger radii attack only the survivors of smaller ones: fewer APGD passes.
  passes = [items[key]['passes']['apgd-ce']['gradient'] for key in ('eps=1', 'eps=4', 'eps=8')]
  assert passes[0] > passes[1] > passes[2]
  # Each attack's wall seconds and the checks' are recorded beside its passes.
  for item in items.values():
    assert set(item['seconds']) == set(item['passes']) | {'checks'}
    assert all(seconds >= 0 for seconds in item['seconds'].values())
  with np.load(str(tmp_path / 'a.carry.npz')) as carry:
    fooled_at = carry['fooled_at']
  correct = model.predict(images) == labels
  np.testing.assert_array_equal(correct & (fooled_at <= 4.0), correct & ~truth)
  assert set(items['eps=4']) >= {'epsilon', 'num_examples', 'clean_accuracy',
                                 'pgd20_accuracy', 'accuracy', 'per_attack', 'indicators',
                                 'flags'}
  assert set(summary) >= {'epsilons', 'accuracy', 'pgd20_accuracy', 'clean_accuracy',
                          'flags', 'verdict'}


class _InterruptedError(Exception):
  pass


def test_an_interrupted_sweep_resumes_to_the_same_file(tmp_path):
  model = fixtures.LinearModel()
  images, labels, _ = fixtures.clear_cut_examples(model, *LINF, 12)
  epsilons = [1.0, 4.0, 8.0]
  _sweep(model, images, labels, tmp_path / 'whole.json', epsilons)

  class Crashing(results.ResultFile):
    """Dies writing its second item, after the sidecar already holds it."""

    def add(self, key, value):
      if len(self.items) == 1:
        raise _InterruptedError(key)
      super().add(key, value)

  header = {'model_dir': 'test', 'step': 0, 'model_params': {}, 'flags': {}}
  with pytest.raises(_InterruptedError):
    _sweep(model, images, labels, None, epsilons, result_file=Crashing(
        str(tmp_path / 'resumed.json'), 'audit_linf', header))
  assert list(fileio.read_json(str(tmp_path / 'resumed.json'))['items']) == ['eps=1']
  _sweep(model, images, labels, tmp_path / 'resumed.json', epsilons)

  def timeless(name):
    """The result file without the wall seconds, the one thing two runs may differ in."""
    data = fileio.read_json(str(tmp_path / name))
    for item in data['items'].values():
      assert item.pop('seconds')
    return data

  assert timeless('resumed.json') == timeless('whole.json')
  with np.load(str(tmp_path / 'whole.carry.npz')) as a, \
       np.load(str(tmp_path / 'resumed.carry.npz')) as b:
    np.testing.assert_array_equal(a['fooled_at'], b['fooled_at'])


def test_transferred_examples_count_and_flag_what_white_box_missed(tmp_path):
  # The same weights behind stop_gradient: white-box attacks are blind, but
  # APGD on the differentiable twin makes examples that transfer exactly.
  twin = fixtures.LinearModel()
  blind = fixtures.LinearModel(input_layer='stop_gradient')
  images, labels, truth = fixtures.clear_cut_examples(twin, *LINF, 12)
  with engine.Auditor(twin.logits_fn, fixtures.SHAPE, norm='linf', epsilons=[4.0],
                      attacks=(specs.Apgd('ce', num_steps=20),)) as source:
    summary = _sweep(blind, images, labels, tmp_path / 't.json', [4.0],
                     lambda epsilon: source.adversarial(0, epsilon, images, labels),
                     attacks=[specs.Pgd(), specs.Apgd('ce', num_steps=5)])
  item = fileio.read_json(str(tmp_path / 't.json'))['items']['eps=4']
  assert item['accuracy'] == np.mean(truth)
  assert item['per_attack']['apgd-ce'] == item['clean_accuracy'] > item['per_attack']['transfer']
  assert item['indicators']['transfer_only'] == item['clean_accuracy'] - np.mean(truth)
  assert 'transfer_only' in _names(summary['flags'])


# ---------------------------------------------------------------------------
# The command line, end to end.


def _model_dir(path, seed):
  """A tiny random WRN model_dir recorded as a CIFAR-10 model."""
  model_dir = eval_fixtures.make_model_dir(str(path), num_classes=10, seed=seed)
  params_path = os.path.join(model_dir, 'params.json')
  recorded = fileio.read_json(params_path)
  recorded['params'].update(dataset='cifar10', augment_name='none')
  fileio.atomic_write_json(params_path, recorded)
  return model_dir


@pytest.mark.slow
def test_command_line_writes_the_result_file_the_report_reads(tmp_path, capsys):
  model_dir = _model_dir(tmp_path / 'model', seed=0)
  flags = ['--model_dir', model_dir, '--dataset', 'cifar10', '--fake_data',
           '--num_examples', '30', '--epsilons', '2', '--apgd_steps', '2', '--apgd_targets', '2',
           '--square_queries', '5', '--schedule', 'stretched', '--eot_samples', '2',
           '--convergence_sample', '4', '--batch_size', '30']
  summary = audit_command.main(flags)
  path = results.default_path(model_dir, 'audit_linf', 7)
  written = fileio.read_json(path)
  assert written['complete'] and written['summary'] == summary
  assert summary['verdict'] in capsys.readouterr().out
  parsed = results_reader.read_result(path)
  assert parsed.metrics['verdict'] == summary['verdict']
  assert audit_command.main(flags) == summary  # Complete: nothing is attacked again.
  with pytest.raises(SystemExit) as exit_info:
    audit_command.main(flags[:-1] + ['0'])
  assert exit_info.value.code == 2 and 'error: --batch_size' in capsys.readouterr().err
  attacks = written['header']['flags']['attacks']
  assert [a.get('schedule') for a in attacks] == [None, 'stretched', 'stretched', None,
                                                  'stretched']
  assert attacks[1]['eot_samples'] == 2
  assert written['header']['flags']['convergence_sample'] == 4
  assert {'randomized_logits', 'single_step_beats_iterative', 'noise_beats_gradient'} <= set(
      written['items']['eps=2']['indicators'])
  assert json.loads(json.dumps(summary)) == summary
