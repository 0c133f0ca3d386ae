"""Both trainers under MirroredStrategy on two virtual CPUs, and TPUEstimator off TPU.

Virtual devices must be configured before TensorFlow initializes, so the
mirrored training runs in a child process (this file run as a script); the
parent then restores the checkpoints on one device and evaluates them.
"""
import glob
import os
import subprocess
import sys

from absl import flags
from cifar_fixtures import write_cifar_python
from conftest import REPO_ROOT
import imagenet_fixtures
import pytest
import tensorflow as tf

from resnet_ceb import make_tfrecords
from resnet_ceb import resnet_main
from resnet_ceb import train_utils
from wrn_cifar import cifar_input
from wrn_cifar import wrn_main

tf1 = tf.compat.v1

TWO_CPUS = ['/cpu:0', '/cpu:1']
# 320 images at batch 16 (8 per replica): 20 steps per epoch, checkpoints every 20
# steps. ResNet: batch 8 (4 per replica) at the learning rate batch 4 had on one device.
WRN_FLAGS = ['--depth=10', '--width=1', '--train_batch_size=16', '--augment_name=none',
             '--eval_batch_size=50', '--iterations_per_loop=10', '--loss=ceb', '--rho=2',
             '--train_epochs=3', '--save_checkpoints_steps=20', '--mode=train']
RESNET_FLAGS = ['--resnet_depth=18', '--image_size=32', '--train_batch_size=8',
                '--eval_batch_size=4', '--num_eval_images=8', '--iterations_per_loop=1',
                '--loss=xent', '--base_learning_rate=1',
                '--num_train_images=8', '--weight_decay=0',
                '--mode=train']
RESNET_STEPS = 10


def _child(trainer, argv):
  """Runs a trainer in this (fresh) process, mirrored over two virtual CPUs."""
  cpu, = tf.config.list_physical_devices('CPU')
  tf.config.set_logical_device_configuration(
      cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
  module = wrn_main if trainer == 'wrn' else resnet_main
  flag_values = (wrn_main.make_flags(argv) if trainer == 'wrn'
                 else _resnet_flags(argv))
  module.run(flag_values, devices=TWO_CPUS)


def _resnet_flags(argv):
  flag_values = flags.FlagValues()
  resnet_main.define_flags(flag_values)
  flag_values(['resnet_main'] + list(argv))
  return flag_values


def _run_child(trainer, argv, timeout=300):
  result = subprocess.run(
      [sys.executable, os.path.abspath(__file__), trainer] + argv, cwd=REPO_ROOT,
      capture_output=True, text=True, timeout=timeout,
      env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL='3'))
  assert result.returncode == 0, result.stderr[-3000:]


def _assert_two_replicas(model_dir):
  """The training graph holds the second replica's copy of the model on CPU:1."""
  with open(os.path.join(model_dir, 'graph.pbtxt')) as f:
    graph = f.read()
  assert 'name: "replica_1/' in graph and 'device:CPU:1' in graph


def _checkpoints(model_dir):
  """The checkpoint paths in model_dir, by step."""
  paths = glob.glob(os.path.join(model_dir, 'model.ckpt-*.index'))
  return sorted((p[:-len('.index')] for p in paths),
                key=lambda p: int(p.rsplit('-', 1)[1]))


def _eval_losses(estimator, input_fn, model_dir, steps):
  """Eval cross-entropy (hyz) of the first and last checkpoints, restored on one device.

  hyz rather than the full CEB loss, whose gamma * rex term grows as the
  encoder spreads its means apart while the classifier learns (xent: hyz
  is its loss without weight decay).
  """
  paths = _checkpoints(model_dir)
  return [estimator.evaluate(input_fn, steps=steps, checkpoint_path=p)['hyz']
          for p in (paths[0], paths[-1])]


@pytest.mark.slow
def test_wrn_mirrored_on_two_cpus_learns_and_restores_on_one(tmp_path):
  data_dir = write_cifar_python(tmp_path / 'cifar')
  model_dir = str(tmp_path / 'model')
  _run_child('wrn', WRN_FLAGS + ['--model_dir=' + model_dir,
                                       '--data_dir=' + data_dir])
  _assert_two_replicas(model_dir)
  assert train_utils.latest_step(model_dir) == 60
  params = train_utils.read_params(model_dir)
  estimator = train_utils.make_estimator(
      wrn_main.wrn_model_fn, model_dir, params, train_batch_size=16,
      eval_batch_size=50, save_checkpoints_steps=20)
  images, labels = cifar_input.load_dataset(data_dir, 'test')
  input_fn = cifar_input.build_input_fn(images, labels, False, 'none')
  first, last = _eval_losses(estimator, input_fn, model_dir, 2)
  assert last < first


@pytest.mark.slow
def test_resnet_mirrored_on_two_cpus_learns_and_restores_on_one(tmp_path):
  data_dir = str(tmp_path / 'imagenet')
  make_tfrecords.write_synthetic_imagenet(data_dir, 8, 40, seed=3)
  model_dir = str(tmp_path / 'model')
  _run_child('resnet', RESNET_FLAGS + [
      '--model_dir=' + model_dir, '--data_dir=' + data_dir,
      '--train_steps=%d' % RESNET_STEPS])
  _assert_two_replicas(model_dir)
  assert train_utils.latest_step(model_dir) == RESNET_STEPS
  params = train_utils.read_params(model_dir)
  estimator = train_utils.make_estimator(
      resnet_main.resnet_model_fn, model_dir, params, train_batch_size=4,
      eval_batch_size=4, save_checkpoints_steps=600)
  first, last = _eval_losses(estimator, imagenet_fixtures.train_split_input(data_dir), model_dir, 2)
  assert last < first


@pytest.mark.slow
def test_tpu_estimator_off_tpu_trains_evaluates_and_exports(tmp_path):
  """TPUEstimator with use_tpu=False (the default) through train, eval and export."""
  export_dir = str(tmp_path / 'export')
  flag_values = _resnet_flags([
      '--fake_data', '--model_dir=%s' % (tmp_path / 'model'), '--train_steps=2',
      '--steps_per_eval=2', '--export_dir=' + export_dir, '--serving_input=pixels']
      + [f for f in RESNET_FLAGS if f != '--mode=train'])
  assert not flag_values.use_tpu
  metrics = resnet_main.run(flag_values)
  assert metrics['global_step'] == 2 and 'top_1_accuracy' in metrics
  exported, = glob.glob(os.path.join(export_dir, '*'))
  serve = tf.saved_model.load(exported).signatures['serving_default']
  outputs = serve(images=tf.zeros([2, 32, 32, 3]))
  assert outputs['logits'].shape == (2, 1000)


if __name__ == '__main__':
  _child(sys.argv[1], sys.argv[2:])


class _TwoReplicas:
  num_replicas_in_sync = 2


def test_mirrored_batch_must_split_evenly_over_the_replicas():
  with pytest.raises(ValueError, match='--train_batch_size=15 does not split evenly'):
    train_utils.make_mirrored_estimator(
        wrn_main.wrn_model_fn, '/nonexistent', {}, _TwoReplicas(),
        train_batch_size=15, save_checkpoints_steps=20)
