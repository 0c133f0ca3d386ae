"""Trains and evaluates the BatchNorm-free WRN-28x10 on CIFAR-10 (section 3.1, A.1).

One run: `python -m wrn_cifar.wrn_main --model_dir DIR --data_dir DIR --loss ceb --rho 3`.
Re-running the same command resumes from the last checkpoint in --model_dir,
with the rho jump-start's state (the step at which running training accuracy
crossed 20%) restored from the checkpoint.

Deviation noted for readers of appendix A.1: the paper does not state the batch
size; this trainer uses 128 by default (an assumption). With --train_epochs
shorter than the paper's 1500, the learning-rate drops at epochs 500, 1000 and
1250 scale proportionally (e.g. 15 epochs: drops after epochs 5, 10, 12.5).
"""
import math
import os

from absl import app
from absl import flags
from absl import logging
import numpy as np
import tensorflow as tf

from resnet_ceb import bfloat16
from resnet_ceb import ceb
from resnet_ceb import common_flags
from resnet_ceb import distribute
from resnet_ceb import errors
from resnet_ceb import precision as precision_lib
from resnet_ceb import train_utils
from wrn_cifar import cifar_input
from wrn_cifar import schedules
from wrn_cifar import wrn_model

tf1 = tf.compat.v1

NUM_CLASSES = 10
IMAGE_SIZE = 32
# Decay of the running training accuracy that arms the second jump-start phase.
RUNNING_ACCURACY_DECAY = 0.95

FLAGS = flags.FLAGS


def define_flags(flag_values=FLAGS):
  """The shared flags with this trainer's defaults, plus the CIFAR trainer's own."""
  # Appendix A.1 does not state the batch size: 128 is this trainer's assumption.
  common_flags.define_flags(
      flag_values, train_batch_size=128, eval_batch_size=500, num_train_images=None,
      num_eval_images=None, iterations_per_loop=100, base_learning_rate=1e-3,
      augment_name='autoaugment')
  flags.adopt_module_key_flags(common_flags, flag_values=flag_values)
  fv = {'flag_values': flag_values}
  flags.DEFINE_integer('depth', 28, 'WRN depth, 6n+4.', **fv)
  flags.DEFINE_integer('width', 10, 'WRN widening factor k.', **fv)
  flags.DEFINE_bool('jump_start', True, 'Appendix A.1 rho jump-start (100 -> 10 -> rho).', **fv)
  flags.DEFINE_enum('jump_start_ramp', schedules.RAMPS[0], list(schedules.RAMPS),
                    "What the jump-start's ramps are linear in: 'rho', or 'gamma' = e^-rho "
                    "as Listing 3's ImageNet lerp (same ends, other values between).", **fv)
  flags.DEFINE_integer('train_epochs', 1500, 'Training epochs.', **fv)
  flags.DEFINE_integer('epochs_per_eval', 10, 'Evaluate on the test set every N epochs.', **fv)
  flags.DEFINE_integer('save_checkpoints_steps', None, 'Default: once per epoch.', **fv)
  flags.DEFINE_integer('keep_checkpoint_max', 5, 'Newest checkpoints kept (older ones are '
                       'deleted); a study evaluating training over time keeps more.', **fv)
  flags.DEFINE_enum('autoaugment_policy', cifar_input.DEFAULT_AUTOAUGMENT_POLICY,
                    sorted(cifar_input.AUTOAUGMENT_POLICIES),
                    "CIFAR-10 AutoAugment list: 'released' (the released code's 95 "
                    "sub-policies) or 'paper25' (the paper's 25); docs/FIDELITY.md.", **fv)
  flags.DEFINE_integer('cutout_size', cifar_input.CUTOUT_SIZE,
                       'Side of the Cutout square that ends the AutoAugment pipeline, '
                       'even, in pixels; 0 turns Cutout off.', **fv)
  flags.DEFINE_enum('wrn_init', None, list(wrn_model.INITS),
                    "BN-free WRN init: 'he' (the original WRN's He init, BatchNorm "
                    "removed and nothing else) or 'fixup' (Fixup-style). Unset: the init "
                    "--model_dir recorded (fixup if it predates this flag), else 'he'.", **fv)
  flags.DEFINE_enum('wrn_variant', wrn_model.VARIANTS[0], list(wrn_model.VARIANTS),
                    "WRN topology: 'zagoruyko' (1x1-conv projection shortcuts) or "
                    "'autoaugment' (the released AutoAugment code's: parameter-free "
                    'shortcuts, group and stem adds); docs/FIDELITY.md.', **fv)
  flags.DEFINE_integer('bottleneck_dims', 0, 'd of section 2.2: a learned dense layer with '
                       'this many outputs between the pooled features and the head (every '
                       'loss); 0: none, z is the 64k pooled features as in Listing 1.', **fv)
  flags.DEFINE_float('weight_decay', 0.0, 'L2 weight decay on every trainable variable, '
                     "the ImageNet trainer's term (train_utils.weight_decay_loss); the paper "
                     'names none for CIFAR, so 0 (off).', **fv)
  distribute.define_flags(flag_values)
  flags.adopt_module_key_flags(distribute, flag_values=flag_values)


