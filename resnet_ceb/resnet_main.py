"""Trains and evaluates ResNet CEB models on ImageNet (section 3.2, A.2, Listing 3).

Mirrors `resnet_main.py` of the TPU ResNet reference (tensorflow/tpu,
models/official/resnet): its flags, `learning_rate_schedule`, `resnet_model_fn`
and train / eval / train_and_eval loop, with Listing 3's edits: the network
returns the pre-logits (Listing 1) and `ceb.build_head` puts the objective
named by --loss on them (xent is the unchanged reference).

One run: `python -m resnet_ceb.resnet_main --data_dir DIR --model_dir DIR
--loss ceb --rho 3`. Re-running the same command resumes from the last
checkpoint. Off TPU the same TPUEstimator runs on the CPU (or one GPU);
--num_gpus N > 1 mirrors it over N GPUs.

Schedule (appendix A.2, from Cubuk et al.'s AutoAugment ResNet-50): top
learning rate 1.6 at batch 8192. The reference scales --base_learning_rate by
batch / 256, so the default 0.05 gives 0.05 * 8192 / 256 = 1.6. Linear
warm-up over the reference's first 5 epochs (782 steps; --warmup_epochs, 0 =
none), x0.1 at epochs 90,
180 and 240 (steps 14,076, 28,151 and 37,535 at batch 8192), 270 epochs in
all (42,226 steps). The epochs are fixed: a shorter --train_steps just stops
earlier, as in the reference.

Differences from the reference, and why:

* Listing 3 defects, fixed: `aneal_rho` is `anneal_rho`; `cyz_dist(z, params)`
  gets num_classes (here through `ceb.build_head`). Listing 3's
  `bzy_dist(labels)` default z_dims=2048 would be wrong at width x2; the head
  takes z_dims from f(x).
* The model normalizes pixels itself (see resnet_model), so PGD works in [0, 255].
* PREDICT (and so SavedModel export) always builds the float32 network; the
  checkpoint's variables are float32 under bfloat16 too, and a float32
  SavedModel runs on CPU and GPU.
* --mode=eval evaluates the latest checkpoint once, instead of waiting for
  each new checkpoint of a concurrent training job.
* TensorBoard scalars are plain summaries off TPU and go through a host_call
  on TPU, as the reference's. --label_smoothing applies to --loss=xent only.
* Input read errors (corrupt records, bad JPEGs, labels outside 1..1000)
  stop the run with a message naming --data_dir.
* --num_label_classes keeps the reference's name, but params.json records the
  class count as `num_classes`, the key both trainers share.
"""
import functools
import math
import os

from absl import app
from absl import flags
from absl import logging
import tensorflow as tf

from resnet_ceb import bfloat16
from resnet_ceb import ceb
from resnet_ceb import common_flags
from resnet_ceb import distribute
from resnet_ceb import errors
from resnet_ceb import imagenet_classes
from resnet_ceb import imagenet_input
from resnet_ceb import precision as precision_lib
from resnet_ceb import resnet_model
from resnet_ceb import resnet_preprocessing
from resnet_ceb import train_utils

tf1 = tf.compat.v1

# Appendix A.2's schedule at the paper's batch size.
PAPER_BATCH_SIZE = 8192
PAPER_TOP_LEARNING_RATE = 1.6
PAPER_TRAIN_EPOCHS = 270
NUM_TRAIN_IMAGES = 1281167
NUM_EVAL_IMAGES = 50000
# The reference's convention: learning rate = base_learning_rate * batch / 256.
LR_REFERENCE_BATCH = 256.0
BASE_LEARNING_RATE = PAPER_TOP_LEARNING_RATE * LR_REFERENCE_BATCH / PAPER_BATCH_SIZE
# (multiplier, epoch it starts at): linear warm-up to 1.0 over 5 epochs (the
# default of --warmup_epochs), then drops.
LR_SCHEDULE = ((1.0, 5), (0.1, 90), (0.01, 180), (0.001, 240))
TRAIN_STEPS = int(math.ceil(PAPER_TRAIN_EPOCHS * NUM_TRAIN_IMAGES / PAPER_BATCH_SIZE))
# About 10 and 1 epochs at batch 8192.
STEPS_PER_EVAL = 1564
ITERATIONS_PER_LOOP = 156
# Listing 3: anneal rho from 100 to the target over this many steps.
ANNEAL_RHO_STEPS = 12000
# The reference checkpoints at least this many steps apart.
MIN_CHECKPOINT_STEPS = 600
MIN_IMAGE_SIZE = 32
HEAD_TERMS = ('hzx', 'hzy', 'hyz', 'rex')

