"""The real-data miniature of the CIFAR study, its plumbing on a tiny subset."""
import os

import pytest

from cifar_fixtures import write_cifar_python
from wrn_cifar import mini_study


@pytest.mark.slow
def test_mini_study_trains_evaluates_and_reports(tmp_path):
  data_dir = os.environ.get('CEB_CIFAR10_DIR') or write_cifar_python(tmp_path / 'data')
  root = tmp_path / 'mini'
  argv = ['--data_dir', data_dir, '--model_root', str(root), '--rhos', '1,5',
          '--train_epochs', '1', '--depth', '10', '--width', '1',
          '--num_train_images', '128', '--num_eval_images', '64',
          '--pgd_examples', '16', '--num_steps', '2',
          '--linf_epsilons', '4,8', '--l2_epsilons', '64,256']
  assert mini_study.main(argv) == 0
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


def test_mini_study_refuses_bad_epsilons(tmp_path, capsys):
  assert mini_study.main(['--fake_data', '--model_root', str(tmp_path / 'm'),
                          '--linf_epsilons', 'eight']) == 2
  assert '--linf_epsilons' in capsys.readouterr().err
  assert not (tmp_path / 'm').exists()
