"""Both trainers on a real 2-worker cluster on localhost, told their roles by TF_CONFIG.

Each task is its own `python -m ...` process with its own TF_CONFIG, on free
localhost ports, as on N machines sharing a model_dir. The parent then checks
what each role wrote and restores the chief's checkpoints on one device.
"""
import glob
import json
import os
import signal
import socket
import subprocess
import sys
import time

from absl import flags
from cifar_fixtures import write_cifar_python
from conftest import REPO_ROOT
from google.protobuf import text_format
import imagenet_fixtures
import numpy as np
import pytest
import tensorflow as tf

from resnet_ceb import distribute
from resnet_ceb import make_tfrecords
from resnet_ceb import resnet_main
from resnet_ceb import train_utils
from wrn_cifar import cifar_input
from wrn_cifar import wrn_main

tf1 = tf.compat.v1

# 320 images at a global batch of 8 (4 per worker): 40 steps per epoch, 200 in all,
# checkpoints every 100; the chief evaluates once, at the end.
WRN_FLAGS = ['--depth=10', '--width=1', '--train_batch_size=8', '--augment_name=none',
             '--eval_batch_size=50', '--iterations_per_loop=20', '--loss=ceb', '--rho=2',
             '--train_epochs=5', '--epochs_per_eval=5', '--save_checkpoints_steps=100',
             '--base_learning_rate=3e-3']
WRN_STEPS = 200
# A global batch of 4 (2 per worker), 10 steps.
RESNET_FLAGS = ['--resnet_depth=18', '--image_size=32', '--train_batch_size=4',
                '--eval_batch_size=4', '--num_eval_images=8', '--iterations_per_loop=1',
                '--loss=xent', '--base_learning_rate=2', '--weight_decay=0',
                '--mode=train', '--train_steps=10']
RESNET_STEPS = 10
RUN_TIMEOUT_SECS = 420


def _free_ports(count):
  """Ports nothing listens on now (the OS hands out distinct ones while all are bound)."""
  sockets = [socket.socket() for _ in range(count)]
  for s in sockets:
    s.bind(('localhost', 0))
  ports = [s.getsockname()[1] for s in sockets]
  for s in sockets:
    s.close()
  return ports


def _tf_configs(chief_job):
  """TF_CONFIG of each of two tasks, chief first: worker-only form or with a chief job."""
  hosts = ['localhost:%d' % port for port in _free_ports(2)]
  if chief_job:
    cluster = {'chief': hosts[:1], 'worker': hosts[1:]}
    tasks = [('chief', 0), ('worker', 0)]
  else:
    cluster = {'worker': hosts}
    tasks = [('worker', 0), ('worker', 1)]
  return [json.dumps({'cluster': cluster, 'task': {'type': t, 'index': i}})
          for t, i in tasks]


class _Task:
  """One trainer process of the cluster, its output in a log file."""

  def __init__(self, module, argv, tf_config, log_path):
    self.log_path = log_path
    env = dict(os.environ, TF_CONFIG=tf_config, TF_CPP_MIN_LOG_LEVEL='2')
    with open(log_path, 'w') as log:
      self.process = subprocess.Popen([sys.executable, '-m', module] + argv, cwd=REPO_ROOT,
                                      env=env, stdout=log, stderr=subprocess.STDOUT)

  def wait(self, timeout=RUN_TIMEOUT_SECS):
    """The exit status; kills the process if it outlives `timeout`."""
    try:
      return self.process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
      self.process.kill()
      raise

  def log(self):
    with open(self.log_path) as f:
      return f.read()


def _start(module, argv, configs, tmp_path, name):
  return [_Task(module, argv, config, str(tmp_path / ('%s_%d.log' % (name, i))))
          for i, config in enumerate(configs)]


def _finish(tasks):
  """Waits for every task; asserts each exited 0, showing the log tail of one that did not."""
  for task in tasks:
    assert task.wait() == 0, task.log()[-3000:]


def _error_line(task):
  """The task's last `error: ...` line."""
  lines = [line for line in task.log().splitlines() if line.startswith('error: ')]
  assert lines, task.log()[-3000:]
  return lines[-1]


def _poll(condition, timeout, what):
  deadline = time.monotonic() + timeout
  while not condition():
    assert time.monotonic() < deadline, 'timed out waiting for ' + what
    time.sleep(0.2)


