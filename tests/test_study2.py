"""The second study: its verdict rules on hand-made inputs, its driver stubbed, its tiny preset."""
import json
import os
import subprocess

from cifar_fixtures import write_cifar_python
from conftest import REPO_ROOT
import numpy as np
import pytest

from eval.audit import sweep as audit_sweep
from resnet_ceb import fileio
from studies import study2
from studies import study2_report
from studies import verdict

N = 500
SCHEMA_MODEL_KEYS = {'objective', 'rho', 'seed', 'train_accuracy', 'test_accuracy',
                     'train_gain_last_20pct', 'pgd20', 'audit', 'audit_robust_linf_2'}
RADIUS_KEYS = {'linf_1', 'linf_2', 'linf_4', 'l2_32', 'l2_64'}


def _bits(robust_count, offset=0):
  """A bit string of N with `robust_count` ones starting at `offset`."""
  bits = np.zeros(N, int)
  bits[offset:offset + robust_count] = 1
  return ''.join(map(str, bits))


def _model(objective, seed, rho=None, *, train=0.99, test=0.50, gain=0.002, robust=100,
           offset=0, pgd=0.30, l2=0.20):
  audit = {key: 0.1 for key in RADIUS_KEYS}
  audit.update(linf_2=robust / N, l2_64=l2)
  pgd20 = {key: 0.2 for key in RADIUS_KEYS}
  pgd20.update(linf_2=pgd)
  return {'objective': objective, 'rho': rho, 'seed': seed, 'train_accuracy': train,
          'test_accuracy': test, 'train_gain_last_20pct': gain, 'pgd20': pgd20,
          'audit': audit, 'audit_robust_linf_2': _bits(robust, offset)}


def _study(ceb=None, xent=None, stage1=None):
  """XEnt and CEB rho=2 at seeds 0-2, plus stage-1 CEB rho=1 (collapsed) and rho=5.

  `ceb` and `xent` override the paired models' fields, `stage1` rho=1's.
  """
  models = [_model('ceb', 0, 1.0, test=0.30, **(stage1 or {})),
            _model('ceb', 0, 5.0, test=0.52)]
  for seed in range(3):
    models.append(_model('xent', seed, **(xent or {})))
    models.append(_model('ceb', seed, 2.0, test=0.495, **(ceb or {})))
  return models


def _judge(models):
  return verdict.judge(models, [0, 1, 2], num_samples=2000)


def test_shows_when_every_pair_gains_and_l2_agrees():
  found = _judge(_study(ceb={'robust': 150, 'l2': 0.25}))
  assert found['rho_star'] == 2.0  # rho=1 is 20 points below; 0.495 is within 1 point.
  assert found['gates'] == {'G1': True, 'G2': True, 'G3': True}
  assert found['delta']['pairs'] == pytest.approx([0.1, 0.1, 0.1])
  assert found['delta']['mean'] == pytest.approx(0.1)
  lower, upper = found['delta']['ci95']
  assert 0.05 < lower <= 0.1 <= upper < 0.15
  assert found['verdict'] == 'shows'


def test_pgd_only_when_pgd20_gains_but_the_audit_does_not():
  # Same robust images under the audit; PGD-20 alone says +0.08.
  found = _judge(_study(ceb={'robust': 100, 'pgd': 0.38}))
  assert found['delta']['mean'] == 0.0 and found['delta']['ci95'] == [0.0, 0.0]
  assert found['delta']['pgd20_linf_2_mean'] == pytest.approx(0.08)
  assert found['verdict'] == 'pgd-only'


def test_does_not_show_when_the_audit_ci_stays_below_three_points():
  found = _judge(_study(ceb={'robust': 75, 'pgd': 0.30}))
  assert found['delta']['mean'] == pytest.approx(-0.05)
  assert found['delta']['ci95'][1] < 0.03
  assert found['verdict'] == 'does not show'