FLAGS = flags.FLAGS


def define_flags(flag_values=FLAGS):
  """The shared flags with the reference's defaults, plus the ImageNet trainer's own."""
  common_flags.define_flags(
      flag_values, train_batch_size=PAPER_BATCH_SIZE, eval_batch_size=1024,
      num_train_images=NUM_TRAIN_IMAGES, num_eval_images=NUM_EVAL_IMAGES,
      iterations_per_loop=ITERATIONS_PER_LOOP, base_learning_rate=BASE_LEARNING_RATE,
      augment_name=None)
  flags.adopt_module_key_flags(common_flags, flag_values=flag_values)
  fv = {'flag_values': flag_values}
  flags.DEFINE_integer('resnet_depth', 50, 'ResNet depth: 18, 34, 50, 101, 152, 200.', **fv)
  flags.DEFINE_integer('width_multiplier', 1, 'Filters of every conv x this (paper: 1, 2).', **fv)
  flags.DEFINE_integer('train_steps', TRAIN_STEPS, 'Training steps (default: 270 '
                       'epochs at batch 8192).', **fv)
  flags.DEFINE_integer('num_label_classes', imagenet_classes.NUM_CLASSES, 'Number of '
                       "classes (params.json's num_classes).", **fv)
  flags.DEFINE_integer('steps_per_eval', STEPS_PER_EVAL, 'Train steps between '
                       'evaluations (train_and_eval).', **fv)
  flags.DEFINE_float('momentum', 0.9, 'Nesterov momentum.', **fv)
  flags.DEFINE_float('warmup_epochs', LR_SCHEDULE[0][1], 'Linear learning-rate warm-up '
                     "over this many epochs (the TPU reference's 5; the paper names none); "
                     '0: none, the top rate from step 0.', **fv)
  flags.DEFINE_float('weight_decay', 1e-4, 'L2 on non-BatchNorm variables.', **fv)
  flags.DEFINE_float('label_smoothing', 0.0, 'Label smoothing (--loss=xent only).', **fv)
  flags.DEFINE_enum('data_format', 'channels_last', ['channels_last', 'channels_first'],
                    'Layout inside the network (channels_last on CPU).', **fv)
  flags.DEFINE_integer('image_size', 224, 'Input image side.', **fv)
  flags.DEFINE_bool('use_cache', False, 'Cache the training records in memory.', **fv)
  flags.DEFINE_string('export_dir', None, 'Export a SavedModel here after training.', **fv)
  flags.DEFINE_enum('serving_input', 'jpeg', ['jpeg', 'pixels'], 'Exported input: '
                    'JPEG bytes or float pixels [B, H, W, 3] in [0, 255].', **fv)
  flags.DEFINE_integer('anneal_rho', ANNEAL_RHO_STEPS, 'Jump-start: anneal from rho '
                       '= 100 to --rho over this many steps (linear in gamma); 0: off.', **fv)
  distribute.define_flags(flag_values)
  flags.adopt_module_key_flags(distribute, flag_values=flag_values)


