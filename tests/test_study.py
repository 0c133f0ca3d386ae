"""The real-data CIFAR study's driver: its tiny preset end to end, its flags, its choices."""
import json
import os

from cifar_fixtures import write_cifar_python
import pytest

from eval import checkpoint_curve
from studies import study
from studies import study_report

EVALUATIONS = ['audit_l2', 'audit_linf', 'cifar10_c', 'clean', 'pgd_l2', 'pgd_l2_targeted',
               'pgd_linf', 'pgd_linf_targeted']


def _result(model_dir, evaluation):
  names = [n for n in os.listdir(os.path.join(model_dir, 'results'))
           if n.split('-step')[0] == evaluation and n.endswith('.json')]
  assert len(names) == 1, names
  with open(os.path.join(model_dir, 'results', names[0])) as f:
    return json.load(f)


def _curve(model_dir):
  with open(os.path.join(model_dir, 'results', 'checkpoint_curve.json')) as f:
    return json.load(f)['points']


@pytest.fixture(scope='module')
def tiny_study(tmp_path_factory):
  """The tiny preset on real-format CIFAR files, run once for the module's tests."""
  tmp = tmp_path_factory.mktemp('study')
  data_dir = write_cifar_python(tmp / 'data', num_train=256, num_test=40)
  root, docs = tmp / 'study', tmp / 'docs'
  argv = ['--preset', 'tiny', '--data_dir', data_dir, '--model_root', str(root),
          '--docs_dir', str(docs)]
  assert study.main(argv) == 0
  return argv, root, docs


@pytest.mark.slow
def test_tiny_study_trains_every_run_and_evaluates_the_final_models(tiny_study):
  _, root, _ = tiny_study
  runs = sorted(os.path.relpath(os.path.dirname(p), root) for p in
                (os.path.join(d, 'params.json') for d in root.glob('seed*/*'))
                if os.path.exists(p))
  # XEnt and the one CEB rho at seed 0, and both again at seed 1 (the most robust CEB).
  assert runs == ['seed0/ceb_rho2', 'seed0/xent', 'seed1/ceb_rho2', 'seed1/xent']
  for run in runs:
    model_dir = str(root / run)
    names = {n.split('-step')[0].split('.json')[0]
             for n in os.listdir(os.path.join(model_dir, 'results'))}
    assert sorted(names - {'checkpoint_curve'}) == EVALUATIONS
    points = _curve(model_dir)
    # Two checkpoints a tenth apart (here a half) plus step 0: the curve is over training.
    assert [p['step'] for p in points] == sorted(p['step'] for p in points)
    assert len(points) >= 2 and points[0]['step'] < points[-1]['step']
    # The curve's last point is the final model, so it equals the suite's numbers.
    clean = _result(model_dir, 'clean')
    assert points[-1]['step'] == clean['header']['step']
    assert points[-1]['test_accuracy'] == pytest.approx(clean['summary']['accuracy'])
    pgd = _result(model_dir, 'pgd_linf')['items']['eps=4']
    assert points[-1]['pgd_linf_4'] == pytest.approx(pgd['accuracy'])
  audit = _result(str(root / 'seed0/ceb_rho2'), 'audit_linf')
  assert os.path.realpath(audit['header']['flags']['transfer_from']) == os.path.realpath(
      root / 'seed0' / 'xent')