def test_inconclusive_names_the_failed_gate():
  # XEnt does not interpolate: train 0.90 (G1), although CEB gains.
  found = _judge(_study(ceb={'robust': 150}, xent={'train': 0.90}))
  assert found['gates']['G1'] is False
  assert found['verdict'] == 'inconclusive' and 'G1 failed' in found['verdict_reason']
  # Test accuracy too close to train: G1 fails on the gap alone.
  assert _judge(_study(xent={'test': 0.86}))['gates']['G1'] is False
  # A model still learning over its last 20% (G3).
  found = _judge(_study(ceb={'gain': 0.02, 'robust': 150}))
  assert found['gates']['G3'] is False and 'G3 failed' in found['verdict_reason']


def test_inconclusive_when_the_ci_straddles_the_thresholds():
  # Pairs +0.04 each: mean below +0.05, CI upper bound above +0.03.
  found = _judge(_study(ceb={'robust': 120}))
  assert found['delta']['mean'] == pytest.approx(0.04)
  assert found['delta']['ci95'][1] >= 0.03
  assert found['verdict'] == 'inconclusive' and 'neither shows' in found['verdict_reason']


def test_shows_needs_every_pair_positive_and_l2_measured():
  models = _study(ceb={'robust': 200, 'l2': 0.25})
  worse = [m for m in models if m['objective'] == 'ceb' and m['seed'] == 2][0]
  worse['audit_robust_linf_2'] = _bits(100, 3)  # Delta 0 in pair 2, mean still +0.133.
  found = _judge(models)
  assert found['delta']['pairs'][2] == 0.0 and found['delta']['mean'] > 0.05
  assert found['verdict'] == 'inconclusive'
  models = _study(ceb={'robust': 150})
  for model in models:
    model['audit']['l2_64'] = None
  found = _judge(models)
  assert found['delta']['audit_l2_64_mean'] is None
  assert found['verdict'] == 'inconclusive' and 'L2 eps=64' in found['verdict_reason']


def test_missing_values_are_null_and_inconclusive_never_a_crash():
  models = _study(ceb={'robust': 150})
  models[-1]['audit_robust_linf_2'] = None  # CEB seed 2 was not audited.
  models[-1]['train_gain_last_20pct'] = None
  found = _judge(models)
  assert found['delta']['mean'] is None and found['delta']['ci95'] is None
  assert found['gates']['G3'] is None
  assert found['verdict'] == 'inconclusive' and 'G3 not measured' in found['verdict_reason']
  models = _study()
  models[2]['train_accuracy'] = None  # XEnt seed 0.
  assert _judge(models)['gates']['G1'] is None
  models = _study()
  models[2]['test_accuracy'] = None
  found = _judge(models)
  assert found['rho_star'] is None and found['gates']['G2'] is None
  assert found['delta']['pairs'] is None and found['verdict'] == 'inconclusive'
  # The PGD-20 number the pgd-only rule reads is missing: which of the two cannot be told.
  models = _study(ceb={'robust': 75})
  models[3]['pgd20']['linf_2'] = None
  found = _judge(models)
  assert found['delta']['pgd20_linf_2_mean'] is None
  assert found['verdict'] == 'inconclusive' and 'pgd-only' in found['verdict_reason']


def test_rho_star_is_the_lowest_rho_within_one_point_and_g2_fails_without_one():
  models = [_model('xent', 0, test=0.50), _model('ceb', 0, 3.0, test=0.49),
            _model('ceb', 0, 5.0, test=0.55), _model('ceb', 0, 1.0, test=0.4899)]
  assert verdict.rho_star(models) == 3.0  # Exactly 1 point below counts; 1.01 does not.
  models[1]['test_accuracy'] = None
  assert verdict.rho_star(models) == 5.0
  low = [_model('xent', 0, test=0.50), _model('ceb', 0, 5.0, test=0.30)]
  assert verdict.rho_star(low) is None and verdict.gate_g2(low) is False
  found = verdict.judge(low, [], num_samples=10)
  assert found['delta']['mean'] is None
  assert found['verdict'] == 'inconclusive' and 'G2 failed' in found['verdict_reason']


