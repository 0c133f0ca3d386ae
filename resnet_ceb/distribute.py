"""Synchronous training across machines, on TensorFlow's own multi-worker path.

Every task of a cluster runs the same trainer command with its own `TF_CONFIG`,
in the form of TensorFlow's multi-worker guide:

    {"cluster": {"worker": ["host0:2222", "host1:2222"]},
     "task": {"type": "worker", "index": 1}}

(worker 0 is the chief), or with a separate `chief` job:
`{"cluster": {"chief": ["host0:2222"], "worker": ["host1:2222"]}, ...}`.
Without a cluster in `TF_CONFIG` the trainers run on one machine as before.

On a cluster each task trains under `MultiWorkerMirroredStrategy`: every step
all-reduces the gradients of all workers (collective ops), so the workers stay
in lockstep on the same weights. What TensorFlow 2.15 requires, and why the
code below looks the way it does:

* `Estimator.train` refuses a cluster; `train_and_evaluate` is the supported
  path (its distribute coordinator starts this task's server and trains).
* Eager execution is turned off before the strategy is built, as TensorFlow's
  multi-worker Estimator tutorial does. (Built inside a `tf.Graph` instead,
  the strategy fails when the Estimator deep-copies it: "unknown device".)
* The chief checkpoints and writes summaries into model_dir; TensorFlow has
  every other worker save into model_dir/tmp_worker_<index> instead.
* Graph-mode collectives wait forever for a missing peer. The session's
  operation timeout (--worker_timeout_secs) turns that wait into an error,
  reported as `PeerLostError`: a task never trains alone. A peer that dies
  mid-run makes the next step fail with UnavailableError instead, which
  MonitoredSession takes for a preemption: it recreates the session, whose
  collectives fail again at once, forever. `_OneSessionHook` stops that loop.
* Each replica's input_fn batch is --train_batch_size / replicas; the Estimator
  scales each replica's loss by 1 / replicas and the all-reduce sums, so the
  update is the mean gradient of the global batch, as on one machine.
"""
import dataclasses
import json
import os
import time
from typing import Optional, Tuple

from absl import flags
import tensorflow as tf

tf1 = tf.compat.v1

TF_CONFIG = 'TF_CONFIG'
CHIEF = 'chief'
WORKER = 'worker'
DEFAULT_TIMEOUT_SECS = 1800
_POLL_SECS = 1.0
_FORM = ('the form is {"cluster": {"worker": ["host:port", ...]}, '
         '"task": {"type": "worker", "index": i}}, optionally with a "chief" job')


class PeerLostError(RuntimeError):
  """A peer never joined the cluster within --worker_timeout_secs, or it stopped."""


def define_flags(flag_values):
  """Declares --worker_timeout_secs on `flag_values`."""
  flags.DEFINE_integer(
      'worker_timeout_secs', DEFAULT_TIMEOUT_SECS, 'With TF_CONFIG: how long a task '
      'waits for its peers (at start, at each step, and while the chief evaluates) '
      'before it fails.', flag_values=flag_values)


@dataclasses.dataclass(frozen=True)
class Cluster:
  """This process's place in the cluster TF_CONFIG names.

  Attributes:
    workers: the training tasks' addresses, chief first; empty on one machine.
    task_type: 'chief' or 'worker'; None on one machine.
    task_index: the index within task_type's job.
    worker_index: the index in `workers` (0 is the chief).
  """
  workers: Tuple[str, ...] = ()
  task_type: Optional[str] = None
  task_index: int = 0
  worker_index: int = 0

  @property
  def distributed(self):
    """Whether TF_CONFIG names a cluster (even of one task)."""
    return bool(self.workers)

  @property
  def num_workers(self):
    """Training tasks, 1 on one machine."""
    return max(len(self.workers), 1)

  @property
  def is_chief(self):
    """Whether this task writes checkpoints, summaries and params.json."""
    return self.worker_index == 0

  def describe(self):
    """'worker 1 (host:port) of 2', for messages."""
    if not self.distributed:
      return 'a single machine'
    return '%s %d (%s) of %d' % (self.task_type, self.task_index,
                                 self.workers[self.worker_index], self.num_workers)