def _network(params):
  """The BN-free WRN a params dict names; keys older model_dirs lack: ABSENT_IDENTITY."""
  model = wrn_model.wrn(params['depth'], params['width'],
                        *(params.get(key, ABSENT_IDENTITY[key])
                          for key in ('wrn_init', 'wrn_variant')))
  return wrn_model.with_bottleneck(
      model, params.get('bottleneck_dims', ABSENT_IDENTITY['bottleneck_dims']))


def log_prior(params):
  """The cCEB log p(y) a params dict names: None (uniform) or its label counts' log."""
  if params.get('cceb_prior', 'uniform') != 'empirical':
    return None
  return ceb.empirical_log_prior(params['label_counts'])


def _jump_start_state():
  """The checkpointed state of the jump-start: crossing step and running accuracy."""
  with tf1.variable_scope('jump_start', reuse=tf1.AUTO_REUSE):
    # Under MirroredStrategy every replica computes the same update; keep one.
    first = tf.VariableAggregation.ONLY_FIRST_REPLICA
    threshold_step = tf1.get_variable(
        'threshold_step', [], tf.int64, tf1.constant_initializer(-1), trainable=False,
        aggregation=first)
    running_accuracy = tf1.get_variable(
        'running_accuracy', [], tf.float32, tf1.zeros_initializer(), trainable=False,
        aggregation=first)
  return threshold_step, running_accuracy


def _rho_tensor(params, global_step, threshold_step):
  """The rho of this step: the jump-start schedule, or the constant --rho."""
  if not params['jump_start']:
    return tf.constant(params['rho'], tf.float32)
  return schedules.cifar_rho_tensor(global_step, params['steps_per_epoch'],
                                    params['rho'], threshold_step,
                                    params.get('jump_start_ramp', 'rho'))


def _update_jump_start(params, global_step, batch_accuracy, threshold_step,
                       running_accuracy):
  """Updates the running accuracy and records the first step it exceeds 20%."""
  new_accuracy = (RUNNING_ACCURACY_DECAY * running_accuracy
                  + (1.0 - RUNNING_ACCURACY_DECAY) * batch_accuracy)
  first_phase_done = global_step >= (schedules.FIRST_ANNEAL_EPOCHS
                                     * params['steps_per_epoch'])
  crossed = tf.logical_and(
      tf.logical_and(threshold_step < 0, first_phase_done),
      new_accuracy > schedules.ACCURACY_THRESHOLD)
  return tf.group(
      running_accuracy.assign(new_accuracy),
      threshold_step.assign(tf.where(crossed, global_step, threshold_step)))