def test_bootstrap_resamples_seeds_and_images_reproducibly():
  same = np.ones((3, N), int)
  assert verdict.bootstrap_ci(same, 100) == [1.0, 1.0]
  # Pairs disagree (+0.2, 0, -0.2): resampling seeds alone gives a wide interval.
  rows = np.zeros((3, N), int)
  rows[0, :100], rows[2, :100] = 1, -1
  lower, upper = verdict.bootstrap_ci(rows, 4000)
  assert lower < -0.1 and upper > 0.1
  assert verdict.bootstrap_ci(rows, 4000) == [lower, upper]
  with pytest.raises(ValueError, match='different lengths'):
    models = _study()
    models[3]['audit_robust_linf_2'] = '01'
    verdict.paired_differences(models, 2.0, [0])
  with pytest.raises(ValueError, match='0/1 characters'):
    models = _study()
    models[3]['audit_robust_linf_2'] = 'x' * N
    verdict.paired_differences(models, 2.0, [0])


def test_run_cifar_study_routes_the_overparam_presets_to_the_second_study():
  function = subprocess.run(['sed', '-n', '/^study_module()/,/^}/p',
                             os.path.join(REPO_ROOT, 'run_cifar.sh')],
                            capture_output=True, text=True, check=True).stdout
  assert function

  def module(*args):
    script = function + '\nstudy_module "$@"'
    return subprocess.run(['bash', '-c', script, 'study'] + list(args), capture_output=True,
                          text=True, check=True).stdout.strip()
  assert module('--preset', 'overparam', '--data_dir', 'd') == 'studies.study2'
  assert module('--data_dir', 'd', '--preset=overparam_tiny') == 'studies.study2'
  assert module('--preset', 'full') == 'studies.study'
  assert module('--data_dir', 'overparam') == 'studies.study'
  assert module() == 'studies.study'


class _Stages:
  """Stands in for training, the checkpoint curves, the audit and the clean pass."""

  def __init__(self, monkeypatch, test_accuracy):
    self.calls, self.test_accuracy = [], test_accuracy
    monkeypatch.setattr(study2, 'train_in_subprocess', self.train)
    monkeypatch.setattr(study2.checkpoint_curve, 'evaluate_checkpoints', self.curve)
    monkeypatch.setattr(study2.audit_command, 'run', self.audit)
    monkeypatch.setattr(study2, 'clean_correct', self.clean_correct)

  def train(self, argv):
    flags = dict(arg[2:].split('=', 1) for arg in argv if '=' in arg)
    seed_dir, name = flags['model_dir'].split(os.sep)[-2:]
    self.calls.append(('train', seed_dir, name, flags, set(argv)))

  def curve(self, model_dir, *, train, test, attacks, num_examples, data_flags, log):
    self.calls.append(('curve', model_dir, len(train[0]), len(test[0]), attacks))
    name = os.path.basename(model_dir)
    test_accuracy = self.test_accuracy[name]
    # Checkpoints every 2 of 10 steps: step 8 is 80% of training.
    return [{'step': s, 'train_accuracy': 0.5 + s / 20 - (0.004 if s == 8 else 0),
             'test_accuracy': test_accuracy} for s in (0, 2, 4, 6, 8, 10)]

  def audit(self, args):
    self.calls.append(('audit', args))
    # Image i is fooled at radius 1 + i % 3 (clean-wrong images are never fooled).
    epsilons = [float(e) for e in args.epsilons.split(',')]
    labels = study2.cifar_input.load_dataset(None, 'test', True)[1][:args.num_examples]
    fooled_at = 1.0 + np.arange(args.num_examples) % 3
    correct = self.clean_correct(args.model_dir, None, labels)
    fooled_at[~correct] = np.inf
    robust = {e: correct & ~(fooled_at <= e) for e in epsilons}
    items = {'eps=%g' % e: {'epsilon': e, 'accuracy': float(robust[e].mean()),
                            'pgd20_accuracy': float(robust[e].mean()) + 0.01}
             for e in epsilons}
    os.makedirs(os.path.dirname(args.output), exist_ok=True)
    fileio.atomic_write_json(args.output, {'items': items})
    np.savez(audit_sweep.carry_path(args.output), fooled_at=fooled_at, labels=labels)

  def clean_correct(self, model_dir, images, labels):
    return np.arange(len(labels)) % 4 != 0

  def of(self, kind):
    return [call[1:] for call in self.calls if call[0] == kind]


