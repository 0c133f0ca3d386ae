"""Bad input across trainers, evaluations and reports: a clear error, exit 2, nothing changed.

Every case runs a command-line entry point in-process on a bad flag, data
file, checkpoint or result file, and asserts the `error: ...` line names the
problem, the exit status is 2, and every existing file (data, model_dir,
results) is byte-for-byte what it was.
"""
import os
import pickle
import shutil

from absl import flags
from cifar_fixtures import snapshot
from cifar_fixtures import write_cifar_python
from cifar_fixtures import write_python_batch
import eval_fixtures
import numpy as np
import pytest

from eval import cifar10_c
from eval import clean
from eval import imagenet_a
from eval import imagenet_c
from eval.pgd import __main__ as pgd_cli
from resnet_ceb import make_tfrecords
from resnet_ceb import resnet_main
from wrn_cifar import wrn_main

WRN_TINY = ['--depth=10', '--width=1', '--train_batch_size=16', '--augment_name=none',
            '--eval_batch_size=50', '--iterations_per_loop=10', '--train_epochs=1',
            '--num_train_images=32', '--mode=train']
RESNET_TINY = ['--resnet_depth=18', '--image_size=32', '--train_batch_size=2',
               '--eval_batch_size=4', '--train_steps=1', '--num_eval_images=4',
               '--steps_per_eval=1', '--iterations_per_loop=1', '--mode=train']


@pytest.fixture(scope='module')
def world(tmp_path_factory):
  """Data and model_dirs that bad runs must leave untouched."""
  root = tmp_path_factory.mktemp('world')
  cifar = write_cifar_python(str(root / 'cifar'))
  imagenet = str(root / 'imagenet')
  make_tfrecords.write_synthetic_imagenet(imagenet, 4, 40, seed=1)
  ceb_dir = str(root / 'ceb_model')
  wrn_main.run(wrn_main.make_flags(['--model_dir=' + ceb_dir, '--data_dir=' + cifar,
                                    '--loss=ceb'] + WRN_TINY))
  return {'root': str(root), 'cifar': cifar, 'imagenet': imagenet, 'ceb_dir': ceb_dir}


def _trainer_error(main, flag_values, capsys):
  """A trainer through its entry point: exit 2 and the `error: ...` line."""
  capsys.readouterr()
  with pytest.raises(SystemExit) as exit_info:
    main(['trainer'], flag_values)
  assert exit_info.value.code == 2
  lines = [line for line in capsys.readouterr().err.splitlines()
           if line.startswith('error: ')]
  assert lines
  return lines[-1]


def _resnet_flags(argv):
  flag_values = flags.FlagValues()
  resnet_main.define_flags(flag_values)
  flag_values(['resnet_main'] + RESNET_TINY + list(argv))
  return flag_values


def _copy_tree(world, name):
  """A private copy of a world folder, so a case may damage it."""
  path = os.path.join(world['root'], 'copy_' + name + '_' + str(len(os.listdir(world['root']))))
  shutil.copytree(world[name], path)
  return path


def _unchanged(world, check, *extra_dirs):
  """Runs check() and asserts no file in the world (and extra_dirs) changed."""
  dirs = [world['root']] + list(extra_dirs)
  before = [snapshot(d) for d in dirs]
  message = check()
  assert [snapshot(d) for d in dirs] == before
  return message


# --- Trainers: flags --------------------------------------------------------

@pytest.mark.parametrize('extra,fragment', [
    (['--loss=bogus'], "--loss='bogus' is not one of"),
    (['--rho=nan'], '--rho=nan must be a finite number'),
    (['--depth=27'], '--depth'),
    (['--train_epochs=0'], '--train_epochs=0 must be a positive integer'),
    (['--base_learning_rate=-1'], '--base_learning_rate=-1.0 must be positive'),
    (['--precision=float16'], '--precision=float16 must be one of float32, bfloat16'),
    (['--bottleneck_dims=-1'], '--bottleneck_dims=-1 must be an integer >= 0'),
])
def test_wrn_bad_flags(world, tmp_path, capsys, extra, fragment):
  model_dir = tmp_path / 'model'
  argv = ['--model_dir=%s' % model_dir, '--data_dir=' + world['cifar']] + WRN_TINY + extra
  line = _unchanged(world, lambda: _trainer_error(
      wrn_main.main, wrn_main.make_flags(argv), capsys))
  assert fragment in line
  assert not model_dir.exists()


