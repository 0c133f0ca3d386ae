"""APGD (Croce & Hein 2020, Algorithm 1) in the graph, L-inf and L2.

Auto-PGD is PGD with momentum whose step size adapts to the example, so no
step size has to be tuned, and a badly chosen one cannot make the attack look
weak. Per example and per run, with P the projection onto the eps-ball and the
pixel range and s(g) = sign(g) (L-inf) or g / |g|_2 (L2):

* start at a seeded random point x_0 (below), step size eta = 2 eps;
* z = P(x_k + eta s(g_k)),
  x_{k+1} = P(x_k + a (z - x_k) + (1 - a)(x_k - x_{k-1})), a = 0.75
  (a = 1 for the first step, which has no previous point);
* eta is revisited at checkpoints. Under the 'autoattack' schedule (the
  default) they are exactly the official code's at every N: the first after
  k = max(int(0.22 N), 1) steps, each next one k' = max(k - max(int(0.03 N), 1),
  max(int(0.06 N), 1)) steps after the one before. Under 'stretched' they are
  the paper's w_j = ceil(p_j N), p_0 = 0, p_1 = 0.22, p_{j+1} = p_j +
  max(p_j - p_{j-1} - 0.03, 0.06), which spreads them evenly at small N. At
  a checkpoint eta is halved and the iterate restarts from the best point so
  far if at most 75% of the steps since the last checkpoint raised the loss
  (condition 1), or if the last checkpoint kept eta and the best loss has not
  moved since (condition 2; never at the first checkpoint). As in the
  official code, a restart keeps the momentum (the point before the restart
  stays the previous point), the next step's rise is measured against the
  loss of the iterate it replaced, and the first step of a run counts as a
  rise iff its loss is above 0 (the official code compares it with an unset
  row of its zero-filled loss buffer); docs/AUDIT.md lists these choices;
* the start is the official one: x0 + eps t / |t|_inf, t uniform in
  [-1, 1]^d (L-inf), or x0 + eps g / |g|_2, g Gaussian (L2), in pixel range;
* the best point (highest loss) is kept per example, and so is the first
  misclassified point seen, the witness.

Losses (eval.attacks.threat_model): 'ce' (computed stably: the fused op rounds
a confident example's loss to exactly 0, which would freeze the best point)
and 'dlr' untargeted, and
'targeted-dlr' (APGD-T), which aims in turn at the `num_targets` classes with
the highest clean logits other than the label, one run per target. A call
makes num_targets x num_restarts runs (1 x num_restarts untargeted), each from
its own seeded random start, inside one outer `tf.while_loop`: a batch costs
one `session.run`. Every run attacks only the examples no earlier run fooled
(gathered out of the batch), and a run stops early once all of them are fooled.

With `eot_samples` K > 1 each gradient is the mean over K forward-backward
passes (expectation over transformation, for randomized models; AutoAttack's
'rand' version uses 20). Input gradients that are None or non-finite count as
zero and are recorded per example ('broken'); 'zero_gradient' records an
exactly zero gradient of the attack's loss at some iterate; 'raised'
records whether the attack ever found a point with a higher loss than its
start (Pintor et al. 2022: an attack that never raises its own loss has
failed, not proven robustness).
"""
import collections
import math

import tensorflow as tf

from eval.attacks import threat_model

LOSSES = ('ce', 'dlr', 'targeted-dlr')
INITIAL_STEP_FACTOR = 2.0
MOMENTUM = 0.75
# Condition 1: halve when at most this share of the steps raised the loss.
INCREASE_SHARE = 0.75
SCHEDULES = ('autoattack', 'stretched')
_FIRST_CHECKPOINT = 0.22
_CHECKPOINT_SHRINK = 0.03
_MIN_CHECKPOINT_GAP = 0.06
# DLR divides by z_pi1 - z_pi3; targeted DLR by z_pi1 - (z_pi3 + z_pi4) / 2.
_MIN_CLASSES = {'ce': 2, 'dlr': 3, 'targeted-dlr': 4}

_State = collections.namedtuple('_State', [
    'step', 'x', 'previous', 'gradient', 'loss', 'step_size', 'best', 'best_loss',
    'best_gradient', 'increases', 'checked_loss', 'halved', 'fooled', 'witness', 'broken',
    'zero'])
_RunOutcome = collections.namedtuple(
    '_RunOutcome', ['adversarial', 'fooled', 'raised', 'broken', 'zero', 'passes'])


