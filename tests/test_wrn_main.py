"""The CIFAR-10 trainer end to end: training, summaries, resume, bad input."""
import glob
import os
import signal
import subprocess
import sys
import time

from cifar_fixtures import snapshot
from cifar_fixtures import write_cifar_python
from conftest import REPO_ROOT
import numpy as np
import pytest
import tensorflow as tf

from resnet_ceb import fileio
from resnet_ceb import train_utils
from wrn_cifar import wrn_main

tf1 = tf.compat.v1

# 320 images at batch 16: 20 steps per epoch.
TINY = ['--depth=10', '--width=1', '--train_batch_size=16', '--augment_name=none',
        '--eval_batch_size=50', '--iterations_per_loop=10']


@pytest.fixture(scope='module')
def data_dir(tmp_path_factory):
  return write_cifar_python(tmp_path_factory.mktemp('cifar'))


def _flags(model_dir, data_dir, *extra):
  return ['--model_dir=%s' % model_dir, '--data_dir=%s' % data_dir] + TINY + list(extra)


def _run_cli(argv, timeout=300):
  return subprocess.run([sys.executable, '-m', 'wrn_cifar.wrn_main'] + argv,
                        cwd=REPO_ROOT, capture_output=True, text=True, timeout=timeout)


def _scalar_tags(model_dir):
  tags = set()
  for path in glob.glob(os.path.join(model_dir, 'events.out.tfevents.*')):
    for event in tf1.train.summary_iterator(path):
      tags |= {value.tag for value in event.summary.value}
  return tags


@pytest.mark.slow
def test_ceb_trains_records_params_summaries_and_jump_start_state(tmp_path, data_dir):
  model_dir = str(tmp_path / 'ceb')
  metrics = wrn_main.run(wrn_main.make_flags(_flags(
      model_dir, data_dir, '--loss=ceb', '--rho=2', '--train_epochs=4',
      '--epochs_per_eval=2', '--deterministic')))
  assert metrics['global_step'] == 80
  # A per-class colour is easy: far above chance (0.1) after 4 epochs.
  assert metrics['accuracy'] > 0.3
  params = train_utils.read_params(model_dir)
  assert params['loss'] == 'ceb' and params['steps_per_epoch'] == 20
  assert {'rho', 'gamma', 'rex', 'hyz', 'hzx', 'hzy', 'learning_rate',
          'train_accuracy'} <= _scalar_tags(model_dir)
  checkpoint = tf1.train.latest_checkpoint(model_dir)
  threshold = tf1.train.load_variable(checkpoint, 'jump_start/threshold_step')
  # The 20% crossing counts only after the 2-epoch anneal: step 40 at the earliest.
  assert 40 <= threshold < 80


@pytest.mark.slow
def test_killed_training_resumes_with_the_same_jump_start_state(tmp_path, data_dir):
  model_dir = str(tmp_path / 'resume')
  argv = _flags(model_dir, data_dir, '--loss=ceb', '--rho=1', '--train_epochs=12',
                '--epochs_per_eval=12', '--save_checkpoints_steps=5')
  proc = subprocess.Popen([sys.executable, '-m', 'wrn_cifar.wrn_main'] + argv,
                          cwd=REPO_ROOT, stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL)
  threshold, step = _wait_for_crossing(proc, model_dir)
  proc.send_signal(signal.SIGKILL)
  proc.wait()
  assert step < 240, 'training finished before it could be killed'
  result = _run_cli(argv)
  assert result.returncode == 0, result.stderr[-2000:]
  final = tf1.train.latest_checkpoint(model_dir)
  assert tf1.train.load_variable(final, 'global_step') == 240
  # Were the state lost, the resumed run would re-cross 20% at a later step.
  assert tf1.train.load_variable(final, 'jump_start/threshold_step') == threshold
  assert 'Restoring parameters from' in result.stderr


def _wait_for_crossing(proc, model_dir, timeout=240):
  """Polls checkpoints until one records the 20% crossing; returns it and its step."""
  deadline = time.time() + timeout
  while time.time() < deadline and proc.poll() is None:
    checkpoint = tf1.train.latest_checkpoint(model_dir)
    if checkpoint:
      try:
        threshold = tf1.train.load_variable(checkpoint, 'jump_start/threshold_step')
        step = tf1.train.load_variable(checkpoint, 'global_step')
      except (tf.errors.NotFoundError, tf.errors.DataLossError, ValueError):
        threshold = -1  # Being written right now.
      if threshold >= 0:
        return threshold, step
    time.sleep(0.2)
  proc.kill()
  raise AssertionError('no checkpoint recorded the 20% crossing in time')


@pytest.mark.slow
def test_non_finite_loss_stops_with_step_and_terms(tmp_path, data_dir):
  # gamma = e^100 overflows float32: the very first loss is infinite.
  result = _run_cli(_flags(str(tmp_path / 'nan'), data_dir, '--loss=ceb',
                           '--rho=-100', '--nojump_start', '--train_epochs=1'))
  assert result.returncode == 1
  message = result.stderr.strip().splitlines()[-1]
  assert 'non-finite loss at step 1' in message
  for term in ('hyz=', 'rex=', 'hzx=', 'hzy=', 'loss='):
    assert term in message