def _summaries(head, values):
  """TensorBoard scalars of the CEB terms and training state."""
  for name in ('hzx', 'hzy', 'hyz', 'rex'):
    if name in head:
      tf1.summary.scalar(name, tf.reduce_mean(head[name]))
  for name, value in values.items():
    tf1.summary.scalar(name, value)


def _metric_fn(labels, logits, *terms):
  """Eval metrics: test accuracy and the mean CEB terms."""
  predictions = tf.argmax(logits, axis=-1, output_type=tf.int32)
  metrics = {'accuracy': tf1.metrics.accuracy(labels, predictions)}
  names = ('hzx', 'hzy', 'hyz', 'rex') if len(terms) == 4 else ('hyz',)  # xent: hyz only.
  for name, value in zip(names, terms):
    metrics[name] = tf1.metrics.mean(value)
  return metrics


def z_seed(params, global_step):
  """With --deterministic, the stateless seed of z ~ e(z|x) at this step; else None."""
  if not params.get('deterministic'):
    return None
  return ceb.sample_seed(params['seed'], global_step)


def _mode_precision(params, mode):
  """The precision of training and evaluation (params'); PREDICT (export) is float32."""
  if mode == tf.estimator.ModeKeys.PREDICT:
    return precision_lib.FLOAT32
  return precision_lib.recorded(params)


def wrn_model_fn(features, labels, mode, params):
  """TPUEstimator model_fn: BN-free WRN + the objective named by params['loss']."""
  is_training = mode == tf.estimator.ModeKeys.TRAIN
  net = bfloat16.run_network(_network(params), features, is_training,
                                  _mode_precision(params, mode))
  global_step = tf1.train.get_or_create_global_step()
  loss_name = params['loss']
  summaries = {}
  weight = None
  if loss_name != 'xent':
    threshold_step, running_accuracy = _jump_start_state()
    rho = _rho_tensor(params, global_step, threshold_step)
    weight = ceb.rho_weight(loss_name, rho)
    summaries.update(rho=rho, gamma=weight, running_train_accuracy=running_accuracy)
  head = ceb.build_head(loss_name, net, labels, params['num_classes'], is_training, weight,
                        z_seed(params, global_step), log_prior(params))
  if mode == tf.estimator.ModeKeys.PREDICT:
    return tf1.estimator.tpu.TPUEstimatorSpec(
        mode, predictions={'logits': head['logits'],
                           'classes': tf.argmax(head['logits'], axis=-1)})
  loss = head['loss']
  if params.get('weight_decay', 0.0) > 0:
    loss += train_utils.weight_decay_loss(params['weight_decay'])
  terms = [head[k] for k in ('hzx', 'hzy', 'hyz', 'rex') if k in head]
  if mode == tf.estimator.ModeKeys.EVAL:
    return tf1.estimator.tpu.TPUEstimatorSpec(
        mode, loss=loss, eval_metrics=(_metric_fn, [labels, head['logits']] + terms))
  return _train_spec(params, head, loss, global_step, labels, summaries)


def _train_spec(params, head, loss, global_step, labels, summaries):
  """Adam on the scheduled learning rate, jump-start updates, summaries, hooks."""
  lr = schedules.learning_rate(global_step, params['base_learning_rate'],
                               params['train_epochs'], params['steps_per_epoch'])
  optimizer = tf1.train.AdamOptimizer(lr)
  if params['use_tpu']:
    optimizer = tf1.tpu.CrossShardOptimizer(optimizer)
  minimize = optimizer.minimize(loss, global_step)
  predictions = tf.argmax(head['logits'], axis=-1, output_type=tf.int32)
  # The global batch's accuracy on every worker: the jump-start follows one machine's.
  batch_accuracy = distribute.replica_mean(
      tf.reduce_mean(tf.cast(tf.equal(predictions, labels), tf.float32)))
  updates = [minimize]
  if params['loss'] != 'xent':
    with tf.control_dependencies([minimize]):
      updates.append(_update_jump_start(params, global_step, batch_accuracy,
                                        *_jump_start_state()))
  summaries.update(learning_rate=lr, train_accuracy=batch_accuracy, loss=loss)
  if not params['use_tpu']:
    _summaries(head, summaries)
  terms = {k: tf.reduce_mean(head[k]) for k in ('hzx', 'hzy', 'hyz', 'rex') if k in head}
  log_values = dict(terms, loss=loss, lr=lr)
  if 'rho' in summaries:
    log_values['rho'] = summaries['rho']
  hooks = [train_utils.NonFiniteLossHook(dict(terms, loss=loss)),
           train_utils.ProgressHook(params['batch_size'], params['max_steps'],
                                    params['log_every_n_steps'], log_values)]
  return tf1.estimator.tpu.TPUEstimatorSpec(
      tf.estimator.ModeKeys.TRAIN, loss=train_utils.nan_as_inf(loss),
      train_op=tf.group(*updates), training_hooks=hooks)


