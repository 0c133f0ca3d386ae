"""Targeted FAB (Croce & Hein 2020) in the graph, L-inf and L2.

"Minimally distorted adversarial examples with a fast adaptive boundary
attack" (ICML 2020). FAB looks for the smallest perturbation that changes the class, not for the
highest loss in a ball, so it needs no step size and is blind to the scale of
the logits. For a target class t, let f(x) = z_y(x) - z_t(x) (positive while
the example is classified y rather than t) and g its input gradient. Each
iteration, from the current point x:

* linearize: the decision hyperplane pi = {u: f(x) + <g, u - x> = 0};
* project x and the clean x0 onto pi intersected with the pixel box
  [0, 255]^d in the attack's norm, exactly (`project_onto_hyperplane`):
  delta and delta0 are the smallest steps onto that set;
* step: x' = clip((1 - a)(x + eta delta) + a (x0 + eta delta0)), with the
  bias towards x0 a = min(|delta| / (|delta| + |delta0|), alpha_max): the
  overshoot eta = 1.05 crosses the boundary, a pulls towards the clean point;
* if x' is misclassified it is kept when its norm |x' - x0| is the smallest
  so far, and the backward step x' <- x0 + beta (x' - x0) brings the next
  iteration back towards x0 to look for a smaller one.

alpha_max = 0.1, eta = 1.05 and beta = 0.9 are the paper's and AutoAttack's.
FAB-T aims in turn at the `num_targets` classes with the highest clean logits
other than the label (AutoAttack's standard version: 9 targets, 100
iterations, 1 restart each). A target's first restart starts at x0; further
ones start at a random point of the sphere of radius eps / 2 around x0 (as
AutoAttack's code does, whose radius is min(best norm, eps) / 2 and whose best
norm is still unknown at a restart's start).

FAB returns its smallest misclassified point; the audit asks whether that
point lies in the eps-ball, so an example counts as fooled only where the
best norm is <= eps. Runs attack only the examples no earlier run fooled
(gathered out of the batch), and a run stops once all of them are fooled.

Cost: AutoAttack spends a forward pass per iteration on the misclassification
check and a forward-backward pass on the next linearization. Here the
forward-backward pass at x' does both: where x' is not misclassified it is
the next point; where it is, the backward step moves it, and only those
examples pay a second forward-backward pass at the moved point. An example
never misclassified costs num_steps + 1 passes per run (the start's too).

Input gradients that are None or non-finite count as zero and are recorded
per example ('broken'); a zero gradient makes a degenerate hyperplane, the
projection is then zero and FAB stays at x0. 'raised' records whether some
iterate had a larger margin loss max_{j != y} z_j - z_y than x0 (Pintor et
al. 2022: an attack that never moves towards the boundary has failed).
"""
import collections
import math

import tensorflow as tf

from eval.attacks import threat_model

ALPHA_MAX = 0.1
ETA = 1.05
BETA = 0.9
# The random start of restarts after the first: this share of eps from x0.
RESTART_RADIUS = 0.5
# The projection sorts this many of the smallest kinks first (see project_onto_hyperplane).
PARTIAL_KINKS = 128

_State = collections.namedtuple('_State', [
    'step', 'x', 'difference', 'gradient', 'best', 'best_norm', 'raised', 'broken',
    'passes'])
_RunOutcome = collections.namedtuple(
    '_RunOutcome', ['best', 'best_norm', 'raised', 'broken', 'passes'])


def _flat(values):
  """[batch, ...] -> [batch, d]."""
  return tf.reshape(values, [tf.shape(values)[0], -1])


def _norm(delta, norm):
  """Per-example L-inf or L2 norm of [batch, d] values."""
  if norm == 'linf':
    return tf.reduce_max(tf.abs(delta), axis=1)
  return tf.sqrt(tf.reduce_sum(tf.square(delta), axis=1))