def learning_rate_schedule(params, current_epoch):
  """The reference's schedule: linear warm-up, then steps down at LR_SCHEDULE's epochs.

  Args:
    params: needs 'base_learning_rate' and 'train_batch_size'; its
      'warmup_epochs' (absent: LR_SCHEDULE's 5) replaces LR_SCHEDULE[0]'s
      epoch, 0 meaning no warm-up.
    current_epoch: float tensor, global_step / steps per epoch.

  Returns:
    The learning rate tensor.
  """
  scaled_lr = params['base_learning_rate'] * (
      params['train_batch_size'] / LR_REFERENCE_BATCH)
  warmup_mult, default_epochs = LR_SCHEDULE[0]
  warmup_epochs = params.get('warmup_epochs', default_epochs)
  rate = scaled_lr * warmup_mult
  if warmup_epochs > 0:
    rate = rate * current_epoch / warmup_epochs
  for mult, start_epoch in ((warmup_mult, warmup_epochs),) + LR_SCHEDULE[1:]:
    rate = tf.where(current_epoch < start_epoch, rate, scaled_lr * mult)
  return rate


def current_epoch(params, global_step):
  """global_step in epochs of params['num_train_images']."""
  steps_per_epoch = params['num_train_images'] / params['train_batch_size']
  return tf.cast(global_step, tf.float32) / steps_per_epoch


def rho_weight_schedule(params, global_step):
  """The weight gamma (CEB, cCEB) or beta (VIB) at global_step, with Listing 3's jump-start.

  gamma is interpolated linearly from rho_weight(100) to rho_weight(--rho) over
  the first anneal_rho steps, as Listing 3's `lerp` on gamma does. As there,
  the arithmetic is float32, where e^-100 is a denormal that CPUs and TPUs
  flush to zero: the first step trains with gamma = 0.
  """
  weight = ceb.rho_weight(params['loss'], params['rho'])
  if params['anneal_rho'] > 0:
    # Listing 3 writes `aneal_rho` here: a typo for anneal_rho.
    weight = ceb.lerp(global_step, 0, params['anneal_rho'],
                      ceb.rho_weight(params['loss'], ceb.JUMP_START_RHO), weight)
  return tf.cast(weight, tf.float32)


def build_network(features, is_training, params, precision):
  """The ResNet pre-logits f(x) in float32; computed under bfloat16_scope if asked."""
  network = resnet_model.resnet_v1(
      params['resnet_depth'], params['num_classes'],
      params['width_multiplier'], params['data_format'])
  return bfloat16.run_network(network, features, is_training, precision)


def head_loss(params, head, labels, logits):
  """The objective's loss; the reference's label-smoothed cross-entropy for xent."""
  if params['loss'] == 'xent' and params['label_smoothing'] > 0:
    one_hot = tf.one_hot(labels, params['num_classes'])
    return tf1.losses.softmax_cross_entropy(
        one_hot, logits, label_smoothing=params['label_smoothing'])
  return head['loss']


def metric_fn(labels, logits, *terms):
  """Eval metrics: top-1 / top-5 accuracy and the mean CEB terms present."""
  predictions = tf.argmax(logits, axis=1, output_type=tf.int32)
  in_top_5 = tf.cast(tf.math.in_top_k(labels, logits, 5), tf.float32)
  metrics = {'top_1_accuracy': tf1.metrics.accuracy(labels, predictions),
             'top_5_accuracy': tf1.metrics.mean(in_top_5)}
  names = HEAD_TERMS if len(terms) == len(HEAD_TERMS) else ('hyz',)
  for name, value in zip(names, terms):
    metrics[name] = tf1.metrics.mean(value)
  return metrics


