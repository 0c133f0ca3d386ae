"""The audit's engine: a model in its own graph and session, attacked at any radius.

`Auditor` builds the model and every attack once, before its session starts
(a graph grown later costs a slow session extension): the attacks but PGD-20
on a fed radius, PGD-20 (eval.pgd, which takes a number) once per radius the
auditor is told about. `Auditor.audit` runs the sequence at one radius the way
AutoAttack's standard version does: the paper's PGD-20 on every clean-correct
example (its accuracy is the number the paper reports), then each further
attack on the examples still robust. An attack's output counts only after a
check in numpy: inside the eps-ball up to float32 rounding, inside [0, 255],
and misclassified by a separate forward pass. Examples an earlier (smaller)
radius of a sweep fooled arrive as `fooled_before` and count as fooled from
the first attack on; their witnesses lie in the smaller ball, so inside this one.

At each bounded radius the audit also runs the masking checks
(eval.audit.checks): FGSM and uniform noise on the clean-correct examples,
and APGD at twice the budget on a seeded sample of the survivors; `clean`
runs the model five times on one batch to see whether its logits are random.

Each attack runs batch by batch, one `session.run` per batch, with the
stateless seed (seed, batch number) folded with the attack's position in the
sequence: the same seed and inputs give the same audit.
"""
import collections
import dataclasses
import itertools
import time
from typing import Optional

import numpy as np
import tensorflow as tf

from eval.attacks import threat_model
from eval.audit import checks
from eval.audit import specs

tf1 = tf.compat.v1

# The radius at which every example must fall (Carlini et al. 2019): the
# whole pixel cube (L-inf), and a ball far larger than it (L2).
UNBOUNDED_EPSILON = {'linf': 255.0, 'l2': 1e5}
# How far a witness may stray outside the ball per coordinate: two float32
# units in the last place of a pixel value near 255.
PIXEL_ROUNDING = 2.0 ** -15


@dataclasses.dataclass
class Clean:
  """The examples, clean-correct or not, and their CE input gradients' health."""
  images: np.ndarray
  labels: np.ndarray
  correct: np.ndarray
  gradient: dict  # 'none', 'nonfinite', 'zero' -> bool [N]
  randomness: float = 0.0  # Largest change of the normalized logits over repeated runs.


@dataclasses.dataclass
class AttackRecord:
  """What one attack did at one radius; masks are bool [N] over all examples."""
  name: str
  gradient_free: bool
  attacked: np.ndarray
  fooled: np.ndarray  # Checked witnesses only.
  never_raised: np.ndarray  # Attacked, not fooled, and its loss never rose.
  broken: np.ndarray  # A None or non-finite input gradient was met.
  rejected: int  # Claimed fooled by the attack, refused by the check.
  gradient_passes: int
  forward_passes: int
  seconds: float
  witness_indices: np.ndarray
  witnesses: np.ndarray
  zero_gradient: Optional[np.ndarray] = None  # The attack's loss had an exactly zero gradient.


@dataclasses.dataclass
class RadiusOutcome:
  """The audit at one radius."""
  epsilon: float
  robust: np.ndarray
  carried: np.ndarray
  adversarial: np.ndarray  # Witnesses of the examples fooled here, else clean.
  per_attack: dict
  pgd20_robust: Optional[np.ndarray]
  records: list
  transfer: Optional[AttackRecord] = None
  checks: dict = dataclasses.field(default_factory=dict)  # See Auditor.run_checks.


def _bfloat16_ops(graph):
  """The types of the graph's ops computing in bfloat16 (their `T` is bfloat16)."""
  types = set()
  for op in graph.get_operations():
    if 'T' in op.node_def.attr and op.get_attr('T') == tf.bfloat16:
      types.add(op.type)
  return types


def _concatenate(batches):
  """Per key: arrays concatenated over batches, scalars summed."""
  joined = collections.defaultdict(list)
  for batch in batches:
    for key, value in batch.items():
      joined[key].append(value)
  return {key: np.concatenate(values) if np.ndim(values[0]) else int(np.sum(values))
          for key, values in joined.items()}


