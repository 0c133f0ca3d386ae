"""The accuracy-vs-epsilon sweep: PGD over a test set through the Estimator.

One result item per epsilon (`eps=8`) goes to a resumable
`eval.kit.results.ResultFile`, so re-running an interrupted sweep skips the
epsilons already done. Targeted attacks aim at seeded targets, uniform among
the wrong classes; they are streamed beside the examples in fixed-size chunks,
so a streamed data set and `random_target_labels` draw exactly the same
sequence, whatever its length. `--pgd_space` (eval.pgd.space) says where
epsilon and the step are measured; a normalized sweep is its own evaluation
(`pgd_linf_normalized`, ...), so the two readings never share a result file.
"""
import dataclasses
import time
from typing import Optional

import numpy as np
import tensorflow as tf

from eval import settings
from eval.attacks import threat_model
from eval.kit import cli
from eval.kit import runner
from eval.pgd import attack
from eval.pgd import space
from resnet_ceb import train_utils

_TARGET_CHUNK = 1024


# ---------------------------------------------------------------------------
# Targets.


def _target_offset_chunks(num_classes, seed):
  """Endless chunks of offsets in 1..num_classes-1 (label + offset is a wrong class)."""
  rng = np.random.RandomState(seed)
  while True:
    yield rng.randint(1, num_classes, size=_TARGET_CHUNK).astype(np.int32)


def _check_num_classes(num_classes):
  threat_model.require(threat_model.is_int(num_classes) and num_classes >= 2,
                       'a targeted attack needs at least 2 classes (num_classes=%r): there is '
                       'no wrong class to aim at' % (num_classes,))