def resnet_model_fn(features, labels, mode, params):
  """TPUEstimator model_fn: ResNet pre-logits + the --loss head (Listing 3).

  Args:
    features: float pixels [B, H, W, 3] in [0, 255].
    labels: int32 [B] in 0..num_classes-1 (None in PREDICT).
    mode: a tf.estimator.ModeKeys.
    params: the dict of `params_from_flags` (plus TPUEstimator's batch_size).

  Returns:
    A TPUEstimatorSpec.
  """
  is_training = mode == tf.estimator.ModeKeys.TRAIN
  precision = 'float32' if mode == tf.estimator.ModeKeys.PREDICT else params['precision']
  net = build_network(features, is_training, params, precision)
  global_step = tf1.train.get_or_create_global_step()
  weight = None
  if params['loss'] != 'xent':
    weight = rho_weight_schedule(params, global_step)
  # Listing 3's `cyz_dist(z, params)` meant num_classes, which build_head passes.
  z_seed = None
  if is_training and params.get('deterministic'):
    z_seed = ceb.sample_seed(params['seed'], global_step)
  head = ceb.build_head(params['loss'], net, labels, params['num_classes'],
                        is_training, weight, z_seed)
  logits = head['logits']
  if mode == tf.estimator.ModeKeys.PREDICT:
    predictions = {'classes': tf.argmax(logits, axis=1),
                   'probabilities': tf.nn.softmax(logits), 'logits': logits}
    return tf1.estimator.tpu.TPUEstimatorSpec(
        mode, predictions=predictions,
        export_outputs={'classify': tf.estimator.export.PredictOutput(predictions)})
  loss = (head_loss(params, head, labels, logits)
          + train_utils.weight_decay_loss(params['weight_decay']))
  if mode == tf.estimator.ModeKeys.EVAL:
    terms = [head[k] for k in HEAD_TERMS if k in head]
    return tf1.estimator.tpu.TPUEstimatorSpec(
        mode, loss=loss, eval_metrics=(metric_fn, [labels, logits] + terms))
  return _train_spec(params, head, loss, labels, global_step, weight)


def _train_spec(params, head, loss, labels, global_step, weight):
  """Nesterov momentum on the scheduled learning rate, BN updates, summaries, hooks."""
  learning_rate = learning_rate_schedule(params, current_epoch(params, global_step))
  optimizer = tf1.train.MomentumOptimizer(
      learning_rate, momentum=params['momentum'], use_nesterov=True)
  if params['use_tpu']:
    optimizer = tf1.tpu.CrossShardOptimizer(optimizer)
  # BatchNorm's moving averages are updated through UPDATE_OPS.
  with tf.control_dependencies(tf1.get_collection(tf1.GraphKeys.UPDATE_OPS)):
    train_op = optimizer.minimize(loss, global_step)
  predictions = tf.argmax(head['logits'], axis=1, output_type=tf.int32)
  scalars = {k: tf.reduce_mean(head[k]) for k in HEAD_TERMS if k in head}
  scalars.update(
      loss=loss, learning_rate=learning_rate,
      train_accuracy=tf.reduce_mean(tf.cast(tf.equal(predictions, labels), tf.float32)))
  if weight is not None:
    scalars.update(gamma=weight, rho=ceb.weight_to_rho(params['loss'], weight))
  if params['use_tpu']:
    return tf1.estimator.tpu.TPUEstimatorSpec(
        tf.estimator.ModeKeys.TRAIN, loss=loss, train_op=train_op,
        host_call=summary_host_call(params, global_step, scalars))
  for name, value in sorted(scalars.items()):
    tf1.summary.scalar(name, value)
  terms = {k: v for k, v in scalars.items() if k in HEAD_TERMS + ('loss',)}
  hooks = [train_utils.NonFiniteLossHook(terms),
           train_utils.ProgressHook(params['train_batch_size'], params['train_steps'],
                                    params['iterations_per_loop'], scalars)]
  return tf1.estimator.tpu.TPUEstimatorSpec(
      tf.estimator.ModeKeys.TRAIN, loss=train_utils.nan_as_inf(loss), train_op=train_op,
      training_hooks=hooks)


