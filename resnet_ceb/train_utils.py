"""Pieces both trainers share: the Estimator, model_dir checks and training hooks.

The TPU ResNet reference always builds a `TPUClusterResolver`, which fails off TPU.
Here the resolver is built only with `use_tpu=True`; otherwise the same
`TPUEstimator` runs on the CPU (or one GPU) with `use_tpu=False`, and with several
GPUs a plain Estimator runs the model_fn under `MirroredStrategy`.

`MirroredStrategy` built eagerly picks collective all-reduce (RING on CPUs),
whose collective ops deadlock inside an Estimator's graph session once the
inter-op thread pool is small (2 cores: training hung after model.ckpt-0).
TensorFlow itself falls back to `ReductionToOneDevice` in graph mode, but
only for strategies created there, so `make_mirrored_strategy` chooses the
graph-mode all-reduce explicitly.

With a cluster in TF_CONFIG, `make_estimator` hands over to
`resnet_ceb.distribute` (synchronous multi-worker training).
"""
import os
import time

from absl import logging
import numpy as np
import tensorflow as tf

from resnet_ceb import distribute
from resnet_ceb import fileio
from resnet_ceb import precision as precision_lib

tf1 = tf.compat.v1

PARAMS_FILE = 'params.json'
# params.json's one key for the class count; the old ImageNet one still loads.
NUM_CLASSES_KEY = 'num_classes'
LEGACY_NUM_CLASSES_KEY = 'num_label_classes'


class ModelDirError(ValueError):
  """The model_dir belongs to another run (architecture or objective)."""


class NonFiniteLossError(RuntimeError):
  """Training produced a NaN or infinite loss."""


def make_estimator(model_fn, model_dir, params, *, use_tpu=False, tpu=None,
                   num_gpus=0, train_batch_size, eval_batch_size,
                   save_checkpoints_steps, iterations_per_loop=100,
                   keep_checkpoint_max=5, tf_random_seed=None, devices=None,
                   cluster=None, worker_timeout_secs=distribute.DEFAULT_TIMEOUT_SECS,
                   xla=False):
  """Builds the Estimator that runs `model_fn` where the flags say.

  Args:
    model_fn: a TPUEstimator model_fn returning `TPUEstimatorSpec`.
    model_dir: checkpoint and summary directory.
    params: dict passed to model_fn and input_fn.
    use_tpu: run on a Cloud TPU named by `tpu`.
    tpu: TPU name or address, used only when `use_tpu`.
    num_gpus: more than 1 mirrors the model over that many GPUs.
    train_batch_size: global training batch.
    eval_batch_size: evaluation and prediction batch.
    save_checkpoints_steps: checkpoint period in steps.
    iterations_per_loop: TPU steps per host loop.
    keep_checkpoint_max: checkpoints kept.
    tf_random_seed: graph-level seed (for `--deterministic`).
    devices: the devices to mirror over instead of `num_gpus` GPUs (tests
      use two virtual CPUs).
    cluster: this task's `distribute.Cluster`, if TF_CONFIG names one.
    worker_timeout_secs: with a cluster, how long a task waits for its peers.
    xla: XLA auto-clustering of the graph (--xla); one machine, one device.

  Returns:
    A `TPUEstimator`; with `num_gpus > 1` or `devices`, an `Estimator`; with a
    cluster, a `distribute.ClusterEstimator`.
  """
  check_xla(xla, num_gpus, cluster, devices)
  if cluster is not None and cluster.distributed:
    return distribute.make_estimator(
        _estimator_model_fn(model_fn), model_dir, params, cluster,
        train_batch_size=train_batch_size, eval_batch_size=eval_batch_size,
        save_checkpoints_steps=save_checkpoints_steps,
        keep_checkpoint_max=keep_checkpoint_max, tf_random_seed=tf_random_seed,
        timeout_secs=worker_timeout_secs)
  if num_gpus > 1 and not devices:
    devices = ['/gpu:%d' % i for i in range(num_gpus)]
  if devices:
    strategy = make_mirrored_strategy(devices)
    return make_mirrored_estimator(model_fn, model_dir, params, strategy,
                                   train_batch_size=train_batch_size,
                                   save_checkpoints_steps=save_checkpoints_steps,
                                   keep_checkpoint_max=keep_checkpoint_max,
                                   tf_random_seed=tf_random_seed)
  resolver = None
  if use_tpu:
    resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu)
  config = tf1.estimator.tpu.RunConfig(
      cluster=resolver, model_dir=model_dir,
      session_config=xla_session_config() if xla else None,
      save_checkpoints_steps=save_checkpoints_steps,
      keep_checkpoint_max=keep_checkpoint_max, tf_random_seed=tf_random_seed,
      log_step_count_steps=iterations_per_loop,
      tpu_config=tf1.estimator.tpu.TPUConfig(
          iterations_per_loop=iterations_per_loop,
          per_host_input_for_training=tf1.estimator.tpu.InputPipelineConfig.PER_HOST_V2))
  return tf1.estimator.tpu.TPUEstimator(
      use_tpu=use_tpu, model_fn=model_fn, config=config, params=dict(params),
      train_batch_size=train_batch_size, eval_batch_size=eval_batch_size,
      predict_batch_size=eval_batch_size, export_to_tpu=False)


