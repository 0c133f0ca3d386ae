"""What every attack shares: the threat model, losses and a guarded input gradient.

A model under attack is a `logits_fn(images)` building logits for a batch of
float pixels in [0, 255] (the models normalize inside). The white-box attacks
(eval.pgd, eval.attacks.apgd) ascend a per-example loss along its input gradient; the
gradient-free one (eval.attacks.square) only reads the loss. A model can break the
gradient in two ways an evaluation must survive and record rather than crash
on: no gradient path at all (`tf.gradients` gives None: a `stop_gradient` or a
non-differentiable op) and non-finite values. Both become a zero gradient
here, with a per-example flag saying so.

Radii are in pixel units; `project` maps a point back into the ball around the
clean image and into the pixel range (L-inf: clip per coordinate; L2: scale
the perturbation down to radius eps). Given a per-channel `scale` s, `project`
and `random_point` measure the ball on delta / s instead (eval.pgd.space:
radii in the model's normalized input units, s its per-channel std).
"""
import math

import tensorflow as tf

from eval.kit import checks

PIXEL_MIN = 0.0
PIXEL_MAX = 255.0
# Keeps per-example L2 normalizations finite when a norm is zero.
TINY_NORM = 1e-12


# The argument checks live in eval.kit.checks (no TensorFlow); the attacks reach
# them through this module.
NORMS = checks.NORMS
MAX_SEED = checks.MAX_SEED
require = checks.require
is_finite_real = checks.is_finite_real
is_int = checks.is_int
check_norm = checks.check_norm
check_epsilon = checks.check_epsilon
check_num_steps = checks.check_num_steps
check_step_size = checks.check_step_size
check_seed = checks.check_seed


def require_graph_mode(what):
  """Raises ValueError in eager mode: the attacks build graph ops."""
  require(not tf.executing_eagerly(),
          '%s builds graph-mode ops (tf.gradients): call it inside a tf.Graph, '
          'e.g. in an Estimator model_fn' % what)


# ---------------------------------------------------------------------------
# Geometry of the threat model.


def example_norm(values):
  """Per-example L2 norm over all but the batch axis, shaped to broadcast."""
  axes = list(range(1, values.shape.rank))
  return tf.sqrt(tf.reduce_sum(tf.square(values), axis=axes, keepdims=True))


def clip_pixels(x, clip_min=PIXEL_MIN, clip_max=PIXEL_MAX):
  """Clips x to the pixel range."""
  return tf.clip_by_value(x, clip_min, clip_max)


def project(x, x0, norm, epsilon, clip_min=PIXEL_MIN, clip_max=PIXEL_MAX, scale=None):
  """The point of the eps-ball around x0 (intersected with the pixel range) for x.

  L-inf is the exact projection; for L2 the perturbation is scaled down to
  radius eps and then clipped to the pixel range, which keeps it in the ball.
  `epsilon` may be a scalar or broadcast per example. With a per-channel
  `scale` s (broadcast on the last axis, s > 0) the ball is {delta:
  |delta / s| <= eps}: L-inf allows |delta_c| <= eps * s_c.
  """
  if norm == 'linf':
    bound = epsilon if scale is None else epsilon * scale
    return clip_pixels(x0 + tf.clip_by_value(x - x0, -bound, bound), clip_min, clip_max)
  delta = x - x0
  size = example_norm(delta if scale is None else delta / scale)
  factor = tf.minimum(1.0, epsilon / tf.maximum(size, TINY_NORM))
  return clip_pixels(x0 + delta * factor, clip_min, clip_max)


