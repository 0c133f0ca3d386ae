"""The per-model evaluation suites behind `run_cifar.sh eval` and `run_imagenet.sh eval`."""
import os

from absl import flags
from cifar_fixtures import write_cifar_python
import eval_fixtures
import pytest

from eval import cifar_suite
from eval import imagenet_suite
from eval import settings
from resnet_ceb import fileio
from resnet_ceb import make_tfrecords
from resnet_ceb import resnet_main
from wrn_cifar import wrn_main


def _result(model_dir, evaluation):
  step_files = [f for f in os.listdir(os.path.join(model_dir, 'results'))
                if f.startswith(evaluation + '-step')]
  assert len(step_files) == 1, step_files
  data = fileio.read_json(os.path.join(model_dir, 'results', step_files[0]))
  assert data['complete'] and data['evaluation'] == evaluation
  return data


def _results(model_dir):
  folder = os.path.join(model_dir, 'results')
  return {n: open(os.path.join(folder, n)).read() for n in os.listdir(folder)}


@pytest.mark.slow
def test_cifar_suite_writes_clean_and_untargeted_and_targeted_pgd_curves(tmp_path, capsys):
  data_dir = write_cifar_python(tmp_path / 'data', num_train=64, num_test=40)
  model_dir = str(tmp_path / 'model')
  wrn_main.run(wrn_main.make_flags([
      '--model_dir=%s' % model_dir, '--data_dir=%s' % data_dir, '--depth=10',
      '--width=1', '--train_epochs=1', '--train_batch_size=16', '--augment_name=none']))
  argv = ['--model_dir', model_dir, '--data_dir', data_dir, '--linf_epsilons', '0,8',
          '--l2_epsilons', '0,64', '--num_steps', '3', '--batch_size', '20']
  # --pgd_modes=untargeted skips the targeted sweeps.
  assert cifar_suite.main(argv + ['--pgd_modes', 'untargeted']) == 0
  untargeted = _results(model_dir)
  assert sorted(n.split('-step')[0] for n in untargeted) == ['clean', 'pgd_l2', 'pgd_linf']
  # By default both modes run; the untargeted files are done and left alone.
  assert cifar_suite.main(argv) == 0
  everything = _results(model_dir)
  assert sorted(n.split('-step')[0] for n in everything) == [
      'clean', 'pgd_l2', 'pgd_l2_targeted', 'pgd_linf', 'pgd_linf_targeted']
  assert all(everything[n] == text for n, text in untargeted.items())
  clean = _result(model_dir, 'clean')['summary']
  for name in ('pgd_linf', 'pgd_l2', 'pgd_linf_targeted', 'pgd_l2_targeted'):
    data = _result(model_dir, name)
    summary = data['summary']
    assert data['header']['flags']['targeted'] == name.endswith('_targeted')
    assert data['header']['flags']['pgd_space'] == 'pixels'
    assert ('target_hit_rate' in summary) == name.endswith('_targeted')
    assert summary['epsilons'] == [0.0, 8.0 if 'linf' in name else 64.0]
    # eps = 0 is the clean accuracy exactly; the untargeted attack never helps. A
    # targeted one aims at a class, not away from the label, so on a model this weak
    # it can carry a misclassified example onto its label (measured: 0.525 to 0.55).
    assert summary['accuracy'][0] == pytest.approx(clean['accuracy'])
    if not name.endswith('_targeted'):
      assert summary['accuracy'][1] <= summary['accuracy'][0]
  out = capsys.readouterr().out
  assert 'pgd_l2: eps=0' in out and 'pgd_linf_targeted: eps=0' in out
  # Re-running finds everything done and leaves the files as they were, with the
  # data folder spelt relatively too (the headers hold it absolute).
  assert cifar_suite.main(argv) == 0
  assert everything == _results(model_dir)
  relative = [os.path.relpath(data_dir) if a == data_dir else a for a in argv]
  assert relative != argv and cifar_suite.main(relative) == 0
  assert everything == _results(model_dir)