@pytest.mark.parametrize('extra,fragment', [
    (['--resnet_depth=51'], '--resnet_depth'),
    (['--precision=float16'], '--precision=float16 must be one of float32, bfloat16'),
    (['--label_smoothing=0.1', '--loss=ceb'], '--label_smoothing applies only'),
    (['--momentum=1.5'], '--momentum=1.5 must be a finite number'),
])
def test_resnet_bad_flags(world, tmp_path, capsys, extra, fragment):
  model_dir = tmp_path / 'model'
  flag_values = _resnet_flags(['--model_dir=%s' % model_dir,
                               '--data_dir=' + world['imagenet']] + extra)
  line = _unchanged(world, lambda: _trainer_error(resnet_main.main, flag_values, capsys))
  assert fragment in line
  assert not model_dir.exists()


# --- Trainers: data files ---------------------------------------------------

def test_cifar_batch_with_data_and_labels_of_different_lengths(world, tmp_path, capsys):
  data_dir = _copy_tree(world, 'cifar')
  batch = os.path.join(data_dir, 'cifar-10-batches-py', 'data_batch_2')
  images = np.zeros((5, 32, 32, 3), np.uint8)
  write_python_batch(batch, images, [1, 2, 3])
  argv = ['--model_dir=%s' % (tmp_path / 'model'), '--data_dir=' + data_dir] + WRN_TINY
  line = _unchanged(world, lambda: _trainer_error(
      wrn_main.main, wrn_main.make_flags(argv), capsys))
  assert "data_batch_2: 'data' holds 5 images but 'labels' holds 3" in line
  assert not (tmp_path / 'model').exists()


def test_cifar_binary_batch_not_whole_records(world, tmp_path, capsys):
  folder = tmp_path / 'cifar-10-batches-bin'
  folder.mkdir()
  for name in ['data_batch_%d.bin' % i for i in range(1, 6)] + ['test_batch.bin']:
    (folder / name).write_bytes(bytes(3073 * 2 + (100 if name == 'data_batch_4.bin' else 0)))
  argv = ['--model_dir=%s' % (tmp_path / 'model'), '--data_dir=%s' % tmp_path] + WRN_TINY
  line = _unchanged(world, lambda: _trainer_error(
      wrn_main.main, wrn_main.make_flags(argv), capsys), str(folder))
  assert 'data_batch_4.bin: size 6246 bytes is not a positive whole number of 3073' in line


def test_cifar_pickle_that_is_not_a_dict(world, tmp_path, capsys):
  data_dir = _copy_tree(world, 'cifar')
  with open(os.path.join(data_dir, 'cifar-10-batches-py', 'test_batch'), 'wb') as f:
    pickle.dump([1, 2, 3], f)
  argv = ['--model_dir=%s' % (tmp_path / 'model'), '--data_dir=' + data_dir] + WRN_TINY
  line = _unchanged(world, lambda: _trainer_error(
      wrn_main.main, wrn_main.make_flags(argv), capsys))
  assert 'test_batch: expected a pickled dict, got list' in line