def check_xla(xla, num_gpus, cluster=None, devices=None):
  """Raises ValueError naming --xla unless it runs on one device of one machine."""
  if xla and ((cluster is not None and cluster.distributed) or devices or num_gpus > 1):
    raise ValueError('--xla is for one device on one machine, not with TF_CONFIG or '
                     '--num_gpus > 1')


def xla_session_config():
  """Session options that let XLA auto-cluster the graph (--xla).

  On CPU, TF 2.15 forms clusters only with TF_XLA_FLAGS=--tf_xla_cpu_global_jit
  as well, which it reads at the process's first session run: it is set here,
  before the Estimator runs one (benchmarks/xla.py checks that clusters form).
  """
  xla_flags = os.environ.get('TF_XLA_FLAGS', '')
  if '--tf_xla_cpu_global_jit' not in xla_flags.split():
    os.environ['TF_XLA_FLAGS'] = (xla_flags + ' --tf_xla_cpu_global_jit').strip()
  config = tf1.ConfigProto(allow_soft_placement=True)
  config.graph_options.optimizer_options.global_jit_level = tf1.OptimizerOptions.ON_1
  return config


def make_mirrored_strategy(devices):
  """MirroredStrategy over `devices` with an all-reduce that works in a graph session.

  NCCL for GPUs only; otherwise (CPUs, mixed) reduction to one device. The
  eager default, RING collectives, hangs under an Estimator on CPUs.
  """
  if all('gpu' in d.lower() for d in devices):
    cross_device_ops = tf.distribute.NcclAllReduce()
  else:
    cross_device_ops = tf.distribute.ReductionToOneDevice()
  return tf.distribute.MirroredStrategy(devices, cross_device_ops=cross_device_ops)