def _checkpoints(model_dir):
  """The checkpoint paths in model_dir (not its subfolders), by step."""
  paths = glob.glob(os.path.join(model_dir, 'model.ckpt-*.index'))
  return sorted((p[:-len('.index')] for p in paths),
                key=lambda p: int(p.rsplit('-', 1)[1]))


def _summary_steps(model_dir):
  """(tag, step) of every summary value in model_dir's own event files."""
  found = []
  for path in glob.glob(os.path.join(model_dir, 'events.out.tfevents.*')):
    for event in tf1.train.summary_iterator(path):
      found.extend((value.tag, event.step) for value in event.summary.value)
  return found


def _input_batch(model_dir):
  """The batch dimension of the training input in the graph.pbtxt model_dir holds."""
  graph = tf1.GraphDef()
  with open(os.path.join(model_dir, 'graph.pbtxt')) as f:
    text_format.Parse(f.read(), graph)
  node, = [n for n in graph.node if n.op == 'IteratorGetNext']
  images, labels = node.attr['output_shapes'].list.shape
  assert images.dim[0].size == labels.dim[0].size
  return labels.dim[0].size


def _assert_same_values(checkpoint, other):
  """Every variable of two checkpoints holds the same value."""
  names = [name for name, _ in tf1.train.list_variables(checkpoint)]
  assert names == [name for name, _ in tf1.train.list_variables(other)]
  for name in names:
    np.testing.assert_array_equal(tf1.train.load_variable(checkpoint, name),
                                  tf1.train.load_variable(other, name), name)


def _first_and_last_losses(estimator, input_fn, model_dir, key, steps):
  paths = _checkpoints(model_dir)
  return [estimator.evaluate(input_fn, steps=steps, checkpoint_path=p)[key]
          for p in (paths[0], paths[-1])]


@pytest.mark.slow
def test_resnet_two_workers_train_in_lockstep_and_only_the_chief_writes(tmp_path):
  data_dir = str(tmp_path / 'imagenet')
  make_tfrecords.write_synthetic_imagenet(data_dir, 8, 40, seed=3)
  model_dir, export_dir = str(tmp_path / 'model'), str(tmp_path / 'export')
  argv = RESNET_FLAGS + ['--model_dir=' + model_dir, '--data_dir=' + data_dir,
                         '--worker_timeout_secs=300', '--export_dir=' + export_dir,
                         '--serving_input=pixels']
  chief_config, worker_config = _tf_configs(chief_job=True)
  # The worker comes first: it waits for the chief, writing only TF's own folder.
  worker, = _start('resnet_ceb.resnet_main', argv, [worker_config], tmp_path, 'worker')
  tmp_folder = os.path.join(model_dir, 'tmp_worker_0')
  _poll(lambda: os.path.isdir(tmp_folder), RUN_TIMEOUT_SECS, 'the worker to start')
  time.sleep(3)
  assert worker.process.poll() is None
  assert os.listdir(model_dir) == ['tmp_worker_0']
  chief, = _start('resnet_ceb.resnet_main', argv, [chief_config], tmp_path, 'chief')
  _finish([chief, worker])

  others = {n for n in os.listdir(model_dir)
            if not n.startswith(('events.out.tfevents.', 'model.ckpt-'))}
  assert others == {'checkpoint', 'graph.pbtxt', 'params.json', 'tmp_worker_0'}
  assert len(os.listdir(export_dir)) == 1  # one SavedModel, the chief's
  summaries = _summary_steps(model_dir)
  assert any(tag == 'loss' for tag, _ in summaries)
  assert len(summaries) == len(set(summaries))  # one writer: the chief
  assert _input_batch(model_dir) == 2  # each of 2 workers takes half the global 4
  # Synchronous training: the worker's own (temporary) checkpoint holds the same values.
  chief_final, worker_final = _checkpoints(model_dir)[-1], _checkpoints(tmp_folder)[-1]
  assert chief_final.endswith('-%d' % RESNET_STEPS)
  assert worker_final.endswith('-%d' % RESNET_STEPS)
  _assert_same_values(chief_final, worker_final)

  # The chief's checkpoint restores on one device (the loss falling: the WRN test).
  params = train_utils.read_params(model_dir)
  estimator = train_utils.make_estimator(
      resnet_main.resnet_model_fn, model_dir, params, train_batch_size=4,
      eval_batch_size=4, save_checkpoints_steps=600)
  metrics = estimator.evaluate(imagenet_fixtures.train_split_input(data_dir), steps=2)
  assert metrics['global_step'] == RESNET_STEPS and np.isfinite(metrics['loss'])


