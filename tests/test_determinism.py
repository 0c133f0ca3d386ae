"""--deterministic: repeatable training and exact resume after SIGKILL, both trainers."""
import os
import random
import signal
import subprocess
import sys
import time

from absl import flags
from cifar_fixtures import write_cifar_python
from conftest import REPO_ROOT
import numpy as np
import pytest
import tensorflow as tf

from resnet_ceb import autoaugment
from resnet_ceb import fileio
from resnet_ceb import make_tfrecords
from resnet_ceb import resnet_main
from resnet_ceb import train_utils
from wrn_cifar import cifar_input
from wrn_cifar import wrn_main

tf1 = tf.compat.v1

# 320 images at batch 16: 20 steps per epoch, 80 in all; the rho schedule's
# 20% crossing can only come after the 2-epoch anneal, at step 40 or later.
WRN_STEPS = 80
WRN_FLAGS = ['--depth=10', '--width=1', '--train_batch_size=16', '--augment_name=none',
             '--eval_batch_size=50', '--iterations_per_loop=10', '--loss=ceb', '--rho=1',
             '--train_epochs=4', '--epochs_per_eval=2', '--save_checkpoints_steps=5',
             '--deterministic', '--seed=3']
# Kill points (steps reached before SIGKILL), drawn once from a fixed seed: one
# before the 20% crossing, two after it; the middle one is killed between
# checkpoint writes, the others inside the next write. Each leaves room for one
# more checkpoint (5 steps) before the last, at step 80.
_DRAW = random.Random(2020)
WRN_KILLS = [(_DRAW.randrange(5, 35), True), (_DRAW.randrange(45, 60), False),
             (_DRAW.randrange(60, 70), True)]
RESNET_FLAGS = dict(resnet_depth=18, image_size=32, train_batch_size=2, eval_batch_size=4,
                    num_eval_images=4, train_steps=4, steps_per_eval=2,
                    iterations_per_loop=1, loss='ceb', rho=2.0, anneal_rho=3,
                    num_train_images=6, deterministic=True, seed=5)


@pytest.fixture(scope='module')
def cifar_dir(tmp_path_factory):
  return write_cifar_python(tmp_path_factory.mktemp('cifar'))


@pytest.fixture(scope='module')
def imagenet_dir(tmp_path_factory):
  path = str(tmp_path_factory.mktemp('imagenet'))
  make_tfrecords.write_synthetic_imagenet(path, 5, 40, seed=4)
  return path


def _variables(model_dir):
  """Every variable of the latest checkpoint, loaded (so it must be readable)."""
  checkpoint = tf1.train.latest_checkpoint(model_dir)
  return {name: tf1.train.load_variable(checkpoint, name)
          for name, _ in tf1.train.list_variables(checkpoint)}


def _assert_same_variables(first, second):
  assert sorted(first) == sorted(second)
  for name in first:
    np.testing.assert_array_equal(first[name], second[name], err_msg=name)


def _wrn_argv(model_dir, data_dir):
  return ['--model_dir=%s' % model_dir, '--data_dir=%s' % data_dir] + WRN_FLAGS


def _run_wrn(model_dir, data_dir):
  return wrn_main.run(wrn_main.make_flags(_wrn_argv(model_dir, data_dir)))


@pytest.fixture(scope='module')
def wrn_reference(tmp_path_factory, cifar_dir):
  """(variables, metrics) of one uninterrupted deterministic WRN run."""
  model_dir = str(tmp_path_factory.mktemp('wrn_reference'))
  metrics = _run_wrn(model_dir, cifar_dir)
  return _variables(model_dir), metrics


def test_seeded_cifar_stream_resumes_at_any_step():
  """start_step=s gives exactly the batches from step s of the full stream."""
  images, labels = cifar_input.fake_cifar10(12)
  full = _batches(cifar_input.build_input_fn(images, labels, True, 'autoaugment', seed=1),
                  9)
  for start in (1, 4, 7):
    resumed = _batches(cifar_input.build_input_fn(
        images, labels, True, 'autoaugment', seed=1, start_step=start), 9 - start)
    for expected, got in zip(full[start:], resumed):
      np.testing.assert_array_equal(expected[0], got[0])
      np.testing.assert_array_equal(expected[1], got[1])


def _batches(input_fn, count, batch_size=5):
  dataset = input_fn({'batch_size': batch_size}).take(count)
  return list(dataset.as_numpy_iterator())


def test_seeded_autoaugment_is_a_function_of_the_seed():
  image = tf.constant(np.random.RandomState(0).randint(0, 256, (32, 32, 3)), tf.uint8)
  outputs = [autoaugment.distort_image_with_autoaugment(image, 'cifar10',
                                                        seed=tf.constant([s, 9]))
             for s in (1, 1) + tuple(range(2, 12))]
  np.testing.assert_array_equal(outputs[0], outputs[1])
  assert sum(not np.array_equal(outputs[0], o) for o in outputs[2:]) > 0