def make_mirrored_estimator(model_fn, model_dir, params, strategy, *,
                            train_batch_size, save_checkpoints_steps,
                            keep_checkpoint_max=5, tf_random_seed=None):
  """An Estimator running the TPUEstimator-style `model_fn` under `strategy`.

  The Estimator calls the input_fn once per replica, so its
  `params['batch_size']` is the replica's share of the global
  `train_batch_size`: one step still trains on `train_batch_size` examples.

  Raises:
    ValueError: the global batch does not split evenly over the replicas.
  """
  replicas = strategy.num_replicas_in_sync
  if train_batch_size % replicas:
    raise ValueError('--train_batch_size=%d does not split evenly over %d devices '
                     '(--num_gpus); use a multiple of %d'
                     % (train_batch_size, replicas, replicas))
  config = tf1.estimator.RunConfig(
      model_dir=model_dir, train_distribute=strategy, eval_distribute=strategy,
      save_checkpoints_steps=save_checkpoints_steps,
      keep_checkpoint_max=keep_checkpoint_max, tf_random_seed=tf_random_seed)
  return tf1.estimator.Estimator(
      model_fn=_estimator_model_fn(model_fn), config=config,
      params=dict(params, batch_size=train_batch_size // replicas))


def _estimator_model_fn(model_fn):
  """The Estimator model_fn of a TPUEstimator one (its spec converted)."""
  def estimator_model_fn(features, labels, mode, params):
    return model_fn(features, labels, mode, params).as_estimator_spec()

  return estimator_model_fn


def check_model_dir(model_dir, identity, build_variables, absent=None):
  """Refuses a model_dir that belongs to another run, before anything is written.

  Args:
    model_dir: the `--model_dir` flag.
    identity: dict of the flags that define the run (architecture, objective).
      It must equal what `params.json` in model_dir recorded, if anything.
    build_variables: callable building the model in the current graph; used
      to compare variable shapes against an existing checkpoint.
    absent: dict of identity keys newer than some model_dirs, each mapped to
      the value a params.json without it means (the behaviour before the
      flag), so such a model_dir still resumes.

  Raises:
    ModelDirError: naming the file and the first difference found.
  """
  params_path = os.path.join(model_dir, PARAMS_FILE)
  recorded = recorded_identity(model_dir)
  if recorded is not None:
    for key, value in (absent or {}).items():
      if key in identity:
        recorded.setdefault(key, value)
    for key in sorted(set(recorded) | set(identity)):
      if recorded.get(key) != identity.get(key):
        raise ModelDirError(
            '--model_dir=%s belongs to another run: %s records %s=%r, the flags '
            'give %r. Use a new --model_dir.' % (
                model_dir, params_path, key, recorded.get(key), identity.get(key)))
  checkpoint = tf1.train.latest_checkpoint(model_dir) if os.path.isdir(model_dir) else None
  if checkpoint:
    check_checkpoint_shapes(model_dir, checkpoint, build_variables)


def check_checkpoint_shapes(model_dir, checkpoint, build_variables):
  """Compares the model's variables with a checkpoint's, by name and shape."""
  saved = dict(tf1.train.list_variables(checkpoint))
  with tf.Graph().as_default():
    # Only shapes matter; a graph seed keeps op determinism, if on, satisfied.
    tf1.set_random_seed(0)
    build_variables()
    for var in tf1.global_variables():
      name = var.op.name
      shape = var.shape.as_list()
      if name not in saved or list(saved[name]) != shape:
        raise ModelDirError(
            '--model_dir=%s holds a checkpoint of another architecture (%s): '
            'variable %s is %s there and %s in this model. Use a new --model_dir.'
            % (model_dir, checkpoint, name,
               saved.get(name, 'missing'), shape))


def weight_decay_loss(weight_decay):
  """The TPU reference's L2 weight decay, shared by both trainers.

  weight_decay * sum(||v||^2 / 2) over every trainable variable whose name
  does not contain 'batch_normalization' (the BN-free WRN has none).
  """
  return weight_decay * tf.add_n([
      tf.nn.l2_loss(v) for v in tf1.trainable_variables()
      if 'batch_normalization' not in v.name])


def latest_step(model_dir):
  """The global step of model_dir's latest checkpoint, 0 if there is none."""
  checkpoint = tf1.train.latest_checkpoint(model_dir) if os.path.isdir(model_dir) else None
  return int(tf1.train.load_variable(checkpoint, 'global_step')) if checkpoint else 0


def write_params(model_dir, identity, params):
  """Records the run's identity and full params in model_dir/params.json."""
  fileio.atomic_write_json(os.path.join(model_dir, PARAMS_FILE),
                           {'identity': identity, 'params': params})


def log_precision_change(model_dir, precision):
  """Logs when model_dir's recorded run trained in another precision than `precision`.

  Resuming in another precision is allowed: variables and checkpoints are
  float32 either way (resnet_ceb/precision.py). params.json then records the
  new one.

  Returns:
    The precision params.json recorded (float32 if it predates the key), or
    None for a model_dir without params.json.
  """
  if not os.path.exists(os.path.join(model_dir, PARAMS_FILE)):
    return None
  before = precision_lib.recorded(read_params(model_dir))
  if before != precision:
    logging.warning('--model_dir=%s trained in %s so far; resuming in --precision=%s '
                    '(its float32 checkpoints load either way)', model_dir, before, precision)
  return before


def recorded_identity(model_dir):
  """The run identity model_dir's params.json records, under today's keys; None without one."""
  path = os.path.join(model_dir, PARAMS_FILE)
  if not os.path.exists(path):
    return None
  return _current_keys(fileio.read_json(path).get('identity', {}))


def read_params(model_dir):
  """Reads the params a trainer recorded in model_dir, or raises naming the file."""
  path = os.path.join(model_dir, PARAMS_FILE)
  if not os.path.exists(path):
    raise FileNotFoundError(
        '%s not found: --model_dir must be a directory a trainer of this '
        'project wrote' % path)
  return _current_keys(fileio.read_json(path)['params'])


def _current_keys(recorded):
  """A recorded params or identity dict under today's keys.

  Model_dirs of the ImageNet trainer before the key was shared say
  `num_label_classes` (the reference's flag name); one key from here on.
  """
  recorded = dict(recorded)
  if LEGACY_NUM_CLASSES_KEY in recorded:
    recorded.setdefault(NUM_CLASSES_KEY, recorded.pop(LEGACY_NUM_CLASSES_KEY))
  return recorded


def num_classes(params):
  """The class count a params dict records (params.json's `num_classes`)."""
  return params.get(NUM_CLASSES_KEY)


def require_positive(name, value):
  """Raises ValueError naming the flag --name unless value is a positive integer."""
  if value is None or value <= 0:
    raise ValueError('--%s=%r must be a positive integer' % (name, value))


def enable_determinism(seed):
  """TF op determinism plus seeds for TF, NumPy and Python's `random`.

  Unseeded Keras initializers (e.g. the b(z|y) dense layer's) draw their seeds
  from Python's `random`, so it is seeded too.
  """
  tf.config.experimental.enable_op_determinism()
  tf.keras.utils.set_random_seed(seed)


def setup_logging():
  """INFO logs once each: TensorFlow's own handler would repeat absl's lines."""
  tf.get_logger().handlers = []
  tf1.logging.set_verbosity(tf1.logging.INFO)


class ProgressHook(tf1.train.SessionRunHook):
  """Logs steps/sec, examples/sec and the ETA every `every_n_steps` steps."""

  def __init__(self, batch_size, max_steps, every_n_steps=100, extra=None):
    self._batch_size = batch_size
    self._max_steps = max_steps
    self._every = every_n_steps
    self._extra = extra or {}
    self._last = None

  def begin(self):
    """Finds the global step in the graph."""
    self._step = tf1.train.get_global_step()

  def before_run(self, run_context):
    """Fetches the step and the extra scalars with every training step."""
    return tf1.train.SessionRunArgs(dict(self._extra, step=self._step))

  def after_run(self, run_context, run_values):
    """Logs the rates and scalars once every_n_steps steps have passed."""
    values = run_values.results
    step, now = int(values['step']) + 1, time.time()
    if self._last is None:
      self._last = (step, now)
      return
    last_step, last_time = self._last
    if step - last_step < self._every:
      return
    steps_per_sec = (step - last_step) / max(now - last_time, 1e-9)
    eta = (self._max_steps - step) / max(steps_per_sec, 1e-9)
    extra = ' '.join('%s=%.4g' % (k, values[k]) for k in sorted(self._extra))
    tf1.logging.info(
        'step %d/%d: %.2f steps/sec, %.1f examples/sec, ETA %s %s', step,
        self._max_steps, steps_per_sec, steps_per_sec * self._batch_size,
        _format_seconds(eta), extra)
    self._last = (step, now)


def _format_seconds(seconds):
  minutes, seconds = divmod(int(seconds), 60)
  hours, minutes = divmod(minutes, 60)
  return '%dh%02dm%02ds' % (hours, minutes, seconds)


def nan_as_inf(loss):
  """The loss to give the Estimator when NonFiniteLossHook watches the raw one.

  The Estimator puts its own NanTensorHook before a model_fn's training hooks;
  at a NaN loss it stops training with a bare "NaN loss during training". Shown
  +inf in place of NaN, the step reaches NonFiniteLossHook, which names the
  step and the terms.
  """
  return tf.where(tf.math.is_nan(loss), tf.constant(np.inf, loss.dtype), loss)


class NonFiniteLossHook(tf1.train.SessionRunHook):
  """Stops training at the first non-finite loss, naming the step and the terms.

  Raising inside `after_run` skips the end-of-training checkpoint, so the
  last checkpoint on disk stays the last finite one.
  """

  def __init__(self, terms):
    """`terms` maps names ('loss', 'hyz', 'rex', ...) to scalar tensors; needs 'loss'."""
    self._terms = terms

  def begin(self):
    """Finds the global step in the graph."""
    self._step = tf1.train.get_global_step()

  def before_run(self, run_context):
    """Fetches the loss terms and the step with every training step."""
    return tf1.train.SessionRunArgs(dict(self._terms, _step=self._step))

  def after_run(self, run_context, run_values):
    """Raises NonFiniteLossError if this step's loss is NaN or infinite."""
    values = run_values.results
    if np.isfinite(values['loss']):
      return
    terms = ', '.join('%s=%s' % (k, values[k]) for k in sorted(self._terms))
    raise NonFiniteLossError(
        'training stopped: non-finite loss at step %d (%s); the last checkpoint '
        'in model_dir is from before it.' % (int(values['_step']) + 1, terms))