@pytest.mark.parametrize('extra,fragment', [
    (['--loss=bogus'], '--loss'),
    (['--rho=nan'], '--rho'),
    (['--rho=inf'], '--rho'),
    (['--depth=27'], '--depth'),
    (['--train_epochs=0'], '--train_epochs'),
    (['--train_batch_size=-4'], '--train_batch_size'),
    (['--train_batch_size=100000'], '--train_batch_size'),
])
def test_bad_flags_are_refused_before_anything_is_written(tmp_path, data_dir,
                                                          extra, fragment):
  model_dir = tmp_path / 'model'
  with pytest.raises(ValueError, match=fragment):
    wrn_main.run(wrn_main.make_flags(_flags(model_dir, data_dir, *extra)))
  assert not model_dir.exists()


def test_bad_data_dirs_exit_2_naming_the_file(tmp_path, data_dir):
  empty = tmp_path / 'empty'
  empty.mkdir()
  truncated = tmp_path / 'truncated' / 'cifar-10-batches-py'
  truncated.mkdir(parents=True)
  for name in os.listdir(os.path.join(data_dir, 'cifar-10-batches-py')):
    with open(os.path.join(data_dir, 'cifar-10-batches-py', name), 'rb') as f:
      content = f.read()
    (truncated / name).write_bytes(content[:len(content) // 2] if name == 'data_batch_3'
                                   else content)
  for bad, fragment in ((tmp_path / 'missing', 'missing'), (empty, 'empty'),
                        (truncated.parent, 'data_batch_3')):
    result = _run_cli(_flags(tmp_path / 'model', bad))
    assert result.returncode == 2, result.stderr[-1000:]
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith('error: ') and '--data_dir' in last
    assert fragment in last or str(bad) in last
    assert not (tmp_path / 'model').exists()


@pytest.mark.slow
def test_model_dir_of_another_run_is_refused_untouched(tmp_path, data_dir):
  model_dir = str(tmp_path / 'model')
  wrn_main.run(wrn_main.make_flags(_flags(
      model_dir, data_dir, '--loss=ceb', '--train_epochs=1', '--num_train_images=32')))
  before = snapshot(model_dir)
  for extra, fragment in ((['--width=2'], 'width'), (['--loss=xent'], 'loss'),
                          (['--rho=5'], 'rho')):
    result = _run_cli(_flags(model_dir, data_dir, '--train_epochs=1',
                             '--num_train_images=32', *extra))
    assert result.returncode == 2
    assert 'belongs to another run' in result.stderr and fragment in result.stderr
  # Without params.json, the checkpoint's shapes still give it away.
  os.remove(os.path.join(model_dir, 'params.json'))
  before.pop('params.json')
  with pytest.raises(train_utils.ModelDirError, match='another architecture'):
    wrn_main.run(wrn_main.make_flags(_flags(
        model_dir, data_dir, '--width=2', '--train_epochs=1', '--num_train_images=32')))
  assert snapshot(model_dir) == before


def test_eval_logits_fn_restores_the_trained_classifier(tmp_path, data_dir):
  from eval.kit import runner  # pylint: disable=g-import-not-at-top
  model_dir = str(tmp_path / 'model')
  metrics = wrn_main.run(wrn_main.make_flags(_flags(
      model_dir, data_dir, '--loss=cceb', '--train_epochs=1')))
  model = runner.load_model(model_dir)
  from wrn_cifar import cifar_input  # pylint: disable=g-import-not-at-top
  images, labels = cifar_input.load_dataset(data_dir, 'test')

  def input_fn(params):
    del params
    return tf.data.Dataset.from_tensor_slices(
        {'image': images.astype(np.float32), 'label': labels}).batch(50)

  out = runner.predict(model, input_fn)
  accuracy = np.mean(out['logits'].argmax(-1) == labels)
  assert accuracy == pytest.approx(metrics['accuracy'], abs=1e-6)


@pytest.mark.slow
def test_fidelity_flags_train_are_recorded_and_define_the_run(tmp_path, data_dir):
  model_dir = str(tmp_path / 'he')
  wrn_main.run(wrn_main.make_flags(_flags(
      model_dir, data_dir, '--loss=xent', '--train_epochs=1', '--wrn_init=he',
      '--augment_name=autoaugment', '--autoaugment_policy=paper25', '--cutout_size=8',
      '--mode=train')))
  params = train_utils.read_params(model_dir)
  assert (params['wrn_init'], params['autoaugment_policy'], params['cutout_size']) == (
      'he', 'paper25', 8)
  # The plain He network has no conv biases: its checkpoint says which init it is.
  names = [name for name, _ in tf1.train.list_variables(model_dir)]
  assert not any(name.endswith('bias') and 'conv' in name for name in names)
  # Resuming with another init is refused, naming the flag's key.
  with pytest.raises(train_utils.ModelDirError, match='wrn_init'):
    wrn_main.run(wrn_main.make_flags(_flags(
        model_dir, data_dir, '--loss=xent', '--train_epochs=1', '--wrn_init=fixup',
        '--augment_name=autoaugment', '--autoaugment_policy=paper25', '--cutout_size=8')))


@pytest.mark.slow
def test_variant_and_bottleneck_train_are_recorded_and_define_the_run(tmp_path, data_dir):
  model_dir = str(tmp_path / 'aa')
  argv = _flags(model_dir, data_dir, '--loss=ceb', '--train_epochs=1', '--mode=train')
  wrn_main.run(wrn_main.make_flags(argv + ['--wrn_variant=autoaugment', '--bottleneck_dims=8']))
  params = train_utils.read_params(model_dir)
  assert (params['wrn_variant'], params['bottleneck_dims'], params['wrn_init']) == (
      'autoaugment', 8, 'he')
  shapes = dict(tf1.train.list_variables(model_dir))
  assert shapes['wrn/bottleneck/kernel'] == [64, 8]
  assert not [name for name in shapes if 'shortcut' in name]  # Parameter-free shortcuts.
  for extra, key in ((['--bottleneck_dims=8'], 'wrn_variant'),
                     (['--wrn_variant=autoaugment'], 'bottleneck_dims')):
    with pytest.raises(train_utils.ModelDirError, match=key):
      wrn_main.run(wrn_main.make_flags(argv + extra))


def _strip_keys(model_dir, keys):
  """Rewrites params.json as a trainer from before `keys` existed wrote it."""
  path = os.path.join(model_dir, train_utils.PARAMS_FILE)
  recorded = fileio.read_json(path)
  fileio.atomic_write_json(path, {part: {k: v for k, v in recorded[part].items()
                                         if k not in keys} for part in recorded})


@pytest.mark.slow
def test_model_dir_from_before_the_init_flag_resumes_as_fixup(tmp_path, data_dir):
  model_dir = str(tmp_path / 'old')
  argv = _flags(model_dir, data_dir, '--loss=xent', '--train_epochs=2', '--mode=train')
  # Half the images: the run stops at step 20 of the 40 the full set gives.
  wrn_main.run(wrn_main.make_flags(argv + ['--wrn_init=fixup', '--num_train_images=160']))
  assert train_utils.latest_step(model_dir) == 20
  _strip_keys(model_dir, ('wrn_init', 'wrn_variant', 'bottleneck_dims'))
  with pytest.raises(train_utils.ModelDirError, match='wrn_init'):
    wrn_main.run(wrn_main.make_flags(argv + ['--wrn_init=he']))
  # Its command of the time, without --wrn_init, resumes it as fixup (conv biases).
  wrn_main.run(wrn_main.make_flags(argv))
  assert train_utils.latest_step(model_dir) == 40
  assert train_utils.read_params(model_dir)['wrn_init'] == 'fixup'
  assert 'wrn/stem/bias' in dict(tf1.train.list_variables(model_dir))


@pytest.mark.parametrize('flag, value', [('cutout_size', '15'), ('cutout_size', '-2'),
                                         ('cutout_size', '40')])
def test_bad_cutout_size_exits_2_naming_the_flag(tmp_path, data_dir, flag, value):
  model_dir = tmp_path / 'bad'
  done = _run_cli(_flags(model_dir, data_dir, '--%s=%s' % (flag, value)))
  assert done.returncode == 2
  assert done.stderr.startswith('error: --%s' % flag) or ('error: --%s' % flag) in done.stderr
  assert not model_dir.exists()


def test_xla_session_config_turns_on_auto_clustering(monkeypatch):
  monkeypatch.setenv('TF_XLA_FLAGS', '--tf_xla_clustering_debug')
  config = train_utils.xla_session_config()
  assert (config.graph_options.optimizer_options.global_jit_level
          == tf1.OptimizerOptions.ON_1)
  assert os.environ['TF_XLA_FLAGS'].split() == ['--tf_xla_clustering_debug',
                                                '--tf_xla_cpu_global_jit']


@pytest.mark.slow
def test_xla_flag_trains_and_is_refused_with_several_devices(tmp_path, data_dir):
  model_dir = tmp_path / 'xla'
  done = _run_cli(_flags(model_dir, data_dir, '--loss=xent', '--train_epochs=1', '--xla',
                         '--mode=train'))
  assert done.returncode == 0, done.stderr[-2000:]
  assert train_utils.latest_step(str(model_dir)) == 20
  refused = _run_cli(_flags(tmp_path / 'xla2', data_dir, '--xla', '--num_gpus=2'))
  assert refused.returncode == 2 and 'error: --xla' in refused.stderr
  assert not (tmp_path / 'xla2').exists()