def read_cluster(environ=None):
  """Reads and checks TF_CONFIG (default: os.environ's).

  Returns:
    The `Cluster`; `Cluster()` (one machine) when TF_CONFIG is unset or names
    no cluster.

  Raises:
    ValueError: naming TF_CONFIG and what is wrong with it.
  """
  text = (os.environ if environ is None else environ).get(TF_CONFIG, '').strip()
  if not text:
    return Cluster()
  try:
    config = json.loads(text)
  except ValueError as e:
    raise ValueError('TF_CONFIG is not JSON (%s); %s' % (e, _FORM)) from None
  if not isinstance(config, dict):
    raise ValueError('TF_CONFIG must be a JSON object; %s' % _FORM)
  jobs = _read_jobs(config.get('cluster'))
  if not jobs:
    # TensorFlow's own reading: without a cluster only worker 0 (or no task).
    if config.get('task', {}) not in ({}, {'type': WORKER, 'index': 0}):
      raise ValueError('TF_CONFIG names a task but no "cluster"; %s' % _FORM)
    return Cluster()
  task_type, task_index = _read_task(config.get('task'), jobs)
  chiefs = jobs.get(CHIEF, [])
  workers = tuple(chiefs) + tuple(jobs.get(WORKER, []))
  duplicates = sorted({a for a in workers if workers.count(a) > 1})
  if duplicates:
    raise ValueError('TF_CONFIG lists %s more than once' % ', '.join(duplicates))
  offset = len(chiefs) if task_type == WORKER else 0
  return Cluster(workers, task_type, task_index, offset + task_index)


def _read_jobs(cluster):
  """The cluster's jobs as {job: [address, ...]}, checked."""
  if not cluster:
    return {}
  if not isinstance(cluster, dict):
    raise ValueError('TF_CONFIG "cluster" must map job names to address lists; %s'
                     % _FORM)
  for job, addresses in cluster.items():
    if job not in (CHIEF, WORKER):
      raise ValueError(
          'TF_CONFIG names a %r job; these trainers train synchronously with '
          '"chief" and "worker" jobs only (no parameter servers or evaluator)' % job)
    if (not isinstance(addresses, list) or not addresses
        or not all(isinstance(a, str) and a.strip() for a in addresses)):
      raise ValueError('TF_CONFIG job %r must be a non-empty list of "host:port" '
                       'addresses, got %r' % (job, addresses))
  if len(cluster.get(CHIEF, [])) > 1:
    raise ValueError('TF_CONFIG names %d chief tasks; a cluster has at most one'
                     % len(cluster[CHIEF]))
  return cluster


def _read_task(task, jobs):
  """(type, index) of TF_CONFIG's task, checked against the cluster's jobs."""
  if not isinstance(task, dict) or 'type' not in task or 'index' not in task:
    raise ValueError('TF_CONFIG names no task (a "task" with "type" and "index"); %s'
                     % _FORM)
  task_type, index = task['type'], task['index']
  if task_type not in jobs:
    raise ValueError('TF_CONFIG task type %r is not a job of its cluster (%s)'
                     % (task_type, ', '.join(sorted(jobs))))
  if isinstance(index, str) and index.isdigit():
    index = int(index)
  if isinstance(index, bool) or not isinstance(index, int):
    raise ValueError('TF_CONFIG task index %r is not an integer' % (index,))
  if not 0 <= index < len(jobs[task_type]):
    raise ValueError('TF_CONFIG task index %d is outside the %r job, which has %d '
                     'task(s): 0..%d' % (index, task_type, len(jobs[task_type]),
                                         len(jobs[task_type]) - 1))
  return task_type, index


def replicas_per_worker():
  """The replicas MultiWorkerMirroredStrategy makes per task: its GPUs, else 1 CPU."""
  return len(tf.config.list_physical_devices('GPU')) or 1


def replica_batch_size(train_batch_size, cluster, replicas=None):
  """Each replica's share of the global --train_batch_size.

  Args:
    train_batch_size: the global batch (--train_batch_size).
    cluster: the `Cluster`.
    replicas: replicas in the whole cluster; default: workers x local devices.

  Raises:
    ValueError: the batch does not split evenly, naming the flag and TF_CONFIG.
  """
  replicas = replicas or cluster.num_workers * replicas_per_worker()
  if train_batch_size % replicas:
    raise ValueError(
        '--train_batch_size=%d does not split evenly over the %d replicas of the '
        'cluster in TF_CONFIG (%d workers); use a multiple of %d'
        % (train_batch_size, replicas, cluster.num_workers, replicas))
  return train_batch_size // replicas