def random_point(x0, norm, epsilon, seed=None, clip_min=PIXEL_MIN, clip_max=PIXEL_MAX,
                 scale=None):
  """A uniform point of the L-inf cube or the L2 ball around x0, in pixel range.

  Args:
    x0: [batch, ...] float centres.
    norm: 'linf' or 'l2'.
    epsilon: the radius.
    seed: shape-[2] int seed of stateless random ops (repeatable), or None for
      the graph-seeded stateful ones.
    clip_min: lowest pixel value.
    clip_max: highest pixel value.
    scale: optional per-channel scale s as for `project`: the point is
      uniform in the ball of delta / s, then mapped back by s.
  """
  shape = tf.shape(x0)
  if seed is None:
    seeds = (None, None)
    uniform, normal = tf.random.uniform, tf.random.normal
  else:
    seeds = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
    uniform, normal = tf.random.stateless_uniform, tf.random.stateless_normal
  if norm == 'linf':
    delta = uniform(shape, minval=-epsilon, maxval=epsilon, dtype=x0.dtype, seed=seeds[0])
    return clip_pixels(x0 + _scaled(delta, scale), clip_min, clip_max)
  # Uniform in the ball: a uniform direction, radius eps * u^(1/dims).
  direction = normal(shape, dtype=x0.dtype, seed=seeds[0])
  direction /= tf.maximum(example_norm(direction), TINY_NORM)
  dims = tf.cast(tf.reduce_prod(shape[1:]), x0.dtype)
  u = uniform(tf.concat([shape[:1], tf.ones_like(shape[1:])], 0), dtype=x0.dtype,
              seed=seeds[1])
  return clip_pixels(x0 + _scaled(direction * epsilon * u ** (1.0 / dims), scale),
                     clip_min, clip_max)


def _scaled(delta, scale):
  """A perturbation in scaled coordinates (delta / scale) mapped back; None: unchanged."""
  return delta if scale is None else delta * scale


# ---------------------------------------------------------------------------
# The attacker's per-example losses (higher = closer to fooling the model).


def cross_entropy(logits, labels):
  """CE of the true label; an untargeted attack ascends it."""
  return tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits)


def stable_cross_entropy(logits, labels):
  """`cross_entropy` computed as softplus(logsumexp_{j != y} z_j - z_y).

  The same function, but a confident example keeps its tiny positive loss
  where the fused op's float32 rounding makes it exactly 0 (once the margin
  passes ~17), so an attack sees its progress and can keep its best point.
  Only a far larger margin (~100, e.g. logits scaled by 1e4) still underflows.
  """
  is_label = tf.one_hot(labels, tf.shape(logits)[-1], on_value=True, off_value=False)
  others = tf.where(is_label, tf.fill(tf.shape(logits), -math.inf), logits)
  return tf.nn.softplus(tf.reduce_logsumexp(others, axis=-1) - _true_logit(logits, labels))


def targeted_cross_entropy(logits, targets):
  """-CE of the target; ascending it descends CE(target)."""
  return -tf.nn.sparse_softmax_cross_entropy_with_logits(labels=targets, logits=logits)


def _sorted_logits(logits):
  return tf.sort(logits, axis=-1, direction='DESCENDING')


def _true_logit(logits, labels):
  return tf.gather(logits, labels, axis=1, batch_dims=1)


def margin(logits, labels):
  """max_{j != y} z_j - z_y: positive exactly when the example is misclassified."""
  num_classes = tf.shape(logits)[-1]
  others = logits - 1e9 * tf.one_hot(labels, num_classes, dtype=logits.dtype)
  return tf.reduce_max(others, axis=-1) - _true_logit(logits, labels)


def dlr(logits, labels):
  """Croce & Hein (2020) eq. 6: -(z_y - max_{j!=y} z_j) / (z_pi1 - z_pi3).

  Invariant to shifting and rescaling the logits, so a model that saturates
  its softmax (vanishing CE gradients) cannot hide behind the scale.
  """
  ordered = _sorted_logits(logits)
  return margin(logits, labels) / (ordered[:, 0] - ordered[:, 2] + 1e-12)


def top_other_classes(logits, labels, count):
  """[batch, count] classes with the highest logits other than the label, best first.

  The targets of APGD-T and FAB-T, as AutoAttack picks them.
  """
  is_label = tf.one_hot(labels, logits.shape[-1], on_value=True, off_value=False)
  others = tf.where(is_label, tf.fill(tf.shape(logits), -math.inf), logits)
  return tf.math.top_k(others, k=count).indices


