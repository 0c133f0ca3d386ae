"""PGD attacks in the graph and the accuracy-vs-epsilon sweep (sections 2.4, 3.2).

The attack works in pixel units [0, 255] (the models normalize inside) on the
eval-mode model (CEB: z = f(x), the encoder's mean). All steps run inside one
`tf.while_loop`, so a batch costs a single `session.run`:

* L-inf step: x <- clip[0,255](x0 + clip(x + a*sign(g) - x0, -eps, eps)).
* L2 step: x <- x + a*g/|g|_2; d <- d*min(1, eps/|d|_2); clip to [0, 255],
  with per-example norms and a guard for zero gradients.

g is the gradient of CE(true label) (untargeted: ascend) or of -CE(target)
(targeted: descend CE(target)); targets are uniform among the wrong classes and
seeded. The step size defaults to 4/3*eps/n. The paper names no random start,
so it is off by default; with it, `--num_restarts` keeps the worst case per
example (robust only if correct under every restart; a target counts as hit if
any restart hits it).

Command line (one run gives the whole accuracy-vs-epsilon curve)::

    python -m eval.pgd --model_dir DIR --data_dir /path/to/cifar10 \\
        --norm linf --epsilons 0,1,2,4,8,16,32

`--dataset=imagenet` reads the validation TFRecords through the ImageNet
trainer's `resnet_ceb.imagenet_input.ImageNetInput` (section 3.2: targeted,
eps 16, n 20, step 2: `--targeted --epsilons 16 --step_size 2`).

Results go to a resumable `eval.results.ResultFile` with one item per epsilon
(`eps=8`), so re-running an interrupted sweep skips the epsilons already done.
The header leaves the epsilons out: a later run with more epsilons extends the
same file, and its summary covers every epsilon the file holds.
"""
import argparse
import dataclasses
import importlib
import math
import numbers
import os
import sys
import time
from typing import Optional

import numpy as np
import tensorflow as tf

from eval import results
from eval import runner
from wrn_cifar import cifar_input

tf1 = tf.compat.v1

NORMS = ('linf', 'l2')
DATASETS = ('cifar10', 'imagenet')
# Keeps the per-example L2 normalizations finite when a norm is zero.
_TINY_NORM = 1e-12
# Target offsets are drawn in fixed-size chunks so that a streamed data set and
# `random_target_labels` draw exactly the same sequence, whatever its length.
_TARGET_CHUNK = 1024
_MAX_SEED = 2**32 - 1


# ---------------------------------------------------------------------------
# Argument checks, shared by the library functions and the command line.


def _require(condition, message):
  if not condition:
    raise ValueError(message)


def _is_finite_real(value):
  return (isinstance(value, numbers.Real) and not isinstance(value, bool)
          and math.isfinite(value))


def _is_int(value):
  return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def check_epsilon(value, name='epsilon'):
  """An attack radius: a finite real number >= 0 (0 reproduces clean accuracy)."""
  _require(_is_finite_real(value) and value >= 0,
           '%s=%r must be a finite number >= 0' % (name, value))


def check_num_steps(value, name='num_steps'):
  """A step count: an integer >= 1."""
  _require(_is_int(value) and value >= 1, '%s=%r must be an integer >= 1' % (name, value))


def check_step_size(value, name='step_size'):
  """A step size: None (the paper's default) or a finite number > 0."""
  _require(value is None or (_is_finite_real(value) and value > 0),
           '%s=%r must be a finite number > 0 (or None for 4/3*eps/n)' % (name, value))


def check_seed(value, name='seed'):
  """A seed numpy's RandomState accepts."""
  _require(_is_int(value) and 0 <= value <= _MAX_SEED,
           '%s=%r must be an integer in [0, 2**32 - 1]' % (name, value))


def default_step_size(epsilon, num_steps):
  """The paper's step size 4/3 * eps / n (section 2.4)."""
  return 4.0 / 3.0 * epsilon / num_steps


# ---------------------------------------------------------------------------
# The attack.


def _example_norm(values):
  """Per-example L2 norm over all but the batch axis, shaped to broadcast."""
  axes = list(range(1, values.shape.rank))
  return tf.sqrt(tf.reduce_sum(tf.square(values), axis=axes, keepdims=True))