def project_onto_hyperplane(points, weights, offsets, norm, clip_min=threat_model.PIXEL_MIN,
                            clip_max=threat_model.PIXEL_MAX, partial=PARTIAL_KINKS):
  """The smallest steps from points onto {u: <w, u> = b} inside the box, per example.

  Solves min |delta|_p subject to <w, delta> = c (c = b - <w, p>) and
  clip_min <= p + delta <= clip_max, exactly, for p = 'linf' or 'l2'. With
  the sign of w flipped so that c >= 0, the room of coordinate i in w's
  direction is r_i = (clip_max - p_i) where w_i > 0, else (p_i - clip_min),
  and the solutions are delta_i = sign(w_i) min(lam q_i, r_i) with q_i = 1
  (L-inf: every coordinate moves lam until its room runs out) or q_i = |w_i|
  (L2: the KKT conditions of the box-constrained least norm). The reach
  h(lam) = sum_i |w_i| min(lam q_i, r_i) grows piecewise linearly, with kinks
  at lam_i = r_i / q_i; sorting the kinks finds the segment where h = c and
  solves it. When the hyperplane misses the box (h never reaches c), the
  steps go to the box's corner that gets closest, every coordinate at its
  room.

  The solution needs the sorted kinks only up to its segment: the `partial`
  smallest are sorted first (a top_k of `partial`, not a sort of all d), and
  only the rows whose segment lies beyond them sort all.

  Args:
    points: [batch, d] points inside the box.
    weights: [batch, d] hyperplane normals w (all zeros: delta = 0).
    offsets: [batch] right-hand sides b.
    norm: 'linf' or 'l2'.
    clip_min: lowest pixel value.
    clip_max: highest pixel value.
    partial: how many of the smallest kinks to try before a full sort.

  Returns:
    [batch, d] steps delta.
  """
  gap = offsets - tf.reduce_sum(weights * points, axis=1)
  weights = tf.where(gap[:, None] < 0, -weights, weights)
  gap = tf.abs(gap)
  size = tf.abs(weights)
  room = tf.where(weights > 0, clip_max - points, points - clip_min)
  speed = tf.ones_like(size) if norm == 'linf' else size
  moving = speed > 0
  kinks = tf.where(moving, room / tf.where(moving, speed, tf.ones_like(speed)), math.inf)
  slopes = size * speed
  width = tf.shape(points)[1]
  lam, found = _segment_solution(kinks, slopes, gap, tf.minimum(partial, width))
  beyond = tf.where(tf.logical_not(found))[:, 0]

  def sort_all():
    return _segment_solution(tf.gather(kinks, beyond), tf.gather(slopes, beyond),
                             tf.gather(gap, beyond), width)[0]

  lam = tf.tensor_scatter_nd_update(lam, beyond[:, None], tf.cond(
      tf.size(beyond) > 0, sort_all, lambda: tf.zeros([0])))
  return tf.sign(weights) * tf.minimum(lam[:, None] * speed, room)