def targeted_dlr(logits, labels, targets):
  """Croce & Hein (2020) eq. 7: -(z_y - z_t) / (z_pi1 - (z_pi3 + z_pi4) / 2)."""
  ordered = _sorted_logits(logits)
  scale = ordered[:, 0] - 0.5 * (ordered[:, 2] + ordered[:, 3]) + 1e-12
  return (_true_logit(logits, targets) - _true_logit(logits, labels)) / scale


# ---------------------------------------------------------------------------
# The model.


class ModelUnderAttack:
  """A logits function with the attacker's view of it: logits, losses, gradients.

  Args:
    logits_fn: `logits_fn(images)` building logits for float pixels; it is
      called once at construction (outside any control flow) so that it can
      create its variables there.
    x: a [batch, ...] float tensor to build that first call on.
  """

  def __init__(self, logits_fn, x):
    self._logits_fn = logits_fn
    self.clean_logits = self.logits(x)

  def logits(self, x):
    """The model's float32 logits on x."""
    return tf.cast(self._logits_fn(x), tf.float32)

  def predict(self, x):
    """The model's top-1 class on x, int32."""
    return tf.argmax(self.logits(x), axis=-1, output_type=tf.int32)

  def loss_and_gradient(self, loss_fn, x):
    """A per-example loss, its input gradient, and where that gradient failed.

    Args:
      loss_fn: `loss_fn(logits)` -> [batch] per-example losses.
      x: [batch, ...] float pixels.

    Returns:
      (logits, loss, gradient, broken): `gradient` has x's shape, zero where
      the model gave none or a non-finite one; `broken` is [batch] bool, True
      for those examples (every example when there is no gradient path).
    """
    logits = self.logits(x)
    loss = loss_fn(logits)
    gradient = tf.gradients(tf.reduce_sum(loss), x)[0]
    batch = tf.shape(x)[:1]
    if gradient is None:
      return logits, loss, tf.zeros_like(x), tf.ones(batch, tf.bool)
    axes = list(range(1, x.shape.rank))
    finite = tf.reduce_all(tf.math.is_finite(gradient), axis=axes)
    gradient = tf.where(tf.reshape(finite, [-1] + [1] * len(axes)), gradient,
                        tf.zeros_like(gradient))
    return logits, loss, gradient, tf.logical_not(finite)

  def gradient_health(self, loss_fn, x):
    """Per example, how the input gradient of a loss fails, if it does.

    The audit's indicators tell the three failures apart (a missing gradient
    path, non-finite values, an exact zero such as a saturated softmax gives);
    `loss_and_gradient` merges them into one zero gradient.

    Args:
      loss_fn: `loss_fn(logits)` -> [batch] per-example losses.
      x: [batch, ...] float pixels.

    Returns:
      A dict of [batch] bool tensors: 'none' (no gradient path), 'nonfinite'
      (some entry is NaN or infinite) and 'zero' (every entry is exactly 0).
    """
    gradient = tf.gradients(tf.reduce_sum(loss_fn(self.logits(x))), x)[0]
    batch = tf.shape(x)[:1]
    if gradient is None:
      no = tf.zeros(batch, tf.bool)
      return {'none': tf.ones(batch, tf.bool), 'nonfinite': no, 'zero': no}
    axes = list(range(1, x.shape.rank))
    return {'none': tf.zeros(batch, tf.bool),
            'nonfinite': tf.logical_not(tf.reduce_all(tf.math.is_finite(gradient), axis=axes)),
            'zero': tf.reduce_all(tf.equal(gradient, 0.0), axis=axes)}


def radius(value, name='epsilon'):
  """An attack radius as the attacks take it: a checked float, or a float32 tensor.

  A scalar tensor (e.g. a placeholder) lets one graph serve every radius of a
  sweep; whoever feeds it checks the values.
  """
  if isinstance(value, (tf.Tensor, tf.Variable)):
    require(value.shape.rank in (None, 0), '%s must be a scalar, got shape %s'
            % (name, value.shape))
    return tf.cast(value, tf.float32)
  check_epsilon(value, name)
  return float(value)
