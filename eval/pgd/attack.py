"""PGD in the graph (sections 2.4, 3.2): the attack only, all steps in one loop.

The attack works in pixel units [0, 255] (the models normalize inside) on the
eval-mode model (CEB: z = f(x), the encoder's mean). All steps run inside one
`tf.while_loop`, so a batch costs a single `session.run`:

* L-inf step: x <- clip[0,255](x0 + clip(x + a*sign(g) - x0, -eps, eps)).
* L2 step: x <- x + a*g/|g|_2; d <- d*min(1, eps/|d|_2); clip to [0, 255],
  with per-example norms and a guard for zero gradients.

g is the gradient of CE(true label) (untargeted: ascend) or of -CE(target)
(targeted: descend CE(target)).

With `channel_scale` s (per channel, e.g. the model's input std: see
eval.pgd.space), eps and a are measured in u = x / s instead of pixels: the
same steps taken in u and mapped back, i.e. L-inf: x <- x + a*s*sign(g),
|delta_c| <= eps*s_c; L2: x <- x + a*s*(s g)/|s g|_2, |delta / s|_2 <= eps.
Pixels (s = None) run exactly the ops above. The step size defaults to the paper's
4/3*eps/n (eval.settings). The paper names no random start, so it is off by
default; `pgd_worst_case` runs restarts and keeps the worst case per example.

The threat model, the losses and the guarded input gradient come from
eval.attacks.threat_model: a model with no gradient path, or a non-finite one,
gets a zero gradient there, so PGD leaves those examples where they start.
"""
import dataclasses
from typing import Optional, Tuple

import tensorflow as tf

from eval import settings
from eval.attacks import threat_model


@dataclasses.dataclass(frozen=True)
class _Attack:
  """One validated PGD configuration; builds start points, steps and the loop."""
  norm: str
  epsilon: float
  num_steps: int
  step_size: float
  clip_min: float
  clip_max: float
  channel_scale: Optional[Tuple[float, ...]] = None

  def scale(self, dtype):
    """The per-channel scale as a tensor of `dtype`, or None in pixel units."""
    if self.channel_scale is None:
      return None
    return tf.constant(self.channel_scale, dtype)

  def random_start(self, x0, seed):
    """A uniform point of the ball around x0, in pixel range."""
    return threat_model.random_point(x0, self.norm, self.epsilon, seed, self.clip_min,
                                     self.clip_max, scale=self.scale(x0.dtype))

  def step(self, x, x0, g):
    """One ascent step along g followed by the projection onto the ball and range."""
    scale = self.scale(x.dtype)
    if scale is not None:
      g = g * scale  # The gradient with respect to u = x / scale.
    if self.norm == 'linf':
      step = self.step_size * tf.sign(g)
    else:
      step = self.step_size * g / tf.maximum(threat_model.example_norm(g), threat_model.TINY_NORM)
    if scale is not None:
      step = step * scale  # The step in u, in pixels.
    return threat_model.project(x + step, x0, self.norm, self.epsilon, self.clip_min, self.clip_max,
                                scale=scale)

  def run(self, model, x0, loss_fn, start):
    """All `num_steps` steps from `start` in one while_loop."""
    def body(i, x):
      _, _, g, _ = model.loss_and_gradient(loss_fn, x)
      return i + 1, self.step(x, x0, g)

    _, x_adv = tf.while_loop(lambda i, _: i < self.num_steps, body,
                             (tf.constant(0), start), parallel_iterations=1)
    return tf.stop_gradient(x_adv)


def _check_channel_scale(channel_scale):
  """None, or the per-channel scale as a tuple of finite floats > 0."""
  if channel_scale is None:
    return None
  threat_model.require(isinstance(channel_scale, (list, tuple)) and channel_scale
                       and all(threat_model.is_finite_real(s) and s > 0 for s in channel_scale),
                       'channel_scale=%r must be None or a non-empty list of finite numbers > 0'
                       % (channel_scale,))
  return tuple(float(s) for s in channel_scale)


def _make_attack(norm, epsilon, num_steps, step_size, targeted, target_labels,
                 clip_min, clip_max, channel_scale=None):
  """Validates the attack arguments and returns an `_Attack`."""
  threat_model.require_graph_mode('PGD')
  threat_model.check_norm(norm)
  threat_model.check_epsilon(epsilon)
  threat_model.check_num_steps(num_steps)
  threat_model.check_step_size(step_size)
  threat_model.require(not targeted or target_labels is not None,
                       'targeted=True needs target_labels')
  threat_model.require(targeted or target_labels is None,
                       'target_labels were given but targeted=False')
  finite = threat_model.is_finite_real
  threat_model.require(finite(clip_min) and finite(clip_max) and clip_min < clip_max,
                       'clip_min=%r, clip_max=%r must be finite with clip_min < clip_max'
                       % (clip_min, clip_max))
  if step_size is None:
    step_size = settings.pgd_step_size(epsilon, num_steps)
  return _Attack(norm, float(epsilon), int(num_steps), float(step_size),
                 float(clip_min), float(clip_max), _check_channel_scale(channel_scale))