def check_flags(cluster, *, mode, use_tpu, num_gpus, train_batch_size,
                worker_timeout_secs, devices=None):
  """Checks the flags that a cluster in TF_CONFIG constrains, before anything is written.

  Raises:
    ValueError: naming the flag (single-machine device flags, --mode=eval, a
      batch the replicas do not divide, a non-positive timeout).
  """
  if not cluster.distributed:
    return
  if worker_timeout_secs is None or worker_timeout_secs <= 0:
    raise ValueError('--worker_timeout_secs=%r must be a positive integer'
                     % worker_timeout_secs)
  if use_tpu:
    raise ValueError('--use_tpu runs on a Cloud TPU, not on the cluster in TF_CONFIG')
  if num_gpus > 1 or devices:
    raise ValueError('--num_gpus=%d mirrors over one machine; with a cluster in '
                     'TF_CONFIG every worker uses all the GPUs it sees (choose them '
                     'with CUDA_VISIBLE_DEVICES)' % num_gpus)
  if mode == 'eval':
    raise ValueError('--mode=eval runs on one machine: unset TF_CONFIG')
  replica_batch_size(train_batch_size, cluster)


def cluster_for_flags(f, devices=None):
  """Reads TF_CONFIG and checks it against a trainer's parsed flags `f`.

  Raises:
    ValueError: naming TF_CONFIG or the flag (see `read_cluster`, `check_flags`).
  """
  cluster = read_cluster()
  check_flags(cluster, mode=f.mode, use_tpu=f.use_tpu, num_gpus=f.num_gpus,
              train_batch_size=f.train_batch_size,
              worker_timeout_secs=f.worker_timeout_secs, devices=devices)
  return cluster


def replica_mean(value):
  """The mean of a per-replica scalar over all replicas (itself without a strategy).

  Training state derived from the batch (e.g. a running accuracy) then follows
  the global batch, identically on every worker, as on one machine.
  """
  if not tf.distribute.has_strategy():
    return value
  return tf.distribute.get_replica_context().all_reduce(
      tf.distribute.ReduceOp.MEAN, value)


def worker_seed(seed, cluster):
  """A seeded input stream's seed on this worker: each worker reads its own stream."""
  return None if seed is None else seed + cluster.worker_index


def make_estimator(model_fn, model_dir, params, cluster, *, train_batch_size,
                   eval_batch_size, save_checkpoints_steps, keep_checkpoint_max=5,
                   tf_random_seed=None, timeout_secs=DEFAULT_TIMEOUT_SECS):
  """A `ClusterEstimator` training `model_fn` on the cluster in TF_CONFIG.

  Args:
    model_fn: an Estimator model_fn (returning `EstimatorSpec`).
    model_dir: the shared model_dir (every task must see the chief's files).
    params: passed to model_fn and input_fn, with `batch_size` set to the
      per-replica training batch.
    cluster: this task's `Cluster`.
    train_batch_size: the global training batch.
    eval_batch_size: the batch of `ClusterEstimator.evaluate`.
    save_checkpoints_steps: the chief's checkpoint period in steps.
    keep_checkpoint_max: checkpoints kept.
    tf_random_seed: graph-level seed.
    timeout_secs: --worker_timeout_secs.
  """
  # Graph mode for the whole process, before the strategy exists (module docstring).
  tf1.disable_eager_execution()
  strategy = tf1.distribute.experimental.MultiWorkerMirroredStrategy()
  session_config = tf1.ConfigProto(
      allow_soft_placement=True, operation_timeout_in_ms=int(timeout_secs * 1000))
  config = tf1.estimator.RunConfig(
      model_dir=model_dir, train_distribute=strategy, session_config=session_config,
      save_checkpoints_steps=save_checkpoints_steps,
      keep_checkpoint_max=keep_checkpoint_max, tf_random_seed=tf_random_seed)
  batch = replica_batch_size(train_batch_size, cluster, strategy.num_replicas_in_sync)
  estimator = tf1.estimator.Estimator(
      model_fn=model_fn, config=config, params=dict(params, batch_size=batch))
  return ClusterEstimator(estimator, cluster, eval_batch_size, timeout_secs)