def test_truncated_tfrecord_stops_training_naming_the_data_dir(world, tmp_path, capsys):
  data_dir = _copy_tree(world, 'imagenet')
  shard = os.path.join(data_dir, 'train-00000-of-00001')
  with open(shard, 'rb') as f:
    contents = f.read()
  with open(shard, 'wb') as f:
    f.write(contents[:len(contents) // 2])
  flag_values = _resnet_flags(['--model_dir=%s' % (tmp_path / 'model'),
                               '--data_dir=' + data_dir, '--train_steps=4'])
  line = _unchanged(world, lambda: _trainer_error(resnet_main.main, flag_values, capsys))
  assert '--data_dir=%s: reading the ImageNet TFRecords failed (DataLossError' % data_dir in line


def test_imagenet_data_dir_without_records(world, tmp_path, capsys):
  flag_values = _resnet_flags(['--model_dir=%s' % (tmp_path / 'model'),
                               '--data_dir=%s' % tmp_path])
  line = _unchanged(world, lambda: _trainer_error(resnet_main.main, flag_values, capsys))
  assert 'holds no files matching %s' % os.path.join(str(tmp_path), 'train-*') in line


# --- Trainers: model_dirs and checkpoints -----------------------------------

def test_model_dir_owned_by_another_objective(world, capsys):
  argv = ['--model_dir=' + world['ceb_dir'], '--data_dir=' + world['cifar'],
          '--loss=xent'] + WRN_TINY
  line = _unchanged(world, lambda: _trainer_error(
      wrn_main.main, wrn_main.make_flags(argv), capsys))
  assert "belongs to another run" in line and "records loss='ceb'" in line


def test_model_dir_with_corrupt_params_json(world, capsys):
  model_dir = _copy_tree(world, 'ceb_dir')
  with open(os.path.join(model_dir, 'params.json'), 'w') as f:
    f.write('{"identity": {')
  argv = ['--model_dir=' + model_dir, '--data_dir=' + world['cifar'], '--loss=ceb'] + WRN_TINY
  line = _unchanged(world, lambda: _trainer_error(
      wrn_main.main, wrn_main.make_flags(argv), capsys))
  assert 'params.json is not valid JSON' in line


def test_checkpoint_of_another_architecture_without_params(world, capsys):
  model_dir = _copy_tree(world, 'ceb_dir')
  os.remove(os.path.join(model_dir, 'params.json'))
  argv = ['--model_dir=' + model_dir, '--data_dir=' + world['cifar'], '--loss=ceb',
          '--width=2'] + [a for a in WRN_TINY if not a.startswith('--width')]
  line = _unchanged(world, lambda: _trainer_error(
      wrn_main.main, wrn_main.make_flags(argv), capsys))
  assert 'holds a checkpoint of another architecture' in line


def test_resnet_eval_of_an_empty_model_dir(world, tmp_path, capsys):
  (tmp_path / 'model').mkdir()
  flag_values = _resnet_flags(['--model_dir=%s' % (tmp_path / 'model'),
                               '--data_dir=' + world['imagenet'], '--mode=eval'])
  line = _unchanged(world, lambda: _trainer_error(resnet_main.main, flag_values, capsys))
  assert 'holds no checkpoint' in line
  assert os.listdir(str(tmp_path / 'model')) == []


# --- Evaluations ------------------------------------------------------------

def _eval_error(world, main, argv, capsys):
  return _unchanged(world, lambda: eval_fixtures.cli_error(main, argv, capsys))


@pytest.mark.parametrize('epsilons,fragment', [('abc', 'abc'), ('2,nan', 'nan'),
                                               ('-1', '-1')])
def test_pgd_epsilon_of_the_wrong_type_or_value(world, capsys, epsilons, fragment):
  line = _eval_error(world, pgd_cli.main, [
      '--model_dir=' + world['ceb_dir'], '--data_dir=' + world['cifar'],
      '--epsilons=' + epsilons], capsys)
  assert '--epsilons' in line and fragment in line


def test_pgd_unknown_norm(world, capsys):
  line = _eval_error(world, pgd_cli.main, [
      '--model_dir=' + world['ceb_dir'], '--data_dir=' + world['cifar'],
      '--epsilons=2', '--norm=l3'], capsys)
  assert "--norm: invalid choice: 'l3'" in line


def test_clean_eval_of_a_dir_no_trainer_wrote(world, tmp_path, capsys):
  line = _eval_error(world, clean.main, [
      '--model_dir=%s' % tmp_path, '--data_dir=' + world['cifar']], capsys)
  assert 'params.json not found' in line


def test_clean_eval_of_a_missing_checkpoint(world, capsys):
  line = _eval_error(world, clean.main, [
      '--model_dir=' + world['ceb_dir'], '--data_dir=' + world['cifar'],
      '--checkpoint=' + os.path.join(world['ceb_dir'], 'model.ckpt-999')], capsys)
  assert 'model.ckpt-999 does not exist' in line


def test_imagenet_c_corrupt_jpeg(world, tmp_path, capsys):
  model_dir = eval_fixtures.make_model_dir(str(tmp_path / 'model'))
  wnid = imagenet_a.IMAGENET_A_WNIDS[0]
  folder = tmp_path / 'imagenet-c' / 'fog' / '1' / wnid
  eval_fixtures.write_file(str(folder / 'good.JPEG'), eval_fixtures.jpeg_bytes(
      np.zeros((32, 32, 3), np.uint8)))
  eval_fixtures.write_file(str(folder / 'bad.JPEG'), b'\xff\xd8 not a jpeg')
  line = _eval_error(world, imagenet_c.main, [
      '--model_dir=' + model_dir, '--data_dir=%s' % (tmp_path / 'imagenet-c'),
      '--corruptions=fog', '--severities=1', '--image_size=32'], capsys)
  assert 'bad.JPEG' in line


def test_imagenet_c_severity_out_of_range(world, tmp_path, capsys):
  line = _eval_error(world, imagenet_c.main, [
      '--model_dir=' + world['ceb_dir'], '--data_dir=%s' % tmp_path,
      '--severities=7'], capsys)
  assert '--severities' in line and '7' in line


def test_imagenet_a_missing_data_dir(world, tmp_path, capsys):
  line = _eval_error(world, imagenet_a.main, [
      '--model_dir=' + world['ceb_dir'], '--data_dir=%s' % (tmp_path / 'nowhere')], capsys)
  assert 'nowhere' in line


def test_cifar10_c_without_labels(world, tmp_path, capsys):
  np.save(str(tmp_path / 'fog.npy'), np.zeros((50000, 32, 32, 3), np.uint8)[:1])
  line = _eval_error(world, cifar10_c.main, [
      '--model_dir=' + world['ceb_dir'], '--data_dir=%s' % tmp_path,
      '--corruptions=fog'], capsys)
  assert 'labels.npy' in line


def test_cifar10_c_baseline_with_nan(world, tmp_path, capsys):
  np.lib.format.open_memmap(str(tmp_path / 'fog.npy'), 'w+', np.uint8,
                            (50000, 32, 32, 3)).flush()
  np.save(str(tmp_path / 'labels.npy'), np.zeros(50000, np.int64))
  baseline = tmp_path / 'baseline.json'
  baseline.write_text('{"fog": NaN}')
  line = _eval_error(world, cifar10_c.main, [
      '--model_dir=' + world['ceb_dir'], '--data_dir=%s' % tmp_path,
      '--corruptions=fog', '--baseline_errors=%s' % baseline], capsys)
  assert 'baseline.json' in line


# --- Reports ----------------------------------------------------------------

def _report_main():
  report = pytest.importorskip('eval.report')
  return report.main


def test_report_result_file_with_nan(world, tmp_path, capsys):
  main = _report_main()
  results = tmp_path / 'results'
  results.mkdir()
  (results / 'clean-step7.json').write_text('{"accuracy": NaN}')
  line = _eval_error(world, main, ['--results_dir=%s' % results,
                                   '--out=%s' % (tmp_path / 'out')], capsys)
  assert 'clean-step7.json' in line and 'NaN' in line
  assert not (tmp_path / 'out').exists() or not os.listdir(str(tmp_path / 'out'))


def test_report_missing_results_dir(world, tmp_path, capsys):
  main = _report_main()
  line = _eval_error(world, main, ['--results_dir=%s' % (tmp_path / 'none'),
                                   '--out=%s' % (tmp_path / 'out')], capsys)
  assert 'none' in line