def _run(tmp_path, *extra):
  root = tmp_path / 'root'
  argv = ['--preset', 'overparam_tiny', '--fake_data', '--model_root', str(root),
          '--docs_dir', str(tmp_path / 'docs'), '--rhos', '2,5', '--seeds', '2'] + list(extra)
  assert study2.main(argv) == 0
  with open(root / 'study2' / 'summary.json') as f:
    return root, json.load(f)


def test_driver_trains_stage1_picks_rho_star_then_pairs_and_audits_all(tmp_path, monkeypatch):
  # rho=2 is 3 points below XEnt (not within 1), rho=5 is within: rho* = 5.
  stages = _Stages(monkeypatch, {'xent': 0.30, 'ceb_rho2': 0.27, 'ceb_rho5': 0.295})
  root, summary = _run(tmp_path)
  trained = [(seed, name) for seed, name, *_ in stages.of('train')]
  assert trained == [('seed0', 'xent'), ('seed0', 'ceb_rho2'), ('seed0', 'ceb_rho5'),
                     ('seed1', 'xent'), ('seed1', 'ceb_rho5')]
  tiny = study2.PRESETS['overparam_tiny']
  for seed, name, flags, argv in stages.of('train'):
    # Crop and flip only; real seeds; 10 steps, a checkpoint every 2 (5 kept, plus room).
    assert flags['augment_name'] == 'none' and flags['num_train_images'] == '256'
    assert (flags['depth'], flags['width'], flags['train_epochs']) == ('10', '1', '5')
    assert (flags['train_batch_size'], flags['save_checkpoints_steps'],
            flags['keep_checkpoint_max'], flags['seed']) == ('128', '2', '7', seed[4:])
    assert {'--deterministic', '--fake_data'} <= argv and flags['loss'] == name.split('_')[0]
    assert flags.get('rho') == (None if name == 'xent' else name[len('ceb_rho'):])
  # Curves on the training prefix and every test image; no attack at checkpoints.
  assert {c[1:] for c in stages.of('curve')} == {(256, 40, ())}
  audits = [args for (args,) in stages.of('audit')]
  assert [(os.path.relpath(a.model_dir, root), a.norm) for a in audits] == [
      (os.path.join(s, n), norm) for s, n in trained for norm in ('linf', 'l2')]
  for args in audits:
    assert args.epsilons == {'linf': '2', 'l2': '64'}[args.norm]
    assert (args.num_examples, args.apgd_targets, args.fab_targets, args.square_queries,
            args.seed) == (tiny['audit_examples'], tiny['apgd_targets'], tiny['fab_targets'],
                           tiny['square_queries'], 0)
    assert args.transfer_from is None and args.fake_data
  assert summary['rho_star'] == 5.0
  assert [(m['objective'], m['rho'], m['seed']) for m in summary['models']] == [
      ('xent', None, 0), ('ceb', 2.0, 0), ('ceb', 5.0, 0), ('xent', None, 1), ('ceb', 5.0, 1)]
  for model in summary['models']:
    assert set(model) == SCHEMA_MODEL_KEYS
    assert model['train_accuracy'] == pytest.approx(1.0)
    assert model['train_gain_last_20pct'] == pytest.approx(0.104)
    # 8 images: clean-wrong 0 and 4; fooled at 1 + i % 3 <= 2 unless i % 3 == 2: 2, 5 robust.
    assert model['audit_robust_linf_2'] == '00100100'
    # The schema's five radii always: the ones not audited are null.
    assert model['audit'] == {'linf_1': None, 'linf_2': 0.25, 'linf_4': None, 'l2_32': None,
                              'l2_64': 0.0}
    assert model['pgd20']['linf_2'] == pytest.approx(0.26)
  # XEnt: train 1.0, test 0.30 (G1 holds); every model gained 10.4 points late (G3 fails).
  assert summary['gates'] == {'G1': True, 'G2': True, 'G3': False}
  assert summary['delta']['pairs'] == [0.0, 0.0] and summary['delta']['seeds'] == [0, 1]
  assert summary['verdict'] == 'inconclusive'
  assert summary['design']['images'] == 256 and summary['design']['steps'] == 10
  assert summary['design']['command'].startswith('./run_cifar.sh study --preset overparam_tiny')
  assert summary['design']['rhos'] == [2.0, 5.0] and summary['design']['seeds'] == 2
  for name in ('summary.json', 'summary.md', 'command.txt', 'robustness_rho.png',
               'delta_pairs.png', 'training.png'):
    assert (tmp_path / 'docs' / name).read_bytes() == (root / 'study2' / name).read_bytes()