def eval_logits_fn(params, precision='float32'):
  """Eval-mode logits (CEB: z = f(x)) for float pixels, reusing trained variables.

  The network is float32 whatever params.json's precision, unless `precision`
  says otherwise.
  """
  model = _network(params)

  def logits_fn(images):
    net = bfloat16.run_network(model, images, False, precision)
    return ceb.build_head(params['loss'], net, None, params['num_classes'], False,
                          log_prior=log_prior(params))['logits']

  return logits_fn


def _build_train_variables(params):
  """Builds the training graph's variables, to compare with a checkpoint's."""
  def build():
    tf1.train.get_or_create_global_step()
    features = tf1.placeholder(tf.float32, [None, IMAGE_SIZE, IMAGE_SIZE, 3])
    labels = tf1.placeholder(tf.int32, [None])
    wrn_model_fn(features, labels, tf.estimator.ModeKeys.TRAIN,
                 dict(params, batch_size=1))
  return build


def validate_flags(f):
  """Checks every flag before anything touches the disk; raises ValueError naming it."""
  if not f.model_dir:
    raise ValueError('--model_dir is required')
  ceb.check_loss_and_rho(f.loss, f.rho)
  wrn_model.check_depth_and_width(f.depth, f.width)
  if f.wrn_init is not None:
    wrn_model.check_init(f.wrn_init)
  wrn_model.check_variant(f.wrn_variant)
  wrn_model.check_bottleneck_dims(f.bottleneck_dims)
  precision_lib.resolve(f.precision, f.use_tpu)
  for name in ('train_epochs', 'train_batch_size', 'eval_batch_size', 'epochs_per_eval',
               'iterations_per_loop', 'keep_checkpoint_max'):
    train_utils.require_positive(name, getattr(f, name))
  for name in ('num_train_images', 'num_eval_images', 'save_checkpoints_steps'):
    if getattr(f, name) is not None:
      train_utils.require_positive(name, getattr(f, name))
  schedules.check_ramp(f.jump_start_ramp)
  if f.cceb_prior != 'uniform' and f.loss != 'cceb':
    raise ValueError('--cceb_prior=%s applies only to --loss=cceb' % f.cceb_prior)
  cifar_input.check_augment_flags(f.augment_name, f.autoaugment_policy, f.cutout_size)
  if f.use_tpu and not f.tpu:
    raise ValueError('--use_tpu needs --tpu')
  if not f.base_learning_rate > 0:
    raise ValueError('--base_learning_rate=%r must be positive' % f.base_learning_rate)
  if not (math.isfinite(f.weight_decay) and f.weight_decay >= 0):
    raise ValueError('--weight_decay=%r must be a finite number >= 0' % f.weight_decay)


def _load(f, split, limit):
  images, labels = cifar_input.load_dataset(f.data_dir, split, f.fake_data)
  return images[:limit], labels[:limit]