@pytest.mark.slow
def test_tiny_study_writes_figures_summary_and_docs_copies(tiny_study):
  _, root, docs = tiny_study
  for name in ('training.png', 'robustness.png', 'frontier.png'):
    with open(root / 'study' / name, 'rb') as f:
      assert f.read(8) == b'\x89PNG\r\n\x1a\n'
    assert (docs / name).read_bytes() == (root / 'study' / name).read_bytes()
  assert (docs / 'figure1.png').exists() and (docs / 'figure2.png').exists()
  summary = (root / 'study' / 'summary.md').read_text()
  final_table = summary.split('## Against XEnt')[0]
  rows = [line for line in final_table.splitlines() if line.startswith('| ceb_rho2 ')
          or line.startswith('| xent ')]
  assert len(rows) == 2
  # Two seeds each: every number is a mean and a spread.
  assert all(' | 2 | ' in row and '±' in row for row in rows)
  assert 'pgd_linf_targeted 4' in summary and 'audit_l2 128' in summary
  # The frontier section compares the CEB run with XEnt under both headline attacks.
  frontier = summary.split('## Against XEnt')[1].split('## Audit')[0]
  assert frontier.count('| ceb_rho2 |') == 2 and '| xent |' not in frontier


@pytest.mark.slow
def test_tiny_study_rerun_resumes_without_redoing_work(tiny_study):
  argv, root, _ = tiny_study
  curve = root / 'seed0' / 'xent' / 'results' / 'checkpoint_curve.json'
  before = curve.stat().st_mtime_ns, curve.read_bytes()
  assert study.main(argv) == 0
  assert (curve.stat().st_mtime_ns, curve.read_bytes()) == before
  with pytest.raises(ValueError, match='checkpoint_curve.json was made with other settings'):
    checkpoint_curve.evaluate_checkpoints(
        str(root / 'seed0' / 'xent'), train=([], []), test=([], []),
        attacks=(('linf', 8.0),), num_examples=16)


class _Stages:
  """Records what the driver asks of each stage; stands in for the heavy ones."""

  # The curve's last point per run: rho=2 is the most robust CEB, rho=1 the most
  # robust at L-inf alone, so the choice must sum both attacks; VIB is no CEB.
  LAST = {'xent': (0.9, 0.9), 'ceb_rho1': (0.5, 0.0), 'ceb_rho2': (0.3, 0.3),
          'ceb_rho3': (0.1, 0.2), 'vib_rho4': (0.8, 0.8)}

  def __init__(self, monkeypatch):
    self.calls = []
    monkeypatch.setattr(study.common, 'train', self.train)
    monkeypatch.setattr(study.checkpoint_curve, 'evaluate_checkpoints', self.curve)
    monkeypatch.setattr(study.cifar_suite, 'evaluate_model', self.evaluate)
    monkeypatch.setattr(study.audit_command, 'run', self.audit)
    monkeypatch.setattr(study.make_cifar10_c, 'make', self.make)
    monkeypatch.setattr(study.report, 'main', self.report)
    monkeypatch.setattr(study.study_report, 'write', self.write)
    self.report_exit = 0

  def train(self, args, name, flags, augment_name):
    model_dir = os.path.join(args.model_root, name)
    self.calls.append(('train', os.path.basename(args.model_root), name, tuple(flags),
                       augment_name))
    return model_dir, {}

  def curve(self, model_dir, *, train, test, attacks, num_examples, data_flags, log):
    self.calls.append(('curve', model_dir, len(train[0]), len(test[0]), attacks,
                       num_examples, data_flags['fake_data']))
    linf, l2 = self.LAST[os.path.basename(model_dir)]
    return [{'pgd_linf_4': 0.0, 'pgd_l2_128': 0.0}, {'pgd_linf_4': linf, 'pgd_l2_128': l2}]

  def evaluate(self, model_dir, **kwargs):
    self.calls.append(('evaluate', model_dir, kwargs))

  def audit(self, args):
    self.calls.append(('audit', args))

  def make(self, images, labels, out, corruptions):
    self.calls.append(('make', len(images), len(labels), out, corruptions))

  def report(self, argv):
    self.calls.append(('report', argv))
    return self.report_exit

  def write(self, model_root, best, *, minutes, docs_dir):
    self.calls.append(('write', model_root, best, docs_dir))
    return ['summary.md']

  def of(self, kind):
    return [call[1:] for call in self.calls if call[0] == kind]