def test_driver_without_rho_star_trains_no_pairs_and_says_why(tmp_path, monkeypatch):
  stages = _Stages(monkeypatch, {'xent': 0.30, 'ceb_rho2': 0.20, 'ceb_rho5': 0.25})
  _, summary = _run(tmp_path)
  assert [(s, n) for s, n, *_ in stages.of('train')] == [
      ('seed0', 'xent'), ('seed0', 'ceb_rho2'), ('seed0', 'ceb_rho5')]
  assert summary['rho_star'] is None and summary['gates']['G2'] is False
  assert summary['delta'] == {'seeds': [], 'pairs': None, 'mean': None, 'ci95': None,
                              'pgd20_linf_2_mean': None, 'audit_l2_64_mean': None}
  assert summary['verdict'] == 'inconclusive' and 'G2 failed' in summary['verdict_reason']


def test_a_resumed_study_reports_the_wall_time_of_both_invocations(tmp_path, monkeypatch):
  _Stages(monkeypatch, {'xent': 0.30, 'ceb_rho2': 0.20, 'ceb_rho5': 0.25})
  root, first = _run(tmp_path)
  _, second = _run(tmp_path)
  ledger = json.loads((root / 'wall_time.json').read_text())['invocation_minutes']
  assert (first['design']['invocations'], second['design']['invocations']) == (1, 2)
  # Each invocation records its minutes at its last progress line, after the summary;
  # the summary rounds to 0.01 minute.
  total = second['design']['wall_time_minutes']
  assert len(ledger) == 2 and first['design']['wall_time_minutes'] <= ledger[0] + 0.005
  assert ledger[0] - 0.005 <= total <= sum(ledger) + 0.005
  assert 'over 2 invocation(s)' in (root / 'study2' / 'summary.md').read_text()


@pytest.mark.parametrize('flag,value', [('--rhos', '2,2'), ('--rhos', '1,x'),
                                        ('--audit_linf', '1,4'), ('--audit_l2', '32'),
                                        ('--checkpoints', '4'), ('--checkpoints', '0'),
                                        ('--num_train_images', '100'),
                                        ('--num_train_images', '5000'),
                                        ('--audit_examples', '41'), ('--seeds', '0')])
def test_bad_input_exits_2_before_anything_is_written(tmp_path, capsys, flag, value):
  with pytest.raises(SystemExit) as exit_info:
    study2.main(['--preset', 'overparam_tiny', '--fake_data', '--num_eval_images', '40',
                 '--model_root', str(tmp_path / 's'), flag, value])
  assert exit_info.value.code == 2
  err = capsys.readouterr().err
  assert err.startswith('error: ') and flag in err
  assert not (tmp_path / 's').exists()