def _ascent_direction(logits_fn, x, labels, target_labels):
  """Gradient of the attacker's objective: CE(label), or -CE(target) if targeted."""
  logits = tf.cast(logits_fn(x), tf.float32)
  if target_labels is None:
    objective = tf.reduce_sum(tf.nn.sparse_softmax_cross_entropy_with_logits(
        labels=labels, logits=logits))
  else:
    objective = -tf.reduce_sum(tf.nn.sparse_softmax_cross_entropy_with_logits(
        labels=target_labels, logits=logits))
  return tf.gradients(objective, x)[0]


@dataclasses.dataclass(frozen=True)
class _Attack:
  """One validated PGD configuration; builds start points, steps and the loop."""
  norm: str
  epsilon: float
  num_steps: int
  step_size: float
  clip_min: float
  clip_max: float

  def clip(self, x):
    return tf.clip_by_value(x, self.clip_min, self.clip_max)

  def random_start(self, x0, seed):
    """A uniform point of the L-inf cube or the L2 ball around x0, in pixel range."""
    shape = tf.shape(x0)
    if seed is None:
      seeds = (None, None)
      uniform, normal = tf.random.uniform, tf.random.normal
    else:
      seeds = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
      uniform, normal = tf.random.stateless_uniform, tf.random.stateless_normal
    if self.norm == 'linf':
      delta = uniform(shape, minval=-self.epsilon, maxval=self.epsilon,
                      dtype=x0.dtype, seed=seeds[0])
      return self.clip(x0 + delta)
    # Uniform in the ball: a uniform direction, radius eps * u^(1/dims).
    direction = normal(shape, dtype=x0.dtype, seed=seeds[0])
    direction /= tf.maximum(_example_norm(direction), _TINY_NORM)
    dims = tf.cast(tf.reduce_prod(shape[1:]), x0.dtype)
    u = uniform(tf.concat([shape[:1], tf.ones_like(shape[1:])], 0),
                dtype=x0.dtype, seed=seeds[1])
    return self.clip(x0 + direction * self.epsilon * u ** (1.0 / dims))

  def step(self, x, x0, g):
    """One ascent step along g followed by the projection onto the ball and range."""
    if self.norm == 'linf':
      delta = tf.clip_by_value(x + self.step_size * tf.sign(g) - x0,
                               -self.epsilon, self.epsilon)
      return self.clip(x0 + delta)
    x = x + self.step_size * g / tf.maximum(_example_norm(g), _TINY_NORM)
    delta = x - x0
    scale = tf.minimum(1.0, self.epsilon / tf.maximum(_example_norm(delta), _TINY_NORM))
    return self.clip(x0 + delta * scale)

  def run(self, logits_fn, x0, labels, target_labels, start):
    """All `num_steps` steps from `start` in one while_loop; variables must exist."""
    def body(i, x):
      g = _ascent_direction(logits_fn, x, labels, target_labels)
      return i + 1, self.step(x, x0, g)

    _, x_adv = tf.while_loop(lambda i, _: i < self.num_steps, body,
                             (tf.constant(0), start), parallel_iterations=1)
    return tf.stop_gradient(x_adv)


def _make_attack(norm, epsilon, num_steps, step_size, targeted, target_labels,
                 clip_min, clip_max):
  """Validates the attack arguments and returns an `_Attack`."""
  _require(not tf.executing_eagerly(),
           'PGD builds graph-mode ops (tf.gradients): call it inside a tf.Graph, '
           'e.g. in an Estimator model_fn')
  _require(norm in NORMS, 'norm=%r is not one of %s' % (norm, ', '.join(NORMS)))
  check_epsilon(epsilon)
  check_num_steps(num_steps)
  check_step_size(step_size)
  _require(not targeted or target_labels is not None,
           'targeted=True needs target_labels')
  _require(targeted or target_labels is None,
           'target_labels were given but targeted=False')
  _require(_is_finite_real(clip_min) and _is_finite_real(clip_max)
           and clip_min < clip_max,
           'clip_min=%r, clip_max=%r must be finite with clip_min < clip_max'
           % (clip_min, clip_max))
  if step_size is None:
    step_size = default_step_size(epsilon, num_steps)
  return _Attack(norm, float(epsilon), int(num_steps), float(step_size),
                 float(clip_min), float(clip_max))


def _as_pixels(x):
  x = tf.convert_to_tensor(x)
  return x if x.dtype.is_floating else tf.cast(x, tf.float32)