def _segment_solution(kinks, slopes, gap, count):
  """The lam where h(lam) = gap, from the `count` smallest kinks, and whether it lies among them.

  Args:
    kinks: [rows, d] kinks lam_i (inf where a coordinate never moves).
    slopes: [rows, d] |w_i| q_i, the growth of h while coordinate i moves.
    gap: [rows] the c to reach.
    count: how many of the smallest kinks to sort (d: all).

  Returns:
    ([rows] lam, [rows] bool found): lam is exact where found, that is where
    h reaches c at or before the count-th kink; with count = d a row h never
    reaches gets the farthest kink (the box's closest corner) and is found.
  """
  everything = tf.equal(count, tf.shape(kinks)[1])
  descending, order = tf.math.top_k(-kinks, k=count)
  kinks = -descending
  finite = tf.math.is_finite(kinks)
  picked = tf.tensor_scatter_nd_update(
      tf.zeros_like(slopes, tf.bool), tf.stack(
          [tf.broadcast_to(tf.range(tf.shape(order)[0])[:, None], tf.shape(order)), order], -1),
      tf.ones_like(order, tf.bool))
  unsorted = tf.reduce_sum(tf.where(picked, 0.0, slopes), axis=1)
  slopes = tf.gather(slopes, order, batch_dims=1)
  # Each coordinate's reach at its room, |w_i| r_i = slope_i * kink_i (0 where it never moves).
  full = tf.where(finite, slopes * kinks, 0.0)
  filled_after = tf.cumsum(full, axis=1)
  growing_from = unsorted[:, None] + tf.cumsum(slopes, axis=1, reverse=True)
  # h at each kink: coordinates up to it full, the rest still growing with lam.
  reach = filled_after + tf.where(finite, kinks, 0.0) * (growing_from - slopes)
  below = tf.reduce_sum(tf.cast(reach < gap[:, None], tf.int32), axis=1)
  segment = tf.minimum(below, count - 1)[:, None]
  filled = tf.gather(filled_after - full, segment, batch_dims=1)[:, 0]
  growing = tf.gather(growing_from, segment, batch_dims=1)[:, 0]
  lam = (gap - filled) / tf.maximum(growing, 1e-30)
  farthest = tf.reduce_max(tf.where(finite, kinks, 0.0), axis=1)
  lam = tf.where(tf.logical_and(everything, below >= count), farthest, lam)
  return lam, tf.logical_or(everything, below < count)


def _where(mask, a, b):
  """tf.where with a [batch] mask selecting whole examples of [batch, ...] tensors."""
  shape = tf.concat([tf.shape(mask), tf.ones([a.shape.rank - 1], tf.int32)], 0)
  return tf.where(tf.reshape(mask, shape), a, b)