def random_target_labels(labels, num_classes, seed):
  """Seeded attack targets, uniform among the wrong classes of each example.

  Args:
    labels: [N] int true labels in [0, num_classes).
    num_classes: number of classes, at least 2.
    seed: numpy seed; the same seed gives the same targets on every run.

  Returns:
    int32 [N] targets, target != label everywhere.
  """
  _check_num_classes(num_classes)
  threat_model.check_seed(seed)
  labels = np.asarray(labels, dtype=np.int64)
  threat_model.require(labels.ndim == 1, 'labels must be 1-D, got shape %s' % (labels.shape,))
  threat_model.require(not labels.size or (labels.min() >= 0 and labels.max() < num_classes),
                       'labels must lie in [0, %d)' % num_classes)
  chunks = _target_offset_chunks(num_classes, seed)
  needed = -(-len(labels) // _TARGET_CHUNK)
  offsets = np.concatenate([np.zeros(0, np.int32)]
                           + [next(chunks) for _ in range(needed)])[:len(labels)]
  return ((labels + offsets) % num_classes).astype(np.int32)


# ---------------------------------------------------------------------------
# The configuration.


@dataclasses.dataclass(frozen=True)
class PgdConfig:
  """How a sweep attacks: everything but the epsilons, which are its items.

  Field names are the command-line flags', and error messages name them so.
  """
  norm: str = 'linf'
  num_steps: int = settings.PGD_NUM_STEPS
  step_size: Optional[float] = None
  targeted: bool = False
  target_seed: int = 0
  random_start: bool = False
  seed: int = 0
  num_restarts: int = 1
  batch_size: int = 100
  pgd_space: str = 'pixels'

  def validate(self):
    """Raises ValueError naming the flag of the first bad field."""
    threat_model.check_norm(self.norm, '--norm')
    threat_model.check_num_steps(self.num_steps, '--num_steps')
    threat_model.check_step_size(self.step_size, '--step_size')
    threat_model.check_seed(self.target_seed, '--target_seed')
    threat_model.check_seed(self.seed, '--seed')
    threat_model.require(threat_model.is_int(self.num_restarts) and self.num_restarts >= 1,
                         '--num_restarts=%r must be an integer >= 1' % (self.num_restarts,))
    threat_model.require(self.num_restarts == 1 or self.random_start,
                         '--num_restarts=%d needs --random_start: without it every restart is '
                         'the same attack' % self.num_restarts)
    threat_model.require(threat_model.is_int(self.batch_size) and self.batch_size >= 1,
                         '--batch_size=%r must be an integer >= 1' % (self.batch_size,))
    space.check_space(self.pgd_space, '--pgd_space')

  @property
  def evaluation(self):
    """The result file's evaluation name: pgd_linf, pgd_l2[, _targeted][, _normalized]."""
    return 'pgd_%s%s%s' % (self.norm, '_targeted' if self.targeted else '',
                           '' if self.pgd_space == 'pixels' else '_' + self.pgd_space)

  def step_size_for(self, epsilon):
    """The step size used at `epsilon` (recorded in each result item)."""
    if self.step_size is not None:
      return float(self.step_size)
    return settings.pgd_step_size(epsilon, self.num_steps)

  def header_flags(self):
    """The fields that change results; unused seeds are left out."""
    flags = dataclasses.asdict(self)
    if not self.targeted:
      del flags['target_seed']
    if not self.random_start:
      del flags['seed']
    return flags


# ---------------------------------------------------------------------------
# One epsilon through the Estimator.


def _input_fn(examples_fn, config, num_classes):
  """Batches of feature dicts: image, label, index and (targeted) target."""
  def with_index(index, example):
    return {'image': example[0], 'label': example[1], 'index': index}

  def with_target(features, offset):
    return dict(features, target=(features['label'] + offset) % num_classes)

  def input_fn(params):
    del params
    dataset = examples_fn().enumerate().map(with_index)
    if config.targeted:
      offsets = tf.data.Dataset.from_generator(
          lambda: _target_offset_chunks(num_classes, config.target_seed),
          output_signature=tf.TensorSpec([None], tf.int32)).unbatch()
      dataset = tf.data.Dataset.zip((dataset, offsets)).map(with_target)
    return dataset.batch(config.batch_size).prefetch(1)

  return input_fn


def _predict_fn(epsilon, config, channel_scale):
  """The Estimator predict_fn: clean and worst-case adversarial outcomes per example."""
  def predict_fn(logits_fn, features):
    images, labels = features['image'], features['label']
    clean = tf.argmax(logits_fn(images), axis=-1, output_type=tf.int32)
    # Each batch gets its own stateless seed, so results do not depend on how
    # many batches ran before in this process.
    batch_seed = tf.random.experimental.stateless_fold_in(
        tf.constant([config.seed, 0], tf.int64), features['index'][0])
    outcome = attack.pgd_worst_case(
        logits_fn, images, labels, num_restarts=config.num_restarts,
        seed=batch_seed, target_labels=features.get('target'),
        random_start=config.random_start, norm=config.norm, epsilon=epsilon,
        num_steps=config.num_steps, step_size=config.step_size,
        channel_scale=channel_scale)
    return dict(outcome, clean_correct=tf.equal(clean, labels))

  return predict_fn


def model_num_classes(model, config):
  """The model's class count (params.json), checked when the attack is targeted."""
  num_classes = train_utils.num_classes(model.params)
  if config.targeted:
    try:
      _check_num_classes(num_classes)
    except ValueError as e:
      raise ValueError('--targeted: %s/params.json: %s' % (model.model_dir, e)) from e
  return num_classes


def evaluate_epsilon(model, examples_fn, epsilon, config):
  """Attacks every example at one epsilon through `runner.predict`.

  Returns:
    The result item: epsilon, step size, counts, accuracy on the true labels,
    clean accuracy and, when targeted, the target hit rate.
  """
  threat_model.check_epsilon(epsilon, '--epsilons')
  num_classes = model_num_classes(model, config)
  channel_scale = space.channel_scale(config.pgd_space, model.params)
  outputs = runner.predict(model, _input_fn(examples_fn, config, num_classes),
                           _predict_fn(epsilon, config, channel_scale))
  threat_model.require(outputs, 'no examples to evaluate')
  count = len(outputs['correct'])
  item = {'epsilon': float(epsilon), 'step_size': config.step_size_for(epsilon),
          'num_examples': count}
  for name, key in (('correct', 'accuracy'), ('clean_correct', 'clean_accuracy'),
                    ('hit', 'target_hit_rate')):
    if name in outputs:
      hits = int(np.sum(outputs[name]))
      item['num_' + name] = hits
      item[key] = hits / count
  return item


# ---------------------------------------------------------------------------
# The sweep.


def summarize(items):
  """The sweep's summary: the curve sorted by epsilon and the clean accuracy."""
  ordered = sorted(items.values(), key=lambda item: item['epsilon'])
  summary = {'epsilons': [item['epsilon'] for item in ordered],
             'accuracy': [item['accuracy'] for item in ordered],
             'clean_accuracy': ordered[0]['clean_accuracy'] if ordered else None}
  if ordered and 'target_hit_rate' in ordered[0]:
    summary['target_hit_rate'] = [item['target_hit_rate'] for item in ordered]
  return summary


def evaluate_pgd(model, examples_fn, epsilons, config, result_file=None):
  """Sweeps the epsilons, skipping those `result_file` already holds.

  Args:
    model: a `runner.LoadedModel`.
    examples_fn: returns an unbatched tf.data.Dataset of (float image, int32
      label), e.g. from `eval.attacks.examples.load_examples`.
    epsilons: the radii to attack at, in the units of config.pgd_space.
    config: a `PgdConfig`.
    result_file: an `eval.kit.results.ResultFile` to resume and fill in, or None.

  Returns:
    The summary (see `summarize`); epsilon 0 reproduces the clean accuracy exactly.
  """
  config.validate()
  space.channel_scale(config.pgd_space, model.params)  # Refuses before any attack.
  items = {} if result_file is None else result_file.items
  for epsilon in epsilons:
    key = cli.epsilon_key(epsilon)
    if key in items:
      continue
    began = time.time()
    item = evaluate_epsilon(model, examples_fn, epsilon, config)
    if result_file is None:
      items[key] = item
    else:
      result_file.add(key, item)
    print('%s: accuracy %.4f (%.1f s)' % (key, item['accuracy'], time.time() - began),
          flush=True)
  summary = summarize(items)
  if result_file is not None:
    result_file.finish(summary)
  return summary