def pgd_attack(logits_fn, x, labels, *, norm, epsilon, num_steps, step_size=None,
               targeted=False, target_labels=None, random_start=False,
               clip_min=0.0, clip_max=255.0, seed=None):
  """Builds a PGD attack on a batch, all steps inside one `tf.while_loop`.

  Graph mode only. `logits_fn` is called once outside the loop so that it can
  create its variables there; that extra forward pass is never run unless
  fetched.

  Args:
    logits_fn: `logits_fn(images)` building logits for a batch of pixels.
    x: [batch, ...] clean pixels in [clip_min, clip_max].
    labels: [batch] int true labels.
    norm: 'linf' or 'l2'.
    epsilon: radius of the ball around x, in pixel units.
    num_steps: number of steps n.
    step_size: step a; None means 4/3 * epsilon / n.
    targeted: descend CE(target_labels) instead of ascending CE(labels).
    target_labels: [batch] int targets; required exactly when targeted.
    random_start: start at a uniform point of the ball instead of x.
    clip_min: lowest pixel value.
    clip_max: highest pixel value.
    seed: optional shape-[2] int seed making the random start stateless (and
      so repeatable); None uses the graph-seeded stateful random ops.

  Returns:
    The adversarial batch, same shape as x, with no gradient flowing back.

  Raises:
    ValueError: an argument is out of range or inconsistent.
  """
  attack = _make_attack(norm, epsilon, num_steps, step_size, targeted,
                        target_labels, clip_min, clip_max)
  x = _as_pixels(x)
  logits_fn(x)  # Creates the variables outside control flow.
  start = attack.random_start(x, seed) if random_start else x
  return attack.run(logits_fn, x, labels, target_labels, start)


def _predicted_class(logits_fn, x):
  return tf.argmax(logits_fn(x), axis=-1, output_type=tf.int32)


def pgd_worst_case(logits_fn, x, labels, *, norm, epsilon, num_steps, step_size=None,
                   target_labels=None, random_start=False, num_restarts=1,
                   seed=None, clip_min=0.0, clip_max=255.0):
  """Runs `num_restarts` PGD attacks and keeps the worst case per example.

  The restarts run one after another inside a `tf.while_loop`; restart r
  starts from the stateless seed `fold_in(seed, r)`.

  Args:
    logits_fn: as for `pgd_attack`.
    x: [batch, ...] clean pixels.
    labels: [batch] int true labels.
    norm: as for `pgd_attack`.
    epsilon: as for `pgd_attack`.
    num_steps: as for `pgd_attack`.
    step_size: as for `pgd_attack`.
    target_labels: [batch] int targets for a targeted attack, else None.
    random_start: whether each restart starts at a random point of the ball.
    num_restarts: number of attacks; more than 1 needs random_start.
    seed: shape-[2] int seed of the random starts (None: stateful random ops).
    clip_min: lowest pixel value.
    clip_max: highest pixel value.

  Returns:
    A dict of [batch] bool tensors: 'correct' (the true label is predicted
    after every restart) and, when targeted, 'hit' (some restart made the
    model predict the target).

  Raises:
    ValueError: an argument is out of range or inconsistent.
  """
  _require(_is_int(num_restarts) and num_restarts >= 1,
           'num_restarts=%r must be an integer >= 1' % (num_restarts,))
  _require(num_restarts == 1 or random_start,
           'num_restarts=%d needs random_start: without it every restart is the '
           'same attack' % num_restarts)
  targeted = target_labels is not None
  attack = _make_attack(norm, epsilon, num_steps, step_size, targeted,
                        target_labels, clip_min, clip_max)
  x = _as_pixels(x)
  labels = tf.cast(labels, tf.int32)
  if targeted:
    target_labels = tf.cast(target_labels, tf.int32)
  logits_fn(x)  # Creates the variables outside control flow.

  def body(restart, correct, hit):
    restart_seed = (None if seed is None
                    else tf.random.experimental.stateless_fold_in(seed, restart))
    start = attack.random_start(x, restart_seed) if random_start else x
    predicted = _predicted_class(
        logits_fn, attack.run(logits_fn, x, labels, target_labels, start))
    correct = tf.logical_and(correct, tf.equal(predicted, labels))
    if targeted:
      hit = tf.logical_or(hit, tf.equal(predicted, target_labels))
    return restart + 1, correct, hit

  everywhere = tf.ones_like(labels, dtype=tf.bool)
  _, correct, hit = tf.while_loop(
      lambda restart, *_: restart < num_restarts, body,
      (tf.constant(0), everywhere, tf.logical_not(everywhere)), parallel_iterations=1)
  return dict(correct=correct, hit=hit) if targeted else dict(correct=correct)


# ---------------------------------------------------------------------------
# Targets.