class ClusterEstimator:
  """Trains an Estimator on every task of a cluster; evaluates on one machine.

  `train` has all tasks train in lockstep. `evaluate` and `export_saved_model`
  run on this task alone, without the strategy: meant for the chief, between
  and after training calls (the other workers then wait at their next step).
  """

  def __init__(self, estimator, cluster, eval_batch_size, timeout_secs):
    self._estimator = estimator
    self._cluster = cluster
    self._eval_batch_size = eval_batch_size
    self._timeout_secs = timeout_secs

  @property
  def model_dir(self):
    """The shared model_dir."""
    return self._estimator.model_dir

  def train(self, input_fn, max_steps):
    """Trains all tasks to global step `max_steps`, resuming from model_dir.

    A worker other than the chief returns once the chief's checkpoint of
    `max_steps` is in model_dir, so that every task restores the same one next.

    Raises:
      PeerLostError: a peer stopped, or did not take part in a step or the
        chief's checkpoint did not come within the timeout.
    """
    restart = ("Restart every task with the same command to resume from the chief's "
               'last checkpoint.')
    lost = _OneSessionHook(
        '%s: a peer of the cluster in TF_CONFIG (%s) stopped answering. %s'
        % (self._cluster.describe(), ', '.join(self._cluster.workers), restart))
    train_spec = tf1.estimator.TrainSpec(input_fn, max_steps=max_steps, hooks=[lost])
    try:
      # No evaluator task: the EvalSpec is required but unused.
      tf1.estimator.train_and_evaluate(self._estimator, train_spec,
                                       tf1.estimator.EvalSpec(input_fn))
    except tf.errors.DeadlineExceededError:
      raise PeerLostError(
          '%s: waited more than --worker_timeout_secs=%d for the other tasks of the '
          'cluster in TF_CONFIG (%s); one never started or it stopped. %s'
          % (self._cluster.describe(), self._timeout_secs,
             ', '.join(self._cluster.workers), restart)) from None
    if not self._cluster.is_chief:
      self._wait_for_checkpoint(max_steps)

  def _wait_for_checkpoint(self, step):
    """Waits until model_dir's latest checkpoint is at `step` or later."""
    deadline = time.monotonic() + self._timeout_secs
    while _checkpoint_step(self.model_dir) < step:
      if time.monotonic() > deadline:
        raise PeerLostError(
            "%s: the chief's checkpoint of step %d did not appear in %s within "
            '--worker_timeout_secs=%d (every task must see the same model_dir)'
            % (self._cluster.describe(), step, self.model_dir, self._timeout_secs))
      time.sleep(_POLL_SECS)

  def evaluate(self, input_fn, steps=None, checkpoint_path=None, name=None):
    """Evaluates on this machine alone, in batches of the eval batch size."""
    def eval_input_fn(params):
      return input_fn(dict(params, batch_size=self._eval_batch_size))

    return self._estimator.evaluate(eval_input_fn, steps=steps,
                                    checkpoint_path=checkpoint_path, name=name)

  def export_saved_model(self, export_dir_base, serving_input_receiver_fn):
    """Exports the latest checkpoint as a SavedModel, on this machine alone."""
    return self._estimator.export_saved_model(export_dir_base, serving_input_receiver_fn)


class _OneSessionHook(tf1.train.SessionRunHook):
  """Fails a training call whose session TensorFlow recreates (a peer was lost).

  A fresh hook per `train` call: its first session is the normal one.
  """

  def __init__(self, message):
    self._message = message
    self._sessions = 0

  def after_create_session(self, session, coord):
    """Counts sessions; a second one means MonitoredSession is recovering."""
    del session, coord
    self._sessions += 1
    if self._sessions > 1:
      raise PeerLostError(self._message)


def _checkpoint_step(model_dir):
  """The step of model_dir's latest checkpoint (model.ckpt-<step>), or -1."""
  path = tf1.train.latest_checkpoint(model_dir)
  return int(path.rsplit('-', 1)[1]) if path else -1
