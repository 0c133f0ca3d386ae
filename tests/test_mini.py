"""The real-data miniature of the CIFAR study, its plumbing on a tiny subset."""
import os

from cifar_fixtures import write_cifar_python
import pytest

from eval import settings
from studies import mini


@pytest.mark.slow
def test_mini_trains_evaluates_and_reports(tmp_path):
  data_dir = os.environ.get('CEB_CIFAR10_DIR') or write_cifar_python(tmp_path / 'data')
  root = tmp_path / 'mini'
  argv = ['--data_dir', data_dir, '--model_root', str(root), '--rhos', '1,5',
          '--train_epochs', '1', '--depth', '10', '--width', '1',
          '--num_train_images', '128', '--num_eval_images', '64',
          '--pgd_examples', '16', '--num_steps', '2',
          '--linf_epsilons', '4,8', '--l2_epsilons', '64,256']
  assert mini.main(argv) == 0
  for run in ('ceb_rho1', 'ceb_rho5', 'xent'):
    names = sorted(os.listdir(root / run / 'results'))
    assert [n.split('-step')[0] for n in names] == ['clean', 'pgd_l2', 'pgd_linf']
  report = root / 'report'
  for name in ('figure1.png', 'figure2.png'):
    assert (report / name).stat().st_size > 1000
    with open(report / name, 'rb') as f:
      assert f.read(8) == b'\x89PNG\r\n\x1a\n'
  summary = (report / 'summary.md').read_text()
  assert 'ceb_rho1' in summary or 'rho' in summary


def test_attack_defaults_are_the_papers_settings():
  args = mini.build_parser().parse_args([])
  assert [float(e) for e in args.linf_epsilons.split(',')] == list(
      settings.STUDY_LINF_EPSILONS)
  assert [float(e) for e in args.l2_epsilons.split(',')] == list(settings.STUDY_L2_EPSILONS)
  assert args.num_steps == settings.PGD_NUM_STEPS


@pytest.mark.parametrize('flag,value', [('--linf_epsilons', 'eight'),
                                        ('--l2_epsilons', '-1'),
                                        ('--rhos', '1,three'), ('--rhos', '2,nan')])
def test_mini_refuses_bad_flags_before_writing(tmp_path, capsys, flag, value):
  with pytest.raises(SystemExit) as exit_info:
    mini.main(['--fake_data', '--model_root', str(tmp_path / 'm'), flag, value])
  assert exit_info.value.code == 2
  err = capsys.readouterr().err
  assert err.startswith('error: ') and flag in err
  assert not (tmp_path / 'm').exists()