def _target_offset_chunks(num_classes, seed):
  """Endless chunks of offsets in 1..num_classes-1 (label + offset is a wrong class)."""
  rng = np.random.RandomState(seed)
  while True:
    yield rng.randint(1, num_classes, size=_TARGET_CHUNK).astype(np.int32)


def _check_num_classes(num_classes):
  _require(_is_int(num_classes) and num_classes >= 2,
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
  check_seed(seed)
  labels = np.asarray(labels, dtype=np.int64)
  _require(labels.ndim == 1, 'labels must be 1-D, got shape %s' % (labels.shape,))
  _require(not labels.size or (labels.min() >= 0 and labels.max() < num_classes),
           'labels must lie in [0, %d)' % num_classes)
  chunks = _target_offset_chunks(num_classes, seed)
  needed = -(-len(labels) // _TARGET_CHUNK)
  offsets = np.concatenate([np.zeros(0, np.int32)]
                           + [next(chunks) for _ in range(needed)])[:len(labels)]
  return ((labels + offsets) % num_classes).astype(np.int32)


# ---------------------------------------------------------------------------
# Evaluation through the Estimator.


@dataclasses.dataclass(frozen=True)
class PgdConfig:
  """How a sweep attacks: everything but the epsilons, which are its items.

  Field names are the command-line flags', and error messages name them so.
  """
  norm: str = 'linf'
  num_steps: int = 20
  step_size: Optional[float] = None
  targeted: bool = False
  target_seed: int = 0
  random_start: bool = False
  seed: int = 0
  num_restarts: int = 1
  batch_size: int = 100

  def validate(self):
    """Raises ValueError naming the flag of the first bad field."""
    _require(self.norm in NORMS,
             '--norm=%r is not one of %s' % (self.norm, ', '.join(NORMS)))
    check_num_steps(self.num_steps, '--num_steps')
    check_step_size(self.step_size, '--step_size')
    check_seed(self.target_seed, '--target_seed')
    check_seed(self.seed, '--seed')
    _require(_is_int(self.num_restarts) and self.num_restarts >= 1,
             '--num_restarts=%r must be an integer >= 1' % (self.num_restarts,))
    _require(self.num_restarts == 1 or self.random_start,
             '--num_restarts=%d needs --random_start: without it every restart is '
             'the same attack' % self.num_restarts)
    _require(_is_int(self.batch_size) and self.batch_size >= 1,
             '--batch_size=%r must be an integer >= 1' % (self.batch_size,))

  @property
  def evaluation(self):
    """The result file's evaluation name: pgd_linf, pgd_l2[, _targeted]."""
    return 'pgd_%s%s' % (self.norm, '_targeted' if self.targeted else '')

  def step_size_for(self, epsilon):
    """The step size used at `epsilon` (recorded in each result item)."""
    if self.step_size is not None:
      return float(self.step_size)
    return default_step_size(epsilon, self.num_steps)

  def header_flags(self):
    """The fields that change results; unused seeds are left out."""
    flags = dataclasses.asdict(self)
    if not self.targeted:
      del flags['target_seed']
    if not self.random_start:
      del flags['seed']
    return flags


def epsilon_key(epsilon):
  """The result item key of an epsilon: 'eps=8', 'eps=0.5'."""
  short = '%g' % epsilon
  return 'eps=' + (short if float(short) == epsilon else repr(float(epsilon)))


def array_examples(images, labels):
  """An `examples_fn` over in-memory arrays (e.g. the CIFAR-10 test set).

  Args:
    images: [N, H, W, C] pixels (uint8 or float) in [0, 255].
    labels: [N] int labels.

  Returns:
    `examples_fn()` returning an unbatched tf.data.Dataset of (float32 image,
    int32 label). The arrays are handed over by `cifar_input.in_memory_dataset`,
    so they are not baked into the graph.
  """
  images, labels = np.asarray(images), np.asarray(labels, dtype=np.int32)
  _require(images.ndim == 4 and labels.shape == (len(images),),
           'images must be [N, H, W, C] and labels [N], got %s and %s'
           % (images.shape, labels.shape))

  def examples_fn():
    whole = cifar_input.in_memory_dataset(images, labels)
    return whole.map(lambda image, label: (tf.cast(image, tf.float32), label))

  return examples_fn


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


def _predict_fn(epsilon, config):
  """The Estimator predict_fn: clean and worst-case adversarial outcomes per example."""
  def predict_fn(logits_fn, features):
    images, labels = features['image'], features['label']
    clean = _predicted_class(logits_fn, images)
    # Each batch gets its own stateless seed, so results do not depend on how
    # many batches ran before in this process.
    batch_seed = tf.random.experimental.stateless_fold_in(
        tf.constant([config.seed, 0], tf.int64), features['index'][0])
    outcome = pgd_worst_case(
        logits_fn, images, labels, num_restarts=config.num_restarts,
        seed=batch_seed, target_labels=features.get('target'),
        random_start=config.random_start, norm=config.norm, epsilon=epsilon,
        num_steps=config.num_steps, step_size=config.step_size)
    return dict(outcome, clean_correct=tf.equal(clean, labels))

  return predict_fn


def _model_num_classes(model, config):
  """The model's class count (params.json), checked when the attack is targeted."""
  params = model.params
  num_classes = params.get('num_classes', params.get('num_label_classes'))
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
  check_epsilon(epsilon, '--epsilons')
  num_classes = _model_num_classes(model, config)
  outputs = runner.predict(model, _input_fn(examples_fn, config, num_classes),
                           _predict_fn(epsilon, config))
  _require(outputs, 'no examples to evaluate')
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
      label), e.g. from `array_examples`.
    epsilons: the radii to attack at, in pixel units.
    config: a `PgdConfig`.
    result_file: an `eval.results.ResultFile` to resume and fill in, or None.

  Returns:
    The summary (see `summarize`); ε = 0 reproduces the clean accuracy exactly.
  """
  config.validate()
  items = {} if result_file is None else result_file.items
  for epsilon in epsilons:
    key = epsilon_key(epsilon)
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


# ---------------------------------------------------------------------------
# Data sets.


def _imagenet_module():
  """resnet_ceb.imagenet_input, or ValueError saying the data set is not available."""
  unavailable = ('--dataset=imagenet is not available: it needs '
                 'resnet_ceb/imagenet_input.py with an ImageNetInput class')
  try:
    module = importlib.import_module('resnet_ceb.imagenet_input')
  except ModuleNotFoundError as e:
    if e.name != 'resnet_ceb.imagenet_input':
      raise
    raise ValueError(unavailable) from e
  _require(hasattr(module, 'ImageNetInput'), unavailable)
  return module


def _imagenet_examples(data_dir, fake_data, batch_size, image_size):
  """The ImageNet validation TFRecords through the trainer's eval input pipeline."""
  _require(data_dir or fake_data, '--dataset=imagenet needs --data_dir (or --fake_data)')
  source = _imagenet_module().ImageNetInput(
      is_training=False, data_dir=None if fake_data else data_dir, image_size=image_size)

  def examples_fn():
    batches = source.input_fn({'batch_size': batch_size})
    return batches.unbatch().map(
        lambda image, label: (tf.cast(image, tf.float32), tf.cast(label, tf.int32)))

  return examples_fn


def load_examples(dataset, data_dir, fake_data, num_examples, batch_size, image_size=224):
  """The test examples of `dataset` (at most num_examples) as an `examples_fn`.

  `image_size` is the ImageNet eval crop (the model's); CIFAR images are 32x32.
  """
  _require(num_examples is None or (_is_int(num_examples) and num_examples >= 1),
           '--num_examples=%r must be an integer >= 1' % (num_examples,))
  if dataset == 'imagenet':
    # Fake ImageNet never ends, so it needs a count.
    _require(num_examples or not fake_data,
             '--dataset=imagenet --fake_data needs --num_examples')
    examples_fn = _imagenet_examples(data_dir, fake_data, batch_size, image_size)
    if num_examples is None:
      return examples_fn
    return lambda: examples_fn().take(num_examples)
  images, labels = cifar_input.load_dataset(data_dir, 'test', fake_data)
  return array_examples(images[:num_examples], labels[:num_examples])


# ---------------------------------------------------------------------------
# Command line.


class _UsageError(ValueError):
  """A command-line argument could not be parsed."""


class _Parser(argparse.ArgumentParser):

  def error(self, message):
    raise _UsageError(message)


def build_parser():
  """The `python -m eval.pgd` flags."""
  parser = _Parser(prog='python -m eval.pgd', description=__doc__.split('\n')[0])
  add = parser.add_argument
  add('--model_dir', required=True, help='A directory a trainer wrote.')
  add('--checkpoint', help='Checkpoint path prefix; default the latest.')
  add('--dataset', choices=DATASETS, help="Default: the model's (params.json).")
  add('--data_dir', help='CIFAR-10 folder, or ImageNet validation TFRecords.')
  add('--fake_data', action='store_true', help='Random images, for plumbing only.')
  add('--norm', choices=NORMS, default='linf', help='Threat model.')
  add('--epsilons', required=True, help='Comma list of radii in pixel units, e.g. 0,2,8.')
  add('--num_steps', type=int, default=20, help='PGD steps n (paper: 20).')
  add('--step_size', type=float, help='Default 4/3*eps/num_steps.')
  add('--targeted', action='store_true', help='Aim at seeded random wrong classes.')
  add('--target_seed', type=int, default=0, help='Seeds the targets.')
  add('--random_start', action='store_true', help='Start at a random point of the ball.')
  add('--seed', type=int, default=0, help='Seeds the random starts.')
  add('--num_restarts', type=int, default=1, help='Worst case over restarts.')
  add('--num_examples', type=int, help='Attack only the first N test examples.')
  add('--batch_size', type=int, default=100, help='Examples per session.run.')
  add('--output', help='Result file; default MODEL_DIR/results/<evaluation>-step<N>.json.')
  return parser


def parse_epsilons(text):
  """'0,2,8' -> [0.0, 2.0, 8.0]; raises ValueError naming --epsilons."""
  epsilons = []
  for part in text.split(','):
    try:
      value = float(part)
    except ValueError:
      raise ValueError('--epsilons=%s: %r is not a number' % (text, part.strip())) from None
    check_epsilon(value, '--epsilons')
    _require(epsilon_key(value) not in map(epsilon_key, epsilons),
             '--epsilons=%s lists %g twice' % (text, value))
    epsilons.append(value)
  return epsilons


def _config_from_args(args):
  config = PgdConfig(
      norm=args.norm, num_steps=args.num_steps, step_size=args.step_size,
      targeted=args.targeted, target_seed=args.target_seed,
      random_start=args.random_start, seed=args.seed,
      num_restarts=args.num_restarts, batch_size=args.batch_size)
  config.validate()
  return config


def _dataset_for(flag, model):
  recorded = model.params.get('dataset')
  dataset = flag or recorded
  _require(dataset in DATASETS, '%s/params.json names dataset %r, which has no PGD '
           'input here; pass --dataset' % (model.model_dir, recorded))
  _require(recorded in (None, dataset), '--dataset=%s, but the model was trained on '
           '%s (%s/params.json)' % (dataset, recorded, model.model_dir))
  return dataset


def prepare(args):
  """Checks everything that can fail before any result is written.

  Returns:
    (model, examples_fn, epsilons, config, result_file).
  """
  config = _config_from_args(args)
  epsilons = parse_epsilons(args.epsilons)
  model = runner.load_model(args.model_dir, args.checkpoint)
  _model_num_classes(model, config)
  dataset = _dataset_for(args.dataset, model)
  examples_fn = load_examples(dataset, args.data_dir, args.fake_data,
                              args.num_examples, config.batch_size,
                              model.params.get('image_size', 224))
  flags = dict(config.header_flags(), num_examples=args.num_examples,
               data_dir=args.data_dir and os.path.abspath(args.data_dir),
               fake_data=args.fake_data)
  header = results.header_for(model, flags, dataset)
  path = args.output or results.default_path(model.model_dir, config.evaluation,
                                             model.step)
  return model, examples_fn, epsilons, config, results.ResultFile(
      path, config.evaluation, header)


def format_table(summary, evaluation):
  """A small text table of accuracy (and target hit rate) by epsilon."""
  targeted = 'target_hit_rate' in summary
  lines = ['%s: clean accuracy %.4f' % (evaluation, summary['clean_accuracy']),
           '%10s %9s%s' % ('epsilon', 'accuracy', '  target_hit' if targeted else '')]
  for i, epsilon in enumerate(summary['epsilons']):
    line = '%10g %9.4f' % (epsilon, summary['accuracy'][i])
    if targeted:
      line += '  %10.4f' % summary['target_hit_rate'][i]
    lines.append(line)
  return '\n'.join(lines)


def main(argv=None):
  """Runs the sweep; returns 2 with `error: ...` on stderr for bad input."""
  try:
    args = build_parser().parse_args(argv)
    model, examples_fn, epsilons, config, result_file = prepare(args)
  except (ValueError, FileNotFoundError) as e:
    print('error: %s' % e, file=sys.stderr)
    return 2
  summary = evaluate_pgd(model, examples_fn, epsilons, config, result_file)
  print(format_table(summary, config.evaluation))
  print('results: %s' % result_file.path)
  return 0


if __name__ == '__main__':
  sys.exit(main())