def test_driver_runs_every_stage_in_order_on_the_right_models(tmp_path, monkeypatch):
  stages = _Stages(monkeypatch)
  root = str(tmp_path / 'root')
  assert study.main(['--preset', 'tiny', '--fake_data', '--model_root', root,
                     '--rhos', '1,2,3', '--vib_rhos', '4', '--num_eval_images', '30',
                     '--docs_dir', 'docs']) == 0
  # Seed 0: XEnt, every CEB rho and VIB; seed 1: XEnt and the most robust CEB, rho=2.
  trained = [(seed, name) for seed, name, _, _ in stages.of('train')]
  assert trained == [('seed0', 'xent'), ('seed0', 'ceb_rho1'), ('seed0', 'ceb_rho2'),
                     ('seed0', 'ceb_rho3'), ('seed0', 'vib_rho4'), ('seed1', 'xent'),
                     ('seed1', 'ceb_rho2')]
  tiny = study.PRESETS['tiny']
  # 256 images, batch 128, 2 epochs: 4 steps, a checkpoint every 2 (2 kept, plus room).
  for _, name, flags, augment_name in stages.of('train'):
    assert augment_name == 'autoaugment'
    assert flags[-3:] == ('--train_batch_size=128', '--save_checkpoints_steps=2',
                          '--keep_checkpoint_max=4')
    loss, _, rho = name.partition('_rho')
    assert flags[:-3] == (('--loss=xent',) if name == 'xent' else
                          ('--loss=' + loss, '--rho=' + rho))
  # Each trained model's curve, on the trainer's images, at the two headline attacks.
  curves = stages.of('curve')
  assert [c[0] for c in curves] == [os.path.join(root, s, n) for s, n in trained]
  assert {c[1:] for c in curves} == {(tiny['num_train_images'], 30, study.CURVE_ATTACKS,
                                      tiny['curve_examples'], True)}
  finals = [os.path.join(root, s, n) for s, n in trained]
  # The corruption set is made once, from the test images, before the final evaluations.
  assert stages.of('make') == [(30, 30, os.path.join(root, 'cifar10_c'),
                                ['gaussian_noise', 'brightness'])]
  kinds = [call[0] for call in stages.calls]
  assert kinds.index('make') < kinds.index('evaluate')
  evaluated = stages.of('evaluate')
  assert [e[0] for e in evaluated] == finals
  for _, kwargs in evaluated:
    assert kwargs['cifar10c_dir'] == os.path.join(root, 'cifar10_c') and kwargs['fake_data']
    assert kwargs['linf_epsilons'] == [4.0] and kwargs['l2_epsilons'] == [128.0]
    assert kwargs['num_examples'] == tiny['pgd_examples']
  # Every final model audited at both norms; all but the baseline get its transfers.
  audits = [args for (args,) in stages.of('audit')]
  assert [(a.model_dir, a.norm) for a in audits] == [
      (d, norm) for d in finals for norm in ('linf', 'l2')]
  baseline = os.path.join(root, 'seed0', 'xent')
  for args in audits:
    assert args.transfer_from == (None if args.model_dir == baseline else baseline)
    assert args.fake_data and args.num_examples == tiny['audit_examples']
    assert (args.apgd_targets, args.fab_targets, args.square_queries) == (
        tiny['apgd_targets'], tiny['fab_targets'], tiny['square_queries'])
  # Then the report of the seed-0 runs, then the study's own summary.
  assert stages.of('report') == [(['--results_dir', os.path.join(root, 'seed0'),
                                   '--out', os.path.join(root, 'report')],)]
  assert stages.of('write') == [(root, 'ceb_rho2', 'docs')]
  assert kinds[-2:] == ['report', 'write']


def test_driver_exits_2_when_the_report_fails(tmp_path, monkeypatch, capsys):
  stages = _Stages(monkeypatch)
  stages.report_exit = 1
  with pytest.raises(SystemExit) as exit_info:
    study.main(['--preset', 'tiny', '--fake_data', '--model_root', str(tmp_path / 'r')])
  assert exit_info.value.code == 2
  assert 'the report failed' in capsys.readouterr().err
  assert not stages.of('write')