def test_data_dir_is_required_and_checked(tmp_path, capsys):
  for argv in ([], ['--data_dir', str(tmp_path / 'missing')]):
    with pytest.raises(SystemExit) as exit_info:
      study2.main(['--model_root', str(tmp_path / 's')] + argv)
    assert exit_info.value.code == 2
    assert capsys.readouterr().err.startswith('error: ')
  assert not (tmp_path / 's').exists()


def test_help_names_the_radii_the_verdict_needs():
  text = ' '.join(study2.build_parser().format_help().split())
  assert 'L-inf radii (pixels, comma list; must hold 2)' in text
  assert 'L2 radii (pixels, comma list; must hold 64)' in text


def test_overparam_preset_is_the_preregistered_design():
  args = study2.apply_preset(study2.build_parser().parse_args(['--data_dir', 'd']))
  assert (args.depth, args.width, args.num_train_images) == (10, 2, 1024)
  assert args.rho_values == [1.0, 2.0, 3.0, 5.0] and args.seeds == 3
  assert args.radii == {'audit_linf': [1.0, 2.0, 4.0], 'audit_l2': [32.0, 64.0]}
  assert args.audit_examples == 500
  # 1,024 images are 8 steps an epoch: every 10th of training is a kept checkpoint.
  assert study2.training_steps(args, 1024) % args.checkpoints == 0


@pytest.mark.slow
def test_tiny_preset_runs_for_real_and_resumes(tmp_path):
  data_dir = write_cifar_python(tmp_path / 'data', num_train=256, num_test=40)
  root = tmp_path / 'root'
  argv = ['--preset', 'overparam_tiny', '--data_dir', data_dir, '--model_root', str(root)]
  assert study2.main(argv) == 0
  summary = json.loads((root / 'study2' / 'summary.json').read_text())
  # XEnt and CEB rho=5 at seed 0 (the tiny preset has one seed: stage 2 is the stubs' test).
  assert [(m['objective'], m['rho'], m['seed']) for m in summary['models']] == [
      ('xent', None, 0), ('ceb', 5.0, 0)]
  assert summary['delta']['seeds'] == ([0] if summary['rho_star'] == 5.0 else [])
  for model in summary['models']:
    assert set(model) == SCHEMA_MODEL_KEYS
    assert 0.0 <= model['train_accuracy'] <= 1.0 and 0.0 <= model['test_accuracy'] <= 1.0
    bits = model['audit_robust_linf_2']
    assert len(bits) == 8 and bits.count('1') / 8 == model['audit']['linf_2']
    assert model['pgd20']['linf_2'] >= model['audit']['linf_2']
  assert summary['verdict'] in verdict.VERDICTS
  # A re-run trains and audits nothing again: the summary's measurements are the same.
  audit = root / 'seed0' / 'xent' / 'results' / 'audit_linf.json'
  before = audit.stat().st_mtime_ns
  assert study2.main(argv) == 0
  again = json.loads((root / 'study2' / 'summary.json').read_text())
  assert again['models'] == summary['models'] and audit.stat().st_mtime_ns == before
  assert (summary['design']['invocations'], again['design']['invocations']) == (1, 2)


def test_the_report_shows_only_the_radii_some_model_was_audited_at():
  models = [{'objective': 'xent', 'rho': None, 'seed': 0, 'train_accuracy': 1.0,
             'test_accuracy': 0.5, 'train_gain_last_20pct': 0.0,
             'audit': dict.fromkeys(study2.SCHEMA_RADII), 'pgd20': dict.fromkeys(
                 study2.SCHEMA_RADII)}]
  models[0]['audit'].update(linf_2=0.2, l2_64=0.3)
  assert study2_report._keys(models) == ['linf_2', 'l2_64']
  models[0]['audit'] = None
  assert study2_report._keys(models) == []