def params_from_flags(f, num_train, label_counts=None):
  """The params dict every model_fn and input_fn call receives.

  Args:
    f: the parsed flags.
    num_train: the number of training images loaded.
    label_counts: how many of them each class has; needed, and recorded as
      `label_counts`, with --cceb_prior=empirical.

  Raises:
    ValueError: naming the flag that cannot be followed.
  """
  steps_per_epoch = num_train // f.train_batch_size
  if steps_per_epoch < 1:
    raise ValueError('--train_batch_size=%d is larger than the %d training images'
                     % (f.train_batch_size, num_train))
  params = {
      'trainer': 'wrn_cifar', 'dataset': 'cifar10', 'image_size': IMAGE_SIZE,
      'num_classes': NUM_CLASSES, 'depth': f.depth, 'width': f.width,
      'loss': f.loss, 'rho': float(f.rho), 'jump_start': f.jump_start,
      'jump_start_ramp': f.jump_start_ramp, 'cceb_prior': f.cceb_prior,
      'train_epochs': f.train_epochs, 'train_batch_size': f.train_batch_size,
      'base_learning_rate': f.base_learning_rate, 'augment_name': f.augment_name,
      'autoaugment_policy': f.autoaugment_policy, 'cutout_size': f.cutout_size,
      'wrn_init': wrn_init(f), 'wrn_variant': f.wrn_variant,
      'bottleneck_dims': f.bottleneck_dims, 'weight_decay': f.weight_decay,
      'num_train_images': num_train, 'steps_per_epoch': steps_per_epoch,
      'max_steps': steps_per_epoch * f.train_epochs, 'use_tpu': f.use_tpu,
      'log_every_n_steps': min(f.iterations_per_loop, steps_per_epoch),
      'data_dir': os.path.abspath(f.data_dir) if f.data_dir else None,
      'fake_data': f.fake_data, 'deterministic': f.deterministic, 'seed': f.seed,
      'precision': precision_lib.resolve(f.precision, f.use_tpu),
  }
  if f.cceb_prior == 'empirical':
    if label_counts is None:
      raise ValueError('--cceb_prior=empirical needs the label counts of the training set')
    params['label_counts'] = [int(c) for c in label_counts]
    ceb.empirical_log_prior(params['label_counts'])
  return params


# Identity keys newer than some model_dirs: what a params.json without one means.
ABSENT_IDENTITY = {'weight_decay': 0.0, 'jump_start_ramp': 'rho', 'cceb_prior': 'uniform',
                   'wrn_init': 'fixup', 'wrn_variant': 'zagoruyko', 'bottleneck_dims': 0}


def wrn_init(f):
  """The init of the run: --wrn_init, else --model_dir's, else the default ('he').

  The default was 'fixup' before the measurement in docs/FIDELITY.md; a
  model_dir keeps the init it recorded (or, recording none, 'fixup'), so its
  unchanged command resumes it.
  """
  if f.wrn_init is not None:
    return f.wrn_init
  recorded = train_utils.recorded_identity(f.model_dir) if f.model_dir else None
  if recorded is None:
    return wrn_model.INITS[0]
  return recorded.get('wrn_init', ABSENT_IDENTITY['wrn_init'])


def run_identity(params):
  """The params that make a model_dir this run's and no other's."""
  keys = ('trainer', 'depth', 'width', 'loss', 'train_batch_size', 'train_epochs',
          'augment_name', 'autoaugment_policy', 'cutout_size', 'wrn_init', 'wrn_variant',
          'bottleneck_dims', 'jump_start', 'jump_start_ramp', 'weight_decay')
  identity = {k: params[k] for k in keys}
  if params['loss'] != 'xent':
    identity['rho'] = params['rho']
  if params['loss'] == 'cceb':
    identity['cceb_prior'] = params.get('cceb_prior', 'uniform')
  return identity