class _Run:
  """One FAB run on a batch towards one target per example: its while_loop."""

  def __init__(self, model, x0, labels, targets, clean_margin, norm, epsilon, num_steps):
    self.model, self.x0, self.labels, self.targets = model, x0, labels, targets
    self.clean_margin = clean_margin
    self.norm, self.epsilon, self.num_steps = norm, epsilon, num_steps

  def evaluate(self, x, labels, targets):
    """At x: f = z_y - z_t, its guarded input gradient, broken, misclassified, margin loss."""
    def difference(logits):
      return (tf.gather(logits, labels, batch_dims=1)
              - tf.gather(logits, targets, batch_dims=1))

    logits, value, gradient, broken = self.model.loss_and_gradient(difference, x)
    wrong = tf.not_equal(tf.argmax(logits, -1, output_type=tf.int32), labels)
    return value, gradient, broken, wrong, threat_model.margin(logits, labels)

  def propose(self, state):
    """The step of the module docstring from the linearization at state.x."""
    x, x0, w = _flat(state.x), _flat(self.x0), _flat(state.gradient)
    # pi: <w, u> = <w, x> - f(x); both points are projected in one call.
    offsets = tf.reduce_sum(w * x, axis=1) - state.difference
    steps = project_onto_hyperplane(tf.concat([x, x0], 0), tf.concat([w, w], 0),
                                    tf.concat([offsets, offsets], 0), self.norm)
    delta, delta0 = tf.split(steps, 2)
    size = tf.maximum(_norm(delta, self.norm), 1e-8)
    size0 = tf.maximum(_norm(delta0, self.norm), 1e-8)
    alpha = tf.minimum(size / (size + size0), ALPHA_MAX)[:, None]
    moved = (1.0 - alpha) * (x + ETA * delta) + alpha * (x0 + ETA * delta0)
    return tf.reshape(threat_model.clip_pixels(moved), tf.shape(state.x))

  def step(self, state):
    """One iteration: propose, keep the best misclassified point, step back from it."""
    x = self.propose(state)
    difference, gradient, broken, wrong, margin = self.evaluate(x, self.labels, self.targets)
    size = _norm(_flat(x - self.x0), self.norm)
    better = tf.logical_and(wrong, size < state.best_norm)
    # Where x is misclassified the next point is the backward step, linearized anew.
    back = tf.where(wrong)[:, 0]
    stepped = self.x0 + BETA * (x - self.x0)
    back_difference, back_gradient, back_broken = self.linearize_some(stepped, back)

    def put(full, part):
      return tf.tensor_scatter_nd_update(full, back[:, None], part)

    return _State(
        step=state.step + 1, x=_where(wrong, stepped, x),
        difference=put(difference, back_difference), gradient=put(gradient, back_gradient),
        best=_where(better, x, state.best), best_norm=tf.where(better, size, state.best_norm),
        raised=tf.logical_or(state.raised, margin > self.clean_margin),
        broken=tf.logical_or(state.broken, put(broken, back_broken)),
        passes=state.passes + tf.shape(x)[0] + tf.shape(back)[0])

  def linearize_some(self, x, chosen):
    """f, its gradient and broken at x[chosen] only; no pass at all when none is chosen."""
    def evaluate():
      return self.evaluate(tf.gather(x, chosen), tf.gather(self.labels, chosen),
                           tf.gather(self.targets, chosen))[:3]

    def nothing():
      return (tf.zeros([0]), tf.zeros_like(tf.gather(x, chosen)), tf.zeros([0], tf.bool))

    return tf.cond(tf.size(chosen) > 0, evaluate, nothing)

  def outcome(self, start):
    """All iterations from `start`, in one while_loop."""
    difference, gradient, broken, wrong, _ = self.evaluate(start, self.labels, self.targets)
    size = _norm(_flat(start - self.x0), self.norm)
    first = _State(
        step=tf.constant(0), x=start, difference=difference, gradient=gradient,
        best=_where(wrong, start, self.x0),
        best_norm=tf.where(wrong, size, tf.fill(tf.shape(size), math.inf)),
        raised=tf.zeros_like(wrong), broken=broken, passes=tf.shape(start)[0])

    def keep_going(state):
      return tf.logical_and(state.step < self.num_steps,
                            tf.logical_not(tf.reduce_all(state.best_norm <= self.epsilon)))

    final, = tf.while_loop(keep_going, lambda state: (self.step(state),), (first,),
                           parallel_iterations=1)
    return _RunOutcome(final.best, final.best_norm, final.raised, final.broken, final.passes)


def random_start(x0, norm, radius, seed):
  """A seeded random point at distance `radius` from x0 (L-inf or L2), in the box."""
  if norm == 'linf':
    direction = tf.random.stateless_uniform(tf.shape(x0), seed, -1.0, 1.0)
  else:
    direction = tf.random.stateless_normal(tf.shape(x0), seed)
  size = tf.reshape(_norm(_flat(direction), norm), [-1, 1, 1, 1])
  return threat_model.clip_pixels(x0 + radius * direction / tf.maximum(size, 1e-12))


def _check_arguments(norm, epsilon, num_steps, num_restarts, num_targets):
  threat_model.require_graph_mode('FAB')
  threat_model.check_norm(norm)
  threat_model.radius(epsilon)
  threat_model.check_num_steps(num_steps)
  threat_model.check_num_steps(num_restarts, 'num_restarts')
  threat_model.check_num_steps(num_targets, 'num_targets')


def _num_classes(logits):
  num_classes = logits.shape[-1]
  threat_model.require(num_classes is not None and num_classes >= 2,
                       'FAB needs logits with a static number (>= 2) of classes, got shape %s'
                       % logits.shape)
  return num_classes