def checkpoints(num_steps, schedule='autoattack'):
  """The iterations (after 0) at which APGD revisits its step size; see the docstring."""
  threat_model.require(schedule in SCHEDULES, 'schedule=%r is not one of %s'
                       % (schedule, ', '.join(SCHEDULES)))
  if schedule == 'autoattack':
    return _official_checkpoints(num_steps)
  fractions = [0.0, _FIRST_CHECKPOINT]
  while True:
    gap = max(fractions[-1] - fractions[-2] - _CHECKPOINT_SHRINK, _MIN_CHECKPOINT_GAP)
    if fractions[-1] + gap > 1.0:
      break
    fractions.append(fractions[-1] + gap)
  # The offset keeps float products such as 0.41 * 100 = 41.000000000000004 at 41.
  return sorted({math.ceil(p * num_steps - 1e-9) for p in fractions})


def _official_checkpoints(num_steps):
  """AutoAttack's: gaps that start at int(0.22 N) and shrink by int(0.03 N) to int(0.06 N).

  The products are float ones truncated by int(), as in the official code, so
  the checkpoints are its own at every N.
  """
  gap = max(int(_FIRST_CHECKPOINT * num_steps), 1)
  shrink = max(int(_CHECKPOINT_SHRINK * num_steps), 1)
  smallest = max(int(_MIN_CHECKPOINT_GAP * num_steps), 1)
  marks = [0]
  while marks[-1] + gap <= num_steps:
    marks.append(marks[-1] + gap)
    gap = max(gap - shrink, smallest)
  return marks


def _where(mask, a, b):
  """tf.where with a [batch] mask selecting whole examples of [batch, ...] tensors."""
  shape = tf.concat([tf.shape(mask), tf.ones([a.shape.rank - 1], tf.int32)], 0)
  return tf.where(tf.reshape(mask, shape), a, b)


def random_start(x0, norm, epsilon, seed):
  """The official start: a random direction scaled to the sphere of radius eps, in pixel range.

  L-inf: x0 + eps t / |t|_inf with t uniform in [-1, 1]^d; L2: x0 + eps g / |g|_2
  with g standard normal. `seed` is a shape-[2] stateless seed.
  """
  shape = tf.shape(x0)
  if norm == 'linf':
    t = tf.random.stateless_uniform(shape, seed, -1.0, 1.0)
    size = tf.reduce_max(tf.abs(t), axis=_image_axes(x0), keepdims=True)
  else:
    t = tf.random.stateless_normal(shape, seed)
    size = threat_model.example_norm(t)
  return threat_model.clip_pixels(x0 + epsilon * t / (size + 1e-12))


def _image_axes(x):
  return list(range(1, x.shape.rank))


def _per_example(values):
  """[batch] -> [batch, 1, 1, 1], to scale images."""
  return tf.reshape(values, [-1, 1, 1, 1])