def build_estimator(f, params, devices=None, cluster=None):
  """The Estimator the flags ask for (benchmarks.estimator_overhead measures this one).

  Args:
    f: the parsed flags (see `make_flags`).
    params: from `params_from_flags`.
    devices: mirror training over these devices (see `run`); None: --num_gpus.
    cluster: the distribute.cluster_for_flags cluster; None: one process.
  """
  return train_utils.make_estimator(
      wrn_model_fn, f.model_dir, params, use_tpu=f.use_tpu, tpu=f.tpu,
      num_gpus=f.num_gpus, train_batch_size=f.train_batch_size,
      eval_batch_size=f.eval_batch_size,
      save_checkpoints_steps=f.save_checkpoints_steps or params['steps_per_epoch'],
      keep_checkpoint_max=f.keep_checkpoint_max, iterations_per_loop=params['log_every_n_steps'],
      tf_random_seed=f.seed if f.deterministic else None, devices=devices,
      cluster=cluster, worker_timeout_secs=f.worker_timeout_secs, xla=f.xla)


def run(f, devices=None):
  """Validates, trains with periodic evaluation and returns the last eval metrics.

  Args:
    f: the parsed flags (see `make_flags`).
    devices: mirror training over these devices (e.g. two virtual CPUs in
      tests) instead of what --num_gpus selects.
  """
  validate_flags(f)
  cluster = distribute.cluster_for_flags(f, devices)
  train_utils.check_xla(f.xla, f.num_gpus, cluster, devices)
  train_images, train_labels = _load(f, 'train', f.num_train_images)
  eval_images, eval_labels = _load(f, 'test', f.num_eval_images)
  params = params_from_flags(f, len(train_images),
                             np.bincount(train_labels, minlength=NUM_CLASSES))
  train_utils.check_model_dir(f.model_dir, run_identity(params),
                              _build_train_variables(params), ABSENT_IDENTITY)
  if f.deterministic:
    train_utils.enable_determinism(f.seed)
  train_utils.log_precision_change(f.model_dir, params['precision'])
  if cluster.is_chief:
    os.makedirs(f.model_dir, exist_ok=True)
    train_utils.write_params(f.model_dir, run_identity(params), params)
  estimator = build_estimator(f, params, devices, cluster)
  seed = distribute.worker_seed(f.seed if f.deterministic else None, cluster)
  eval_input = cifar_input.build_input_fn(eval_images, eval_labels, False, 'none')
  eval_steps = -(-len(eval_images) // f.eval_batch_size)
  metrics = None
  if f.mode == 'eval':
    return estimator.evaluate(eval_input, steps=eval_steps)
  every = f.epochs_per_eval * params['steps_per_epoch']
  for next_stop in list(range(every, params['max_steps'], every)) + [params['max_steps']]:
    # A seeded stream restarts at the restored step's example: exact resume.
    train_input = cifar_input.build_input_fn(
        train_images, train_labels, True, f.augment_name, seed=seed,
        start_step=train_utils.latest_step(f.model_dir),
        autoaugment_policy=f.autoaugment_policy, cutout_size=f.cutout_size)
    estimator.train(train_input, max_steps=next_stop)
    if f.mode == 'train_and_eval' and cluster.is_chief:
      metrics = estimator.evaluate(eval_input, steps=eval_steps)
      logging.info('eval at step %d: %s', metrics['global_step'],
                   ', '.join('%s=%.4f' % (k, v) for k, v in sorted(metrics.items())))
  return metrics


def make_flags(argv):
  """Parses `argv` (flag strings) into a fresh FlagValues, for in-process runs."""
  flag_values = flags.FlagValues()
  define_flags(flag_values)
  flag_values(['wrn_main'] + list(argv))
  return flag_values


def main(argv, flag_values=FLAGS):
  """Entry point: `error: ...`; exit 2 for bad input, 1 for divergence or lost peers."""
  del argv
  train_utils.setup_logging()
  with errors.exit_on_bad_input(diverged=(train_utils.NonFiniteLossError,
                                          distribute.PeerLostError)):
    run(flag_values)


if __name__ == '__main__':
  define_flags()
  app.run(main)