def summary_host_call(params, global_step, scalars):
  """The reference's TPU host_call writing `scalars` to model_dir as TF2 summaries.

  Returns:
    (host_call_fn, tensors): the tensors are [1]-shaped, as the host call
    concatenates them over TPU cores.
  """
  names = sorted(scalars)

  def host_call_fn(step, *values):
    writer = tf.summary.create_file_writer(
        params['model_dir'], max_queue=params['iterations_per_loop'])
    with writer.as_default(), tf.summary.record_if(True):
      for name, value in zip(names, values):
        tf.summary.scalar(name, value[0], step=step[0])
      return tf1.summary.all_v2_summary_ops()

  tensors = [tf.reshape(global_step, [1])]
  tensors += [tf.reshape(tf.cast(scalars[n], tf.float32), [1]) for n in names]
  return host_call_fn, tensors


def eval_logits_fn(params, precision='float32'):
  """Eval-mode logits for float pixels [B, H, W, 3] in [0, 255].

  BatchNorm uses its moving averages and the CEB head z = f(x). Each call
  builds the channels_last network in the current graph, in float32 whatever
  params.json's precision unless `precision` says otherwise, reusing the
  variables (and names) of training, so it can be called many times in one
  graph, e.g. inside a PGD while_loop.
  """
  params = dict(params, data_format='channels_last')

  def logits_fn(images):
    net = build_network(images, False, params, precision)
    return ceb.build_head(params['loss'], net, None, params['num_classes'],
                          False)['logits']

  return logits_fn


def _finite(name, value, low, high=float('inf'), high_open=False):
  """Raises ValueError naming --name unless low <= value <= high (or < high)."""
  ok = math.isfinite(value) and low <= value and (
      value < high if high_open else value <= high)
  if not ok:
    raise ValueError('--%s=%r must be a finite number in [%s, %s%s' % (
        name, value, low, high, ')' if high_open else ']'))


def resolve_precision(f):
  """--precision, defaulting to bfloat16 on TPU and float32 elsewhere."""
  return precision_lib.resolve(f.precision, f.use_tpu)


def validate_flags(f):
  """Checks every flag before anything touches the disk; raises ValueError naming it."""
  if not f.model_dir:
    raise ValueError('--model_dir is required')
  if not f.data_dir and not f.fake_data:
    raise ValueError('--data_dir is required (a folder of ImageNet TFRecords), '
                     'or pass --fake_data')
  ceb.check_loss_and_rho(f.loss, f.rho)
  resnet_model.check_depth_and_width(f.resnet_depth, f.width_multiplier)
  resnet_preprocessing.check_augment_name(f.augment_name)
  for name in ('train_steps', 'train_batch_size', 'eval_batch_size', 'num_train_images',
               'num_eval_images', 'steps_per_eval', 'iterations_per_loop',
               'num_label_classes'):
    train_utils.require_positive(name, getattr(f, name))
  if f.image_size < MIN_IMAGE_SIZE:
    raise ValueError('--image_size=%d must be at least %d' % (f.image_size, MIN_IMAGE_SIZE))
  if f.anneal_rho < 0:
    raise ValueError('--anneal_rho=%d must be >= 0 (0 disables the jump-start)'
                     % f.anneal_rho)
  if not (math.isfinite(f.base_learning_rate) and f.base_learning_rate > 0):
    raise ValueError('--base_learning_rate=%r must be a positive number'
                     % f.base_learning_rate)
  _finite('momentum', f.momentum, 0.0, 1.0, high_open=True)
  _finite('weight_decay', f.weight_decay, 0.0)
  _finite('warmup_epochs', f.warmup_epochs, 0.0, LR_SCHEDULE[1][1])
  _finite('label_smoothing', f.label_smoothing, 0.0, 1.0, high_open=True)
  if f.cceb_prior != 'uniform':
    raise ValueError('--cceb_prior=%s: the ImageNet trainer does not know its training '
                     "set's label counts (counting them is a pass over every train-* "
                     'record); only uniform is offered here (ImageNet-1k holds 732 to '
                     '1300 training images per class)' % f.cceb_prior)
  if f.label_smoothing > 0 and f.loss != 'xent':
    raise ValueError('--label_smoothing applies only to --loss=xent')
  if f.use_tpu and not f.tpu:
    raise ValueError('--use_tpu needs --tpu')
  if f.num_gpus < 0 or (f.num_gpus > 1 and f.use_tpu):
    raise ValueError('--num_gpus=%d must be >= 0 and cannot go with --use_tpu'
                     % f.num_gpus)
  resolve_precision(f)