def test_cifar_suite_refuses_bad_epsilons(tmp_path, capsys):
  for flag, bad in (('--linf_epsilons', '8,x'), ('--l2_epsilons', '-1'),
                    ('--l2_epsilons', '4,4')):
    line = eval_fixtures.cli_error(cifar_suite.main, [
        '--model_dir', str(tmp_path), '--fake_data', flag, bad], capsys)
    assert flag in line
  assert not os.path.exists(tmp_path / 'results')


@pytest.mark.parametrize('extra,fragment', [
    (['--pgd_modes', 'targeted,targeted'], '--pgd_modes'),
    (['--pgd_modes', 'sideways'], '--pgd_modes'),
    (['--pgd_modes', ','], '--pgd_modes'),
    (['--pgd_space', 'raw'], '--pgd_space'),
    # Normalized units need grids in those units: the defaults are pixels.
    (['--pgd_space', 'normalized', '--l2_epsilons', '1'], '--linf_epsilons'),
    (['--pgd_space', 'normalized', '--linf_epsilons', '0.1'], '--l2_epsilons'),
])
def test_cifar_suite_refuses_bad_pgd_flags(tmp_path, capsys, extra, fragment):
  line = eval_fixtures.cli_error(cifar_suite.main, [
      '--model_dir', str(tmp_path), '--fake_data'] + extra, capsys)
  assert fragment in line
  assert not os.path.exists(tmp_path / 'results')


@pytest.mark.slow
def test_imagenet_suite_runs_clean_and_the_papers_targeted_pgd(tmp_path):
  data_dir = str(tmp_path / 'tfrecords')
  make_tfrecords.write_synthetic_imagenet(data_dir, 6, 40, seed=3)
  model_dir = str(tmp_path / 'model')
  flag_values = flags.FlagValues()
  resnet_main.define_flags(flag_values)
  flag_values(['resnet_main', '--data_dir=%s' % data_dir, '--model_dir=%s' % model_dir,
               '--resnet_depth=18', '--image_size=32', '--train_batch_size=2',
               '--eval_batch_size=4', '--train_steps=1', '--num_eval_images=6',
               '--steps_per_eval=1', '--iterations_per_loop=1', '--loss=ceb'])
  resnet_main.run(flag_values)
  assert imagenet_suite.main(['--model_dir', model_dir, '--data_dir', data_dir,
                              '--batch_size', '3']) == 0
  clean = _result(model_dir, 'clean')
  assert clean['items']['validation']['num_examples'] == 6
  for norm in ('linf', 'l2'):
    data = _result(model_dir, 'pgd_%s_targeted' % norm)
    item = data['items']['eps=16']
    assert item['step_size'] == 2.0 and data['header']['flags']['num_steps'] == 20
    assert data['header']['flags']['targeted'] is True
    assert data['header']['flags']['pgd_space'] == 'pixels'
    assert item['clean_accuracy'] == pytest.approx(clean['summary']['accuracy'])
    assert 0.0 <= item['target_hit_rate'] <= 1.0


def test_imagenet_suite_needs_some_data(tmp_path, capsys):
  assert 'nothing to evaluate' in eval_fixtures.cli_error(
      imagenet_suite.main, ['--model_dir', str(tmp_path)], capsys)


def test_cifar_suite_defaults_are_the_papers_settings():
  args = cifar_suite.build_parser().parse_args(['--model_dir', 'unused'])
  grids = cifar_suite.epsilon_grids(args)
  assert grids['linf'] == list(settings.CIFAR_LINF_EPSILONS)
  assert grids['l2'] == list(settings.CIFAR_L2_EPSILONS)
  assert args.num_steps == settings.PGD_NUM_STEPS
  assert cifar_suite.parse_pgd_modes(args.pgd_modes) == ['untargeted', 'targeted']
  assert args.pgd_space == 'pixels'
  normalized = cifar_suite.build_parser().parse_args([
      '--model_dir', 'unused', '--pgd_space', 'normalized', '--linf_epsilons', '0,0.03',
      '--l2_epsilons', '0.5'])
  assert cifar_suite.epsilon_grids(normalized) == {'linf': [0.0, 0.03], 'l2': [0.5]}