@pytest.mark.slow
def test_wrn_cluster_resumes_after_a_worker_is_killed(tmp_path):
  data_dir = write_cifar_python(tmp_path / 'cifar')
  model_dir = str(tmp_path / 'model')
  argv = WRN_FLAGS + ['--model_dir=' + model_dir, '--data_dir=' + data_dir,
                      '--worker_timeout_secs=60']
  configs = _tf_configs(chief_job=False)
  chief, worker = _start('wrn_cifar.wrn_main', argv, configs, tmp_path, 'first')
  _poll(lambda: train_utils.latest_step(model_dir) >= 100, RUN_TIMEOUT_SECS,
        "the chief's checkpoint of step 100")
  worker.process.send_signal(signal.SIGKILL)
  # The chief's next step finds its peer gone: it stops, saving nothing more.
  assert chief.wait() == 1
  error = _error_line(chief)
  assert error.startswith('error: worker 0 (localhost:'), error
  assert 'TF_CONFIG' in error and 'Restart every task' in error
  assert train_utils.latest_step(model_dir) == 100

  chief, worker = _start('wrn_cifar.wrn_main', argv, configs, tmp_path, 'again')
  _finish([chief, worker])
  assert 'Restoring parameters from %s/model.ckpt-100' % model_dir in chief.log()
  assert train_utils.latest_step(model_dir) == WRN_STEPS
  assert 'eval at step %d' % WRN_STEPS in chief.log()
  assert 'eval at step' not in worker.log()
  assert not os.path.exists(os.path.join(model_dir, 'tmp_worker_0'))
  # Lockstep, down to the jump-start's running accuracy of the global batch.
  _assert_same_values(_checkpoints(model_dir)[-1],
                      _checkpoints(os.path.join(model_dir, 'tmp_worker_1'))[-1])

  params = train_utils.read_params(model_dir)
  estimator = train_utils.make_estimator(
      wrn_main.wrn_model_fn, model_dir, params, train_batch_size=8, eval_batch_size=50,
      save_checkpoints_steps=100)
  images, labels = cifar_input.load_dataset(data_dir, 'test')
  input_fn = cifar_input.build_input_fn(images, labels, False, 'none')
  first, last = _first_and_last_losses(estimator, input_fn, model_dir, 'hyz', 2)
  assert last < first


@pytest.mark.slow
def test_a_worker_whose_peer_never_comes_fails_without_training(tmp_path):
  data_dir = write_cifar_python(tmp_path / 'cifar')
  model_dir = str(tmp_path / 'model')
  chief_config, _ = _tf_configs(chief_job=False)
  chief, = _start('wrn_cifar.wrn_main', WRN_FLAGS + [
      '--model_dir=' + model_dir, '--data_dir=' + data_dir, '--worker_timeout_secs=5'],
                  [chief_config], tmp_path, 'alone')
  assert chief.wait() == 1
  error = _error_line(chief)
  assert error.startswith('error: worker 0 (localhost:'), error
  assert '--worker_timeout_secs=5' in error and 'TF_CONFIG' in error
  assert not _checkpoints(model_dir)


BAD_TF_CONFIGS = [
    ('{"cluster": ', 'TF_CONFIG is not JSON'),
    ('{"cluster": {"worker": ["localhost:1", "localhost:2"]}}', 'TF_CONFIG names no task'),
    ('{"cluster": {"worker": ["localhost:1", "localhost:2"]}, '
     '"task": {"type": "worker", "index": 2}}', 'TF_CONFIG task index 2 is outside'),
    ('{"cluster": {"worker": ["localhost:1"]}, "task": {"type": "chief", "index": 0}}',
     "TF_CONFIG task type 'chief' is not a job"),
    ('{"cluster": {"worker": ["localhost:1"], "ps": ["localhost:2"]}, '
     '"task": {"type": "worker", "index": 0}}', "TF_CONFIG names a 'ps' job"),
    ('{"cluster": {"chief": ["localhost:1", "localhost:2"], "worker": ["localhost:3"]}, '
     '"task": {"type": "chief", "index": 0}}', 'TF_CONFIG names 2 chief tasks'),
    ('{"cluster": {"worker": ["localhost:1", "localhost:1"]}, '
     '"task": {"type": "worker", "index": 0}}', 'TF_CONFIG lists localhost:1 more than once'),
]