@pytest.mark.parametrize('flag,value', [('--rhos', '1,three'), ('--vib_rhos', '3,'),
                                        ('--rhos', '1,inf'),
                                        ('--seeds', '0'),
                                        ('--linf_epsilons', 'eight'),
                                        ('--audit_l2', '-1'), ('--checkpoints', '0'),
                                        ('--corruptions', 'fog,smog')])
def test_study_refuses_bad_flags_before_writing(tmp_path, capsys, flag, value):
  with pytest.raises(SystemExit) as exit_info:
    study.main(['--preset', 'tiny', '--fake_data', '--model_root', str(tmp_path / 's'),
                flag, value])
  assert exit_info.value.code == 2
  err = capsys.readouterr().err
  assert err.startswith('error: ') and flag in err
  assert not (tmp_path / 's').exists()


def test_full_preset_is_the_measured_scale():
  args = study.apply_preset(study.build_parser().parse_args([]))
  assert (args.depth, args.width, args.train_epochs) == (10, 1, 70)
  assert args.rho_values == [1.0, 2.0, 3.0, 5.0] and args.seeds == 2
  assert args.vib_values == [3.0]
  assert (args.pgd_examples, args.audit_examples, args.checkpoints) == (500, 500, 10)
  # The audit's budget: 3 targets for APGD-T and FAB-T (FAB-T came after both runs).
  assert (args.apgd_targets, args.fab_targets, args.square_queries) == (3, 3, 1000)
  # A flag given beats the preset.
  args = study.apply_preset(study.build_parser().parse_args(['--train_epochs', '3']))
  assert args.train_epochs == 3


def test_most_robust_ceb_is_the_best_last_checkpoint_and_never_xent():
  def last(linf, l2):
    return [{'pgd_linf_4': 0.0, 'pgd_l2_128': 0.0}, {'pgd_linf_4': linf, 'pgd_l2_128': l2}]
  curves = {'xent': last(0.9, 0.9), 'ceb_rho1': last(0.2, 0.1), 'ceb_rho3': last(0.1, 0.3),
            'ceb_rho5': last(0.25, 0.0)}
  assert study.most_robust(curves) == 'ceb_rho3'


def _write_curve(model_dir, points):
  os.makedirs(model_dir / 'results')
  (model_dir / 'params.json').write_text('{}')
  keys = ('step', 'test_accuracy', 'pgd_linf_4', 'pgd_l2_128')
  (model_dir / 'results' / 'checkpoint_curve.json').write_text(json.dumps(
      {'header': {}, 'points': [dict(zip(keys, p)) for p in points]}))


def test_frontier_gap_is_measured_against_xent_at_the_same_clean_accuracy(tmp_path):
  _write_curve(tmp_path / 'seed0' / 'xent', [(0, 0.2, 0.1, 0.0), (9, 0.6, 0.3, 0.0)])
  _write_curve(tmp_path / 'seed1' / 'xent', [(9, 0.8, 0.2, 0.0)])
  # Checkpoints at clean 0.1 (below XEnt's range: no gap), 0.4 and 0.7.
  _write_curve(tmp_path / 'seed0' / 'ceb_rho1', [(0, 0.1, 0.9, 0.0), (5, 0.4, 0.3, 0.0),
                                                 (9, 0.7, 0.15, 0.0)])
  gaps = study_report.frontier_gaps(study_report._run_dirs(str(tmp_path)), 'pgd_linf_4')
  # XEnt at 0.4: 0.2; at 0.7: 0.25 (between (0.6, 0.3) and (0.8, 0.2)).
  final, mean, count = gaps['ceb_rho1']
  assert count == 2
  assert final == pytest.approx(0.15 - 0.25)
  assert mean == pytest.approx(((0.3 - 0.2) + (0.15 - 0.25)) / 2)
  assert 'xent' not in gaps