class _Run:
  """One APGD run on a batch: its loss, its schedule and its while_loop."""

  def __init__(self, model, x0, labels, loss_fn, norm, epsilon, num_steps, schedule='autoattack',
               eot_samples=1):
    self.model, self.x0, self.labels, self.loss_fn = model, x0, labels, loss_fn
    self.norm, self.epsilon, self.num_steps = norm, epsilon, num_steps
    self.eot_samples = eot_samples
    is_check, span = [False] * (num_steps + 1), [1.0] * (num_steps + 1)
    marks = checkpoints(num_steps, schedule)
    for previous, current in zip(marks, marks[1:]):
      is_check[current], span[current] = True, float(current - previous)
    self.is_check, self.span = tf.constant(is_check), tf.constant(span)

  def evaluate(self, x):
    """Loss, guarded gradient (averaged over the EOT passes), broken, zero, wrong at x."""
    gradient, broken = 0.0, tf.zeros(tf.shape(x)[:1], tf.bool)
    for _ in range(self.eot_samples):
      logits, loss, sample, sample_broken = self.model.loss_and_gradient(self.loss_fn, x)
      gradient += sample / self.eot_samples
      broken = tf.logical_or(broken, sample_broken)
    zero = tf.logical_and(tf.logical_not(broken),
                          tf.reduce_all(tf.equal(gradient, 0.0), axis=_image_axes(x)))
    wrong = tf.not_equal(tf.argmax(logits, -1, output_type=tf.int32), self.labels)
    return loss, gradient, broken, zero, wrong

  def project(self, x):
    return threat_model.project(x, self.x0, self.norm, self.epsilon)

  def direction(self, gradient):
    if self.norm == 'linf':
      return tf.sign(gradient)
    return gradient / tf.maximum(threat_model.example_norm(gradient), threat_model.TINY_NORM)

  def initial_state(self, start):
    loss, gradient, broken, zero, wrong = self.evaluate(start)
    batch = tf.shape(loss)
    return _State(
        step=tf.constant(0), x=start, previous=start, gradient=gradient,
        # The official code compares the first step with a zero-filled row.
        loss=tf.zeros_like(loss),
        step_size=tf.fill(batch, INITIAL_STEP_FACTOR * self.epsilon), best=start,
        best_loss=loss, best_gradient=gradient, increases=tf.zeros(batch),
        checked_loss=loss, halved=tf.ones(batch, tf.bool), fooled=wrong,
        witness=_where(wrong, start, self.x0), broken=broken, zero=zero)

  def step(self, state):
    """One momentum step, the bookkeeping of Algorithm 1 and, at checkpoints, halving."""
    momentum = tf.where(state.step > 0, MOMENTUM, 1.0)
    z = self.project(state.x + _per_example(state.step_size) * self.direction(state.gradient))
    x = self.project(state.x + momentum * (z - state.x)
                     + (1.0 - momentum) * (state.x - state.previous))
    loss, gradient, broken, zero, wrong = self.evaluate(x)
    better = loss > state.best_loss
    state = state._replace(
        step=state.step + 1, x=x, previous=state.x, gradient=gradient, loss=loss,
        best=_where(better, x, state.best), best_loss=tf.where(better, loss, state.best_loss),
        best_gradient=_where(better, gradient, state.best_gradient),
        increases=state.increases + tf.cast(loss > state.loss, tf.float32),
        witness=_where(tf.logical_and(wrong, tf.logical_not(state.fooled)), x, state.witness),
        fooled=tf.logical_or(state.fooled, wrong),
        broken=tf.logical_or(state.broken, broken), zero=tf.logical_or(state.zero, zero))
    return tf.cond(self.is_check[state.step], lambda: self.revisit_step_size(state),
                   lambda: state)

  def revisit_step_size(self, state):
    """At a checkpoint: halve eta and restart from the best point where a condition holds.

    Only the iterate and its gradient move to the best point: the previous
    point (the momentum) and the loss the next step is compared with stay.
    """
    too_few = state.increases <= INCREASE_SHARE * self.span[state.step]
    stalled = tf.logical_and(tf.logical_not(state.halved),
                             tf.equal(state.best_loss, state.checked_loss))
    halve = tf.logical_or(too_few, stalled)
    return state._replace(
        step_size=tf.where(halve, 0.5 * state.step_size, state.step_size),
        x=_where(halve, state.best, state.x),
        gradient=_where(halve, state.best_gradient, state.gradient),
        increases=tf.zeros_like(state.increases), checked_loss=state.best_loss,
        halved=halve)

  def outcome(self, seed):
    """All steps from a seeded random start, in one while_loop."""
    start = self.initial_state(random_start(self.x0, self.norm, self.epsilon, seed))

    def keep_going(state):
      return tf.logical_and(state.step < self.num_steps,
                            tf.logical_not(tf.reduce_all(state.fooled)))

    final, = tf.while_loop(keep_going, lambda state: (self.step(state),), (start,),
                           parallel_iterations=1)
    return _RunOutcome(
        adversarial=_where(final.fooled, final.witness, final.best), fooled=final.fooled,
        raised=final.best_loss > start.best_loss, broken=final.broken, zero=final.zero,
        passes=(final.step + 1) * tf.shape(final.loss)[0] * self.eot_samples)


def _check_arguments(norm, epsilon, loss, num_steps, num_restarts, num_targets, schedule,
                     eot_samples):
  threat_model.require_graph_mode('APGD')
  threat_model.require(schedule in SCHEDULES, 'schedule=%r is not one of %s'
                       % (schedule, ', '.join(SCHEDULES)))
  threat_model.check_num_steps(eot_samples, 'eot_samples')
  threat_model.check_norm(norm)
  threat_model.radius(epsilon)
  threat_model.require(loss in LOSSES, 'loss=%r is not one of %s' % (loss, ', '.join(LOSSES)))
  threat_model.check_num_steps(num_steps)
  threat_model.check_num_steps(num_restarts, 'num_restarts')
  threat_model.check_num_steps(num_targets, 'num_targets')


def _num_classes(logits, loss):
  """The static class count, checked against what the loss needs."""
  num_classes = logits.shape[-1]
  threat_model.require(num_classes is not None,
                       'APGD needs logits with a static number of classes, got shape %s'
                       % logits.shape)
  threat_model.require(num_classes >= _MIN_CLASSES[loss], 'loss=%r needs at least %d classes, the '
                       'model has %d' % (loss, _MIN_CLASSES[loss], num_classes))
  return num_classes