def params_from_flags(f):
  """The params dict every model_fn and input_fn call receives (and params.json)."""
  return {
      'trainer': 'resnet_ceb', 'dataset': 'imagenet',
      'resnet_depth': f.resnet_depth, 'width_multiplier': f.width_multiplier,
      'num_classes': f.num_label_classes, 'image_size': f.image_size,
      'data_format': f.data_format, 'precision': resolve_precision(f),
      'loss': f.loss, 'rho': float(f.rho), 'anneal_rho': f.anneal_rho,
      'cceb_prior': f.cceb_prior,
      'augment_name': f.augment_name, 'label_smoothing': f.label_smoothing,
      'base_learning_rate': f.base_learning_rate, 'momentum': f.momentum,
      'weight_decay': f.weight_decay, 'warmup_epochs': f.warmup_epochs,
      'train_batch_size': f.train_batch_size,
      'train_steps': f.train_steps, 'num_train_images': f.num_train_images,
      'iterations_per_loop': f.iterations_per_loop, 'use_tpu': f.use_tpu,
      'model_dir': f.model_dir,
      'data_dir': os.path.abspath(f.data_dir) if f.data_dir else None,
      'fake_data': f.fake_data, 'deterministic': f.deterministic, 'seed': f.seed,
  }


# Identity keys newer than some model_dirs: what a params.json without one means.
ABSENT_IDENTITY = {'warmup_epochs': LR_SCHEDULE[0][1], 'cceb_prior': 'uniform'}


def run_identity(params):
  """The params that make a model_dir this run's and no other's."""
  keys = ('trainer', 'resnet_depth', 'width_multiplier', 'num_classes',
          'image_size', 'loss', 'anneal_rho', 'augment_name', 'train_batch_size',
          'warmup_epochs')
  identity = {k: params[k] for k in keys}
  if params['loss'] != 'xent':
    identity['rho'] = params['rho']
  if params['loss'] == 'cceb':
    identity['cceb_prior'] = params.get('cceb_prior', 'uniform')
  return identity


def _build_train_variables(params):
  """Builds the training graph's variables (float32), to compare with a checkpoint."""
  def build():
    size = params['image_size']
    features = tf1.placeholder(tf.float32, [None, size, size, 3])
    labels = tf1.placeholder(tf.int32, [None])
    resnet_model_fn(features, labels, tf.estimator.ModeKeys.TRAIN,
                    dict(params, precision='float32', use_tpu=False,
                         data_format='channels_last'))
  return build


def make_inputs(f, cluster=distribute.Cluster()):
  """The train and eval ImageNetInputs (this worker's seed); checks that the files exist."""
  data_dir = None if f.fake_data else f.data_dir
  common = dict(image_size=f.image_size, use_bfloat16=resolve_precision(f) == 'bfloat16',
                fake_data=f.fake_data, num_classes=f.num_label_classes,
                seed=distribute.worker_seed(f.seed if f.deterministic else None, cluster))
  train = evaluate = None
  if f.mode != 'eval':
    train = imagenet_input.ImageNetInput(True, data_dir, augment_name=f.augment_name,
                                         cache=f.use_cache, **common)
  if f.mode != 'train':
    evaluate = imagenet_input.ImageNetInput(False, data_dir,
                                            num_examples=f.num_eval_images, **common)
  return train, evaluate


latest_step = train_utils.latest_step