def _as_pixels(x, attack):
  """The batch as a float tensor, its channels (last axis) checked against the scale."""
  x = tf.convert_to_tensor(x)
  channels = x.shape[-1] if x.shape.rank else None
  threat_model.require(attack.channel_scale is None or channels is None
                       or channels == len(attack.channel_scale),
                       'channel_scale has %s values but the images have %s channels (last axis)'
                       % (len(attack.channel_scale or ()), channels))
  return x if x.dtype.is_floating else tf.cast(x, tf.float32)


def _loss_fn(labels, target_labels):
  """The attacker's per-example loss: CE(label), or -CE(target) if targeted."""
  if target_labels is None:
    return lambda logits: threat_model.cross_entropy(logits, labels)
  return lambda logits: threat_model.targeted_cross_entropy(logits, target_labels)


def pgd_attack(logits_fn, x, labels, *, norm, epsilon, num_steps, step_size=None,
               targeted=False, target_labels=None, random_start=False,
               clip_min=0.0, clip_max=255.0, seed=None, channel_scale=None):
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
    step_size: step a; None means the paper's 4/3 * epsilon / n.
    targeted: descend CE(target_labels) instead of ascending CE(labels).
    target_labels: [batch] int targets; required exactly when targeted.
    random_start: start at a uniform point of the ball instead of x.
    clip_min: lowest pixel value.
    clip_max: highest pixel value.
    seed: optional shape-[2] int seed making the random start stateless (and
      so repeatable); None uses the graph-seeded stateful random ops.
    channel_scale: None (epsilon and step_size in pixels) or one positive
      number per channel (last axis) s: they are measured in x / s, e.g. the
      model's normalized inputs with s its per-channel std (eval.pgd.space).

  Returns:
    The adversarial batch, same shape as x, with no gradient flowing back.

  Raises:
    ValueError: an argument is out of range or inconsistent.
  """
  attack = _make_attack(norm, epsilon, num_steps, step_size, targeted,
                        target_labels, clip_min, clip_max, channel_scale)
  x = _as_pixels(x, attack)
  model = threat_model.ModelUnderAttack(logits_fn, x)
  start = attack.random_start(x, seed) if random_start else x
  return attack.run(model, x, _loss_fn(labels, target_labels), start)


def _check_restarts(num_restarts, random_start):
  threat_model.require(threat_model.is_int(num_restarts) and num_restarts >= 1,
                       'num_restarts=%r must be an integer >= 1' % (num_restarts,))
  threat_model.require(num_restarts == 1 or random_start,
                       'num_restarts=%d needs random_start: without it every restart is the '
                       'same attack' % num_restarts)


def pgd_worst_case(logits_fn, x, labels, *, norm, epsilon, num_steps, step_size=None,
                   target_labels=None, random_start=False, num_restarts=1,
                   seed=None, clip_min=0.0, clip_max=255.0, channel_scale=None):
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
    channel_scale: as for `pgd_attack`.

  Returns:
    A dict of [batch] bool tensors: 'correct' (the true label is predicted
    after every restart) and, when targeted, 'hit' (some restart made the
    model predict the target).

  Raises:
    ValueError: an argument is out of range or inconsistent.
  """
  _check_restarts(num_restarts, random_start)
  targeted = target_labels is not None
  attack = _make_attack(norm, epsilon, num_steps, step_size, targeted,
                        target_labels, clip_min, clip_max, channel_scale)
  x = _as_pixels(x, attack)
  labels = tf.cast(labels, tf.int32)
  if targeted:
    target_labels = tf.cast(target_labels, tf.int32)
  model = threat_model.ModelUnderAttack(logits_fn, x)
  loss_fn = _loss_fn(labels, target_labels)

  def body(restart, correct, hit):
    restart_seed = (None if seed is None
                    else tf.random.experimental.stateless_fold_in(seed, restart))
    start = attack.random_start(x, restart_seed) if random_start else x
    predicted = model.predict(attack.run(model, x, loss_fn, start))
    correct = tf.logical_and(correct, tf.equal(predicted, labels))
    if targeted:
      hit = tf.logical_or(hit, tf.equal(predicted, target_labels))
    return restart + 1, correct, hit

  everywhere = tf.ones_like(labels, dtype=tf.bool)
  _, correct, hit = tf.while_loop(
      lambda restart, *_: restart < num_restarts, body,
      (tf.constant(0), everywhere, tf.logical_not(everywhere)), parallel_iterations=1)
  return dict(correct=correct, hit=hit) if targeted else dict(correct=correct)