@pytest.mark.parametrize('tf_config,message', BAD_TF_CONFIGS)
def test_bad_tf_config_exits_2_naming_it_and_writes_nothing(
    tmp_path, monkeypatch, capsys, tf_config, message):
  model_dir = tmp_path / 'model'
  monkeypatch.setenv('TF_CONFIG', tf_config)
  error = _trainer_error(wrn_main, ['--fake_data', '--model_dir=%s' % model_dir] + WRN_FLAGS,
                         capsys)
  assert error.startswith('error: ' + message), error
  assert not model_dir.exists()


def test_a_batch_the_workers_do_not_divide_exits_2_naming_flag_and_tf_config(
    tmp_path, monkeypatch, capsys):
  model_dir = tmp_path / 'model'
  monkeypatch.setenv('TF_CONFIG', _tf_configs(chief_job=True)[1])
  error = _trainer_error(resnet_main, [
      '--fake_data', '--model_dir=%s' % model_dir, '--train_batch_size=5']
      + [f for f in RESNET_FLAGS if not f.startswith('--train_batch_size')], capsys)
  assert '--train_batch_size=5' in error and 'TF_CONFIG' in error, error
  assert not model_dir.exists()


@pytest.mark.parametrize('flag', ['--mode=eval', '--num_gpus=2', '--worker_timeout_secs=0'])
def test_single_machine_flags_with_a_cluster_exit_2_naming_the_flag(
    tmp_path, monkeypatch, capsys, flag):
  model_dir = tmp_path / 'model'
  monkeypatch.setenv('TF_CONFIG', _tf_configs(chief_job=False)[0])
  error = _trainer_error(wrn_main, ['--fake_data', '--model_dir=%s' % model_dir]
                         + WRN_FLAGS + [flag], capsys)
  assert error.startswith('error: ' + flag), error
  assert not model_dir.exists()


def _trainer_error(module, argv, capsys):
  """A trainer's entry point in-process: exit 2 and its `error: ...` line."""
  flag_values = flags_for(module, argv)
  capsys.readouterr()
  with pytest.raises(SystemExit) as exit_info:
    module.main(['trainer'], flag_values)
  assert exit_info.value.code == 2
  lines = [line for line in capsys.readouterr().err.splitlines()
           if line.startswith('error: ')]
  assert lines
  return lines[-1]


def flags_for(module, argv):
  flag_values = flags.FlagValues()
  module.define_flags(flag_values)
  flag_values(['trainer'] + list(argv))
  return flag_values


def test_tf_config_forms_give_each_task_its_role():
  hosts = ['h0:1', 'h1:1', 'h2:1']
  worker_only = {'cluster': {'worker': hosts}}
  roles = [distribute.read_cluster({'TF_CONFIG': json.dumps(
      dict(worker_only, task={'type': 'worker', 'index': i}))}) for i in range(3)]
  assert [r.is_chief for r in roles] == [True, False, False]
  assert [r.worker_index for r in roles] == [0, 1, 2]
  with_chief = {'cluster': {'chief': hosts[:1], 'worker': hosts[1:]}}
  chief = distribute.read_cluster({'TF_CONFIG': json.dumps(
      dict(with_chief, task={'type': 'chief', 'index': 0}))})
  worker = distribute.read_cluster({'TF_CONFIG': json.dumps(
      dict(with_chief, task={'type': 'worker', 'index': '0'}))})
  assert chief.is_chief and chief.workers == tuple(hosts)
  assert not worker.is_chief and worker.worker_index == 1 and worker.num_workers == 3
  for unset in ({}, {'TF_CONFIG': ''}, {'TF_CONFIG': '{}'}):
    single = distribute.read_cluster(unset)
    assert not single.distributed and single.is_chief and single.num_workers == 1


def test_replica_batch_and_worker_seed():
  cluster = distribute.read_cluster({'TF_CONFIG': json.dumps(
      {'cluster': {'worker': ['a:1', 'b:1']}, 'task': {'type': 'worker', 'index': 1}})})
  assert distribute.replica_batch_size(128, cluster, replicas=2) == 64
  with pytest.raises(ValueError, match='--train_batch_size=7 .* TF_CONFIG'):
    distribute.replica_batch_size(7, cluster, replicas=2)
  assert distribute.worker_seed(10, cluster) == 11
  assert distribute.worker_seed(None, cluster) is None