def _evaluate(estimator, eval_input, f):
  """One pass over the eval set; partial last batch kept off TPU."""
  steps = (f.num_eval_images // f.eval_batch_size if f.use_tpu
           else -(-f.num_eval_images // f.eval_batch_size))
  metrics = estimator.evaluate(eval_input.input_fn, steps=max(steps, 1))
  logging.info('eval at step %d: %s', metrics['global_step'],
               ', '.join('%s=%.4f' % (k, v) for k, v in sorted(metrics.items())))
  return metrics


def _train_to(estimator, train_input, f, max_steps):
  """Trains to max_steps; the input starts at the restored step (exact resume if seeded)."""
  input_fn = functools.partial(train_input.input_fn,
                               start_step=latest_step(f.model_dir))
  estimator.train(input_fn, max_steps=max_steps)


def _train(estimator, train_input, eval_input, f, chief=True):
  """Trains to --train_steps; in train_and_eval the chief evaluates every --steps_per_eval."""
  if f.mode == 'train':
    _train_to(estimator, train_input, f, f.train_steps)
    return None
  metrics = None
  current = latest_step(f.model_dir)
  while current < f.train_steps:
    current = min(current + f.steps_per_eval, f.train_steps)
    _train_to(estimator, train_input, f, current)
    if chief:
      metrics = _evaluate(estimator, eval_input, f)
  return metrics


def _export(estimator, f):
  """Exports a SavedModel taking JPEG bytes or float pixels."""
  serving = (imagenet_input.image_serving_input_fn if f.serving_input == 'jpeg'
             else imagenet_input.pixel_serving_input_fn)
  path = estimator.export_saved_model(
      f.export_dir, functools.partial(serving, f.image_size))
  logging.info('exported a SavedModel to %s', path)
  return path


def run(f, devices=None):
  """Validates the flags, then trains and/or evaluates; returns the last eval metrics.

  `devices` mirrors training over those devices (tests: two virtual CPUs)
  instead of what --num_gpus selects.

  Raises:
    ValueError, FileNotFoundError: a flag or the data is unusable (nothing
      written to --model_dir), or reading the data failed.
    train_utils.ModelDirError: --model_dir belongs to another run.
    train_utils.NonFiniteLossError: training diverged.
    distribute.PeerLostError: the cluster in TF_CONFIG lost a task.
  """
  validate_flags(f)
  cluster = distribute.cluster_for_flags(f, devices)
  train_utils.check_xla(f.xla, f.num_gpus, cluster, devices)
  train_input, eval_input = make_inputs(f, cluster)
  params = params_from_flags(f)
  identity = run_identity(params)
  train_utils.check_model_dir(f.model_dir, identity, _build_train_variables(params),
                              ABSENT_IDENTITY)
  if f.mode == 'eval' and not latest_step(f.model_dir):
    raise FileNotFoundError('--mode=eval: --model_dir=%s holds no checkpoint'
                            % f.model_dir)
  if f.deterministic:
    train_utils.enable_determinism(f.seed)
  train_utils.log_precision_change(f.model_dir, params['precision'])
  if f.mode != 'eval' and cluster.is_chief:
    os.makedirs(f.model_dir, exist_ok=True)
    train_utils.write_params(f.model_dir, identity, params)
  estimator = train_utils.make_estimator(
      resnet_model_fn, f.model_dir, params, use_tpu=f.use_tpu, tpu=f.tpu,
      num_gpus=f.num_gpus, train_batch_size=f.train_batch_size,
      eval_batch_size=f.eval_batch_size,
      save_checkpoints_steps=max(MIN_CHECKPOINT_STEPS, f.iterations_per_loop),
      iterations_per_loop=f.iterations_per_loop,
      tf_random_seed=f.seed if f.deterministic else None, devices=devices,
      cluster=cluster, worker_timeout_secs=f.worker_timeout_secs, xla=f.xla)
  with imagenet_input.reading_errors(f.data_dir):
    if f.mode == 'eval':
      return _evaluate(estimator, eval_input, f)
    metrics = _train(estimator, train_input, eval_input, f, chief=cluster.is_chief)
  if f.export_dir and cluster.is_chief:
    _export(estimator, f)
  return metrics


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