def fab_attack(logits_fn, x, labels, *, norm, epsilon, num_steps=100, num_restarts=1,
               num_targets=9, seed=(0, 0)):
  """Builds targeted FAB on a batch; all runs and iterations inside one `tf.while_loop`.

  Args:
    logits_fn: `logits_fn(images)` building logits for float pixels in [0, 255].
    x: [batch, H, W, C] clean pixels.
    labels: [batch] int true labels.
    norm: 'linf' or 'l2'.
    epsilon: the radius in pixel units at which an example counts as fooled
      (a number, or a scalar tensor checked by whoever feeds it).
    num_steps: iterations per run.
    num_restarts: runs per target; the first from x, the others from random
      points at distance eps / 2.
    num_targets: how many of the other classes to aim at, highest clean
      logits first; at most the number of other classes are used.
    seed: shape-[2] int seed (tuple or tensor); run r draws its random start
      from the stateless seed fold_in(seed, r).

  Returns:
    A dict of tensors: 'adversarial' ([batch, ...]: FAB's smallest
    misclassified point where that lies in the eps-ball, else x), 'fooled'
    ([batch] bool: it does), 'distance' ([batch] float: the smallest norm of a
    misclassified point found, inf if none; 0 for clean-misclassified examples,
    which are never attacked), 'raised', 'broken' ([batch] bool), and
    'gradient_passes' (int32 scalar: per-example forward-backward passes).

  Raises:
    ValueError: an argument is out of range, or the model has fewer than 2 classes.
  """
  _check_arguments(norm, epsilon, num_steps, num_restarts, num_targets)
  epsilon = threat_model.radius(epsilon)
  x = tf.cast(x, tf.float32)
  labels = tf.cast(labels, tf.int32)
  model = threat_model.ModelUnderAttack(logits_fn, x)
  num_targets = min(num_targets, _num_classes(model.clean_logits) - 1)
  targets = threat_model.top_other_classes(model.clean_logits, labels, num_targets)
  seed = tf.convert_to_tensor(seed)
  wrong = tf.not_equal(tf.argmax(model.clean_logits, -1, output_type=tf.int32), labels)
  clean_margin = threat_model.margin(model.clean_logits, labels)

  def attack_survivors(run, distance, adversarial, raised, broken, passes):
    active = tf.where(distance > epsilon)[:, 0]
    x0 = tf.gather(x, active)
    start = tf.cond(tf.equal(run % num_restarts, 0), lambda: x0, lambda: random_start(
        x0, norm, RESTART_RADIUS * epsilon, tf.random.experimental.stateless_fold_in(seed, run)))
    outcome = _Run(model, x0, tf.gather(labels, active),
                   tf.gather(targets[:, run // num_restarts], active),
                   tf.gather(clean_margin, active), norm, epsilon, num_steps).outcome(start)
    better = outcome.best_norm < tf.gather(distance, active)

    def put(full, part):
      return tf.tensor_scatter_nd_update(full, active[:, None], part)

    return (run + 1,
            put(distance, tf.where(better, outcome.best_norm, tf.gather(distance, active))),
            put(adversarial, _where(better, outcome.best, tf.gather(adversarial, active))),
            put(raised, tf.logical_or(tf.gather(raised, active), outcome.raised)),
            put(broken, tf.logical_or(tf.gather(broken, active), outcome.broken)),
            passes + outcome.passes)

  def keep_going(run, distance, *_):
    return tf.logical_and(run < num_targets * num_restarts,
                          tf.logical_not(tf.reduce_all(distance <= epsilon)))

  no = tf.zeros_like(wrong)
  distance = tf.where(wrong, 0.0, tf.fill(tf.shape(wrong), math.inf))
  _, distance, adversarial, raised, broken, passes = tf.while_loop(
      keep_going, attack_survivors, (tf.constant(0), distance, x, no, no, tf.constant(0)),
      parallel_iterations=1)
  fooled = distance <= epsilon
  return {'adversarial': tf.stop_gradient(_where(fooled, adversarial, x)), 'fooled': fooled,
          'distance': distance, 'raised': raised, 'broken': broken, 'gradient_passes': passes}