class Auditor:
  """One model's graph and session, with the attacks of an audit.

  Args:
    logits_fn: `logits_fn(images)` building logits for float pixels in [0, 255];
      later calls must reuse the variables of the first.
    image_shape: (H, W, C).
    norm: 'linf' or 'l2'.
    epsilons: every radius the auditor will attack at.
    attacks: specs from eval.specs.resolve.
    seed: the audit's seed.
    batch_size: examples per session.run.
    restore_fn: `restore_fn(session)` run after variable initialization, or None.
    convergence_sample: survivors the not_converged check re-attacks (0: none).
  """

  def __init__(self, logits_fn, image_shape, *, norm, epsilons, attacks, seed=0,
               batch_size=256, restore_fn=None, convergence_sample=checks.CONVERGENCE_SAMPLE):
    self.norm, self.attacks, self.seed, self.batch_size = norm, attacks, seed, batch_size
    self.convergence_sample = convergence_sample
    self._doubled = [checks.doubled(spec) for spec in attacks if convergence_sample
                     and isinstance(spec, specs.Apgd) and spec.loss in checks.CONVERGENCE_LOSSES]
    self.graph = tf.Graph()
    with self.graph.as_default():
      self._x = tf1.placeholder(tf.float32, (None,) + tuple(image_shape), name='images')
      self._labels = tf1.placeholder(tf.int32, [None], name='labels')
      self._epsilon = tf1.placeholder(tf.float32, [], name='epsilon')
      self._seed = tf1.placeholder(tf.int64, [2], name='seed')
      model = threat_model.ModelUnderAttack(logits_fn, self._x)
      health = model.gradient_health(lambda z: threat_model.cross_entropy(z, self._labels), self._x)
      self._clean = dict({'logits': model.clean_logits},
                         **{'gradient_' + key: value for key, value in health.items()})
      self._predicted = {'predicted': tf.argmax(model.clean_logits, -1, output_type=tf.int32)}
      num_variables = len(tf1.global_variables())
      self._ops = {}
      for index, spec in enumerate(attacks):
        for epsilon in (sorted(set(epsilons)) if isinstance(spec, specs.Pgd)
                        else [None]):
          self._ops[spec.name, epsilon] = spec.build(
              logits_fn, self._x, self._labels, norm,
              self._epsilon if epsilon is None else float(epsilon), self._attack_seed(index))
      self._check_ops = self._build_checks(model, logits_fn)
      threat_model.require(len(tf1.global_variables()) == num_variables,
                           'logits_fn made new variables when called again; it must reuse the '
                           'variables of its first call')
      bfloat16_ops = _bfloat16_ops(self.graph)
      threat_model.require(not bfloat16_ops,
                           'logits_fn computes in bfloat16 (%s): the audit attacks and '
                           're-checks its witnesses in float32 only; build the model in '
                           'float32' % ', '.join(sorted(bfloat16_ops)))
      initializer = tf1.global_variables_initializer()
    self.session = tf1.Session(graph=self.graph)
    self.session.run(initializer)
    if restore_fn is not None:
      with self.graph.as_default():
        restore_fn(self.session)

  def __enter__(self):
    return self

  def __exit__(self, *unused):
    self.close()

  def close(self):
    """Frees the session."""
    self.session.close()

  def _attack_seed(self, index):
    return tf.random.experimental.stateless_fold_in(self._seed, index)

  def _build_checks(self, model, logits_fn):
    """The checks' ops on a fed radius: FGSM and noise (beside PGD-20), doubled APGD."""
    ops = {}
    if any(isinstance(spec, specs.Pgd) for spec in self.attacks):
      ops['fgsm'] = checks.fgsm(model, self._x, self._labels, self.norm, self._epsilon)
      ops['noise'] = checks.uniform_noise(model, self._x, self._labels, self.norm,
                                          self._epsilon, self._attack_seed(len(self.attacks)))
    for index, spec in enumerate(self._doubled):
      ops['doubled', index] = spec.build(logits_fn, self._x, self._labels, self.norm,
                                         self._epsilon,
                                         self._attack_seed(len(self.attacks) + 1 + index))
    return ops

  def _attack_ops(self, index, epsilon):
    """An attack's ops at a radius (PGD-20's: built for that radius)."""
    spec = self.attacks[index]
    if not isinstance(spec, specs.Pgd):
      return self._ops[spec.name, None]
    threat_model.require((spec.name, float(epsilon)) in self._ops,
                         'the auditor was built without radius %g' % epsilon)
    return self._ops[spec.name, float(epsilon)]

  def _run(self, fetches, images, labels, epsilon=0.0):
    """Runs `fetches` batch by batch; arrays are concatenated, scalars summed."""
    batches = []
    for number, start in enumerate(range(0, len(labels), self.batch_size)):
      stop = start + self.batch_size
      batches.append(self.session.run(fetches, {
          self._x: images[start:stop], self._labels: labels[start:stop],
          self._epsilon: epsilon, self._seed: [self.seed, number]}))
    return _concatenate(batches)

  def clean(self, images, labels):
    """Clean predictions and gradient health of every example.

    Raises:
      ValueError: a label is not one of the model's classes.
    """
    num_classes = self.session.run(self._clean['logits'], {self._x: images[:1]}).shape[1]
    threat_model.require(labels.max() < num_classes, 'labels must lie in [0, %d) (the model has %d '
                         'classes), got %d' % (num_classes, num_classes, labels.max()))
    out = self._run(self._clean, images, labels)
    return Clean(images, labels, np.argmax(out['logits'], 1) == labels,
                 {key: out['gradient_' + key] for key in ('none', 'nonfinite', 'zero')},
                 self.randomness(images))

  def randomness(self, images):
    """AutoAttack's randomness check on the first batch.

    Returns the largest L2 distance between two of RANDOMNESS_RUNS runs'
    logits of one example, each normalized to norm 1.
    """
    batch = images[:self.batch_size]
    runs = [self.session.run(self._clean['logits'], {self._x: batch})
            for _ in range(checks.RANDOMNESS_RUNS)]
    normalized = [run / (np.linalg.norm(run, axis=1, keepdims=True) + 1e-10) for run in runs]
    return max(float(np.linalg.norm(a - b, axis=1).max())
               for a, b in itertools.combinations(normalized, 2))

  def predict(self, images, labels):
    """The model's classes on a batch of images."""
    return self._run(self._predicted, images, labels)['predicted']

  def check(self, x0, candidates, labels, epsilon):
    """Which candidates are witnesses: in the ball and pixel range, misclassified."""
    if not len(x0):
      return np.zeros(0, bool)
    delta = (candidates.astype(np.float64) - x0).reshape(len(x0), -1)
    if self.norm == 'linf':
      size, limit = np.abs(delta).max(1, initial=0.0), epsilon + PIXEL_ROUNDING
    else:
      size = np.sqrt(np.square(delta).sum(1))
      limit = epsilon * (1 + 2.0 ** -20) + PIXEL_ROUNDING * np.sqrt(delta.shape[1])
    flat = candidates.reshape(len(x0), -1)
    valid = ((size <= limit) & np.isfinite(flat).all(1)
             & (flat >= threat_model.PIXEL_MIN).all(1) & (flat <= threat_model.PIXEL_MAX).all(1))
    return valid & (self.predict(candidates.astype(np.float32), labels) != labels)

  def attack(self, index, epsilon, clean, targets):
    """Runs attack `index` at `epsilon` on the examples `targets`; checks its output."""
    spec, count = self.attacks[index], len(clean.labels)
    chosen = np.flatnonzero(targets)
    nothing = np.zeros(count, bool)
    if not chosen.size:
      return AttackRecord(spec.name, spec.gradient_free, nothing, nothing, nothing, nothing,
                          0, 0, 0, 0.0, chosen, clean.images[:0])
    started = time.perf_counter()
    x0, labels = clean.images[chosen], clean.labels[chosen]
    out = self._run(self._attack_ops(index, epsilon), x0, labels, epsilon)
    valid = self.check(x0, out['adversarial'], labels, epsilon)

    def spread(mask):
      full = np.zeros(count, bool)
      full[chosen] = mask
      return full

    return AttackRecord(
        spec.name, spec.gradient_free, spread(True), spread(valid),
        spread(~valid & ~out['raised']), spread(out.get('broken', np.zeros_like(valid))),
        int(np.sum(out['fooled'] & ~valid)), out['gradient_passes'],
        out['forward_passes'] + chosen.size, time.perf_counter() - started,
        chosen[valid], out['adversarial'][valid],
        spread(out['zero_gradient']) if 'zero_gradient' in out else None)

  def adversarial(self, index, epsilon, images, labels):
    """Attack `index`'s unchecked output on every example (to transfer elsewhere)."""
    return self._run(self._attack_ops(index, epsilon), images, labels, epsilon)['adversarial']

  def transfer(self, epsilon, clean, candidates):
    """Checks adversarial examples made on another model against this one."""
    chosen = np.flatnonzero(clean.correct)
    valid = self.check(clean.images[chosen], candidates[chosen], clean.labels[chosen], epsilon)
    fooled = np.zeros(len(clean.labels), bool)
    fooled[chosen] = valid
    nothing = np.zeros_like(fooled)
    return AttackRecord('transfer', False, clean.correct.copy(), fooled, nothing, nothing, 0,
                        0, chosen.size, 0.0, chosen[valid], candidates[chosen][valid])

  def audit(self, clean, epsilon, fooled_before=None, transfer_images=None, with_checks=True):
    """The attack sequence at one radius, then (with_checks) the masking checks."""
    carried = clean.correct & (False if fooled_before is None else fooled_before)
    robust = clean.correct & ~carried
    outcome = RadiusOutcome(float(epsilon), robust, carried, clean.images.astype(np.float32),
                            {'clean': float(clean.correct.mean())}, None, [])
    for index, spec in enumerate(self.attacks):
      standalone = isinstance(spec, specs.Pgd)
      record = self.attack(index, epsilon, clean, clean.correct if standalone else robust)
      if standalone:
        outcome.pgd20_robust = clean.correct & ~record.fooled
      self._count(outcome, record, robust)
      outcome.records.append(record)
    if transfer_images is not None:
      outcome.transfer = self.transfer(epsilon, clean, transfer_images)
      self._count(outcome, outcome.transfer, robust)
    if with_checks:
      outcome.checks = self.run_checks(clean, epsilon, robust)
    return outcome

  def run_checks(self, clean, epsilon, robust):
    """The masking checks at one radius.

    Returns:
      A dict: 'fgsm' and 'noise' (bool [N], checked witnesses on the
      clean-correct examples; present when PGD-20 runs), 'not_converged' (the
      accuracy points the doubled APGD takes off, estimated from its sample of
      `robust`; None without a sample), 'gradient_passes', 'forward_passes',
      'seconds' and 'cpu_seconds' (their cost; CPU: this process's).
    """
    started, cpu = time.perf_counter(), time.process_time()
    found = {'gradient_passes': 0, 'forward_passes': 0}
    chosen = np.flatnonzero(clean.correct)
    for name, gradient, forward in (('fgsm', 1, 2), ('noise', 0, checks.NOISE_DRAWS)):
      if name in self._check_ops:
        found[name], _ = self._checked(name, clean, chosen, epsilon)
        found['gradient_passes'] += gradient * chosen.size
        found['forward_passes'] += (forward + 1) * chosen.size
    found['not_converged'] = self._convergence(clean, epsilon, robust, found)
    found['seconds'] = time.perf_counter() - started
    found['cpu_seconds'] = time.process_time() - cpu
    return found

  def _checked(self, key, clean, chosen, epsilon):
    """(bool [N]: where op `key` run on `chosen` made a checked witness, its gradient passes)."""
    fooled = np.zeros(len(clean.labels), bool)
    if not chosen.size:
      return fooled, 0
    x0, labels = clean.images[chosen], clean.labels[chosen]
    out = self._run(self._check_ops[key], x0, labels, epsilon)
    fooled[chosen] = self.check(x0, out['adversarial'], labels, epsilon)
    return fooled, out.get('gradient_passes', 0)

  def _convergence(self, clean, epsilon, robust, found):
    """Doubled APGD-CE then APGD-T on a seeded sample of the survivors."""
    survivors = np.flatnonzero(robust)
    if not self._doubled or not survivors.size:
      return None
    sample = np.random.RandomState(self.seed).choice(
        survivors, min(self.convergence_sample, survivors.size), replace=False)
    standing = np.ones(len(clean.labels), bool)
    for index in range(len(self._doubled)):
      chosen = sample[standing[sample]]
      fooled, passes = self._checked(('doubled', index), clean, chosen, epsilon)
      standing &= ~fooled
      found['gradient_passes'] += passes
      found['forward_passes'] += 2 * chosen.size
    return float(np.mean(~standing[sample]) * survivors.size / len(clean.labels))

  @staticmethod
  def _count(outcome, record, robust):
    """Takes a record's newly fooled examples out of `robust` (in place), keeping witnesses."""
    new = robust[record.witness_indices]
    outcome.adversarial[record.witness_indices[new]] = record.witnesses[new]
    robust &= ~record.fooled
    outcome.per_attack[record.name] = float(robust.mean())