def _loss_fn(loss, labels, targets):
  if loss == 'ce':
    return lambda logits: threat_model.stable_cross_entropy(logits, labels)
  if loss == 'dlr':
    return lambda logits: threat_model.dlr(logits, labels)
  return lambda logits: threat_model.targeted_dlr(logits, labels, targets)


def apgd_attack(logits_fn, x, labels, *, norm, epsilon, loss='ce', num_steps=100,
                num_restarts=1, num_targets=9, seed=(0, 0), schedule='autoattack',
                eot_samples=1):
  """Builds APGD on a batch; all runs and steps inside one `tf.while_loop`.

  Args:
    logits_fn: `logits_fn(images)` building logits for float pixels in [0, 255].
    x: [batch, H, W, C] clean pixels.
    labels: [batch] int true labels.
    norm: 'linf' or 'l2'.
    epsilon: radius of the ball, in pixel units (a number, or a scalar
      tensor checked by whoever feeds it).
    loss: 'ce', 'dlr' or 'targeted-dlr'.
    num_steps: iterations N per run (each one forward-backward pass).
    num_restarts: runs per target (per attack when untargeted), each from
      its own random start.
    num_targets: targeted DLR only: how many of the other classes to aim at;
      at most the number of other classes are used.
    seed: shape-[2] int seed (tuple or tensor); run r starts from the
      stateless seed fold_in(seed, r).
    schedule: 'autoattack' (the official checkpoints) or 'stretched' (the
      paper's fractions of N; see the module docstring).
    eot_samples: forward-backward passes averaged per gradient (EOT).

  Returns:
    A dict of tensors: 'adversarial' ([batch, ...]: the witness where fooled,
    else the best point of the last run that attacked the example), 'fooled',
    'raised', 'broken', 'zero_gradient' ([batch] bool; clean-misclassified
    examples are fooled at x and never attacked), and 'gradient_passes'
    (int32 scalar: per-example forward-backward passes spent).

  Raises:
    ValueError: an argument is out of range, or the model has too few classes
      for the loss.
  """
  _check_arguments(norm, epsilon, loss, num_steps, num_restarts, num_targets, schedule,
                   eot_samples)
  x = tf.cast(x, tf.float32)
  labels = tf.cast(labels, tf.int32)
  model = threat_model.ModelUnderAttack(logits_fn, x)
  num_classes = _num_classes(model.clean_logits, loss)
  targeted = loss == 'targeted-dlr'
  num_targets = min(num_targets, num_classes - 1) if targeted else 1
  targets = None
  if targeted:
    targets = threat_model.top_other_classes(model.clean_logits, labels, num_targets)
  seed = tf.convert_to_tensor(seed)
  wrong = tf.not_equal(tf.argmax(model.clean_logits, -1, output_type=tf.int32), labels)

  def attack_survivors(run, fooled, adversarial, raised, broken, zero, passes):
    active = tf.where(tf.logical_not(fooled))[:, 0]
    run_targets = None if targets is None else tf.gather(targets[:, run // num_restarts], active)
    outcome = _Run(model, tf.gather(x, active), tf.gather(labels, active),
                   _loss_fn(loss, tf.gather(labels, active), run_targets),
                   norm, threat_model.radius(epsilon), num_steps, schedule,
                   eot_samples).outcome(
                       tf.random.experimental.stateless_fold_in(seed, run))

    def put(full, part):
      return tf.tensor_scatter_nd_update(full, active[:, None], part)

    return (run + 1, put(fooled, outcome.fooled), put(adversarial, outcome.adversarial),
            put(raised, tf.logical_or(tf.gather(raised, active), outcome.raised)),
            put(broken, tf.logical_or(tf.gather(broken, active), outcome.broken)),
            put(zero, tf.logical_or(tf.gather(zero, active), outcome.zero)),
            passes + outcome.passes)

  def keep_going(run, fooled, *_):
    return tf.logical_and(run < num_targets * num_restarts,
                          tf.logical_not(tf.reduce_all(fooled)))

  no = tf.zeros_like(wrong)
  _, fooled, adversarial, raised, broken, zero, passes = tf.while_loop(
      keep_going, attack_survivors, (tf.constant(0), wrong, x, no, no, no, tf.constant(0)),
      parallel_iterations=1)
  return {'adversarial': tf.stop_gradient(adversarial), 'fooled': fooled, 'raised': raised,
          'broken': broken, 'zero_gradient': zero, 'gradient_passes': passes}