@pytest.mark.slow
def test_two_wrn_runs_give_identical_checkpoints(tmp_path, cifar_dir, wrn_reference):
  variables, metrics = wrn_reference
  assert variables['jump_start/threshold_step'] >= 40  # The crossing happened.
  again = _run_wrn(str(tmp_path / 'again'), cifar_dir)
  _assert_same_variables(variables, _variables(str(tmp_path / 'again')))
  assert again == metrics


def _kill_at_step(argv, module, model_dir, step, mid_write, timeout=240):
  """Starts a trainer, SIGKILLs it once a checkpoint of `step` or later exists.

  With `mid_write`, the kill waits for the next file the trainer starts writing
  (a checkpoint's `_temp` or a `.tmp` file) and lands inside that write; should
  the polling miss it, the kill comes as soon as the next checkpoint exists.
  Either way the trainer gets at most one checkpoint further, however fast it
  runs, since no clock is involved.

  Returns the step of the latest checkpoint when it was killed.
  """
  proc = subprocess.Popen([sys.executable, '-m', module] + argv, cwd=REPO_ROOT,
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                          env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL='3'))
  deadline = time.time() + timeout
  try:
    while time.time() < deadline and proc.poll() is None:
      reached = _checkpoint_step(model_dir)
      if reached >= step:
        if mid_write:
          _wait_for_a_write(model_dir, reached, deadline)
        break
      time.sleep(0.005)
    assert proc.poll() is None, 'the trainer ended before step %d' % step
  finally:
    proc.send_signal(signal.SIGKILL)
    proc.wait()
  return train_utils.latest_step(model_dir)


def _wait_for_a_write(model_dir, reached, deadline):
  """Returns once a file is being written in model_dir or a checkpoint past `reached` exists."""
  while time.time() < deadline:
    for name in os.listdir(model_dir):
      if '_temp' in name or '.tmp' in name:
        return
      if name.startswith('model.ckpt-') and name.endswith('.index'):
        if int(name[len('model.ckpt-'):-len('.index')]) > reached:
          return
    time.sleep(0.0005)


def _checkpoint_step(model_dir):
  try:
    return train_utils.latest_step(model_dir)
  except (tf.errors.NotFoundError, tf.errors.DataLossError, ValueError):
    return -1


def _assert_loadable(model_dir):
  """After a kill: the latest checkpoint and params.json both load."""
  assert _variables(model_dir)
  assert fileio.read_json(os.path.join(model_dir, 'params.json'))['params']


@pytest.mark.slow
@pytest.mark.parametrize('kill_step,mid_write', WRN_KILLS)
def test_wrn_killed_and_rerun_equals_uninterrupted(tmp_path, cifar_dir, wrn_reference,
                                                   kill_step, mid_write):
  model_dir = str(tmp_path / 'killed')
  killed_at = _kill_at_step(_wrn_argv(model_dir, cifar_dir), 'wrn_cifar.wrn_main',
                            model_dir, kill_step, mid_write)
  assert killed_at < WRN_STEPS
  _assert_loadable(model_dir)
  metrics = _run_wrn(model_dir, cifar_dir)
  variables, reference_metrics = wrn_reference
  _assert_same_variables(variables, _variables(model_dir))
  assert metrics == reference_metrics


def _resnet_flags(model_dir, data_dir):
  flag_values = flags.FlagValues()
  resnet_main.define_flags(flag_values)
  values = dict(RESNET_FLAGS, model_dir=model_dir, data_dir=data_dir)
  flag_values(['resnet_main'] + _resnet_argv(values))
  return flag_values


def _resnet_argv(values):
  return ['--%s' % k if v is True else '--%s=%s' % (k, v) for k, v in values.items()]


@pytest.mark.slow
def test_resnet_killed_and_rerun_equals_uninterrupted(tmp_path, imagenet_dir):
  reference_dir = str(tmp_path / 'reference')
  reference_metrics = resnet_main.run(_resnet_flags(reference_dir, imagenet_dir))
  model_dir = str(tmp_path / 'killed')
  argv = _resnet_argv(dict(RESNET_FLAGS, model_dir=model_dir, data_dir=imagenet_dir))
  killed_at = _kill_at_step(argv, 'resnet_ceb.resnet_main', model_dir, 2, mid_write=True)
  assert killed_at < RESNET_FLAGS['train_steps']
  _assert_loadable(model_dir)
  metrics = resnet_main.run(_resnet_flags(model_dir, imagenet_dir))
  _assert_same_variables(_variables(reference_dir), _variables(model_dir))
  assert metrics == reference_metrics
