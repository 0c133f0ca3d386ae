"""The quickstart in small: both models clearly above chance, PGD columns printed."""
import os
import re

from cifar_fixtures import write_cifar_python
import pytest

from studies import quickstart
from wrn_cifar import cifar_input


@pytest.mark.slow
def test_quickstart_trains_both_models_above_chance(tmp_path, capsys):
  data_dir = os.environ.get('CEB_CIFAR10_DIR') or write_cifar_python(tmp_path / 'data')
  argv = ['--data_dir', data_dir, '--model_root', str(tmp_path / 'runs'),
          '--train_epochs', '3', '--depth', '10', '--width', '2',
          '--num_eval_images', '500', '--pgd_examples', '100']
  assert quickstart.main(argv) == 0
  out = capsys.readouterr().out
  assert 'PGD linf eps=8' in out and 'PGD l2 eps=128' in out
  rows = {m.group(1): [float(v) for v in m.group(2, 3, 4)] for m in re.finditer(
      r'^(ceb_rho3|xent)\s*\| ([\d.]+)\s*\| ([\d.]+)\s*\| ([\d.]+)', out, re.M)}
  assert set(rows) == {'ceb_rho3', 'xent'}
  for clean, linf, l2 in rows.values():
    assert clean > 0.2  # chance is 0.1
    assert linf <= clean and l2 <= clean


def test_no_data_source_stops_at_once_naming_both_options(tmp_path, monkeypatch,
                                                          capsys):
  # No --data_dir, no prepared tfds copy and no network to download one.
  real_builder = cifar_input.tfds.builder
  monkeypatch.setattr(cifar_input.tfds, 'builder',
                      lambda name, data_dir=None: real_builder(name, data_dir=str(tmp_path)))
  monkeypatch.setattr(cifar_input, '_host_reachable', lambda *args: False)
  with pytest.raises(SystemExit) as exit_info:
    quickstart.main(['--model_root', str(tmp_path / 'r')])
  assert exit_info.value.code == 2
  err = capsys.readouterr().err
  assert err.startswith('error: ')
  assert '--data_dir' in err and 'tfds can download cifar10' in err
  assert not (tmp_path / 'r').exists()


def test_bad_flag_is_an_error_naming_it(tmp_path, capsys):
  with pytest.raises(SystemExit) as exit_info:
    quickstart.main(['--model_root', str(tmp_path / 'r'), '--depth', 'ten'])
  assert exit_info.value.code == 2
  err = capsys.readouterr().err
  assert err.startswith('error: ') and '--depth' in err
  assert not (tmp_path / 'r').exists()
