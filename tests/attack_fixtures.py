"""Tiny models whose exact robust accuracy is known, for the attack and audit tests.

A linear model z = W (x - 128) + b on 4x4x3 images has a closed-form worst case: per
wrong class j, the margin z_y - z_j is linear in x, so its minimum over the
L-inf ball intersected with the pixel box [0, 255] takes, per coordinate, the
end of [max(x - eps, 0), min(x + eps, 255)] that lowers it most; over an L2
ball that the box does not cut (pixels in [eps, 255 - eps]) it is
z_y - z_j - eps |w_y - w_j|_2. An example is robust iff every such minimum is
positive. `clear_cut_examples` keeps only examples whose worst margin lies
well away from 0, so a sound attack must get every one of them right.

The same weights behind a broken input layer keep the same exact answer:
`tf.stop_gradient` (no gradient path), a layer whose gradient is NaN, and
`tf.round` on integer images with an integer radius (the ball's corners are
integers, so rounding cannot move the worst case).
"""
import numpy as np
import tensorflow as tf

SHAPE = (4, 4, 3)
DIMS = int(np.prod(SHAPE))
NUM_CLASSES = 10


@tf.custom_gradient
def nan_gradient(x):
  """The identity, whose gradient is NaN everywhere."""
  def grad(upstream):
    return upstream * np.float32('nan')
  return tf.identity(x), grad


# Each input layer in TensorFlow and its forward pass in numpy.
INPUT_LAYERS = {
    'identity': (tf.identity, lambda x: x),
    'stop_gradient': (tf.stop_gradient, lambda x: x),
    'nan_gradient': (nan_gradient, lambda x: x),
    'round': (tf.round, np.round),  # Both round halves to even.
}


class LinearModel:
  """z = scale * (W (x - 128) + b), with an optional broken input layer."""

  def __init__(self, seed=0, scale=1.0, input_layer='identity'):
    rng = np.random.RandomState(seed)
    self.weights = rng.normal(0, 0.02, (DIMS, NUM_CLASSES)).astype(np.float32)
    self.bias = rng.normal(0, 0.5, NUM_CLASSES).astype(np.float32)
    self.scale = np.float32(scale)
    self.input_layer, self.numpy_input_layer = INPUT_LAYERS[input_layer]

  def logits_fn(self, x):
    flat = tf.reshape(self.input_layer(x), [-1, DIMS]) - 128.0
    return self.scale * (tf.matmul(flat, self.weights) + self.bias)

  def logits(self, images):
    """float64 logits (without the scale, which cannot change a class)."""
    flat = self.numpy_input_layer(images.reshape(len(images), -1).astype(np.float64))
    return (flat - 128.0) @ self.weights + self.bias

  def predict(self, images):
    return np.argmax(self.logits(images), axis=1)

  def worst_margins(self, images, labels, norm, epsilon):
    """The exact minimum over the threat model of z_y - max_{j != y} z_j (module doc)."""
    flat = images.reshape(len(images), -1).astype(np.float64)
    logits, rows = self.logits(images), np.arange(len(images))
    low, high = np.maximum(-epsilon, -flat), np.minimum(epsilon, 255.0 - flat)
    worst = np.full(len(images), np.inf)
    for j in range(NUM_CLASSES):
      v = self.weights[:, labels].T.astype(np.float64) - self.weights[:, j]
      if norm == 'linf':
        drop = np.minimum(v * low, v * high).sum(1)
      else:
        drop = -epsilon * np.sqrt(np.square(v).sum(1))
      margin = logits[rows, labels] - logits[:, j] + drop
      worst = np.where(labels == j, worst, np.minimum(worst, margin))
    return worst


def clear_cut_examples(model, norm, epsilon, count, seed=0, gap=0.5, misclassified=2):
  """Images and labels whose robustness at epsilon is clear-cut, and the truth.

  Half of the clean-correct examples are robust (worst margin > gap), half
  are not (worst margin < -gap); `misclassified` more carry a wrong label.
  Pixels are integers; for L2 they stay in [64, 192] so that a ball of radius
  up to 64 lies inside the pixel box.

  Returns:
    (float32 images [count + misclassified, ...], int32 labels, bool robust).
  """
  rng = np.random.RandomState(seed)
  low, high = (0, 256) if norm == 'linf' else (64, 193)
  pool = rng.randint(low, high, (40 * count,) + SHAPE).astype(np.float32)
  labels = model.predict(pool).astype(np.int32)
  worst = model.worst_margins(pool, labels, norm, epsilon)
  robust = np.flatnonzero(worst > gap)[:count // 2]
  fragile = np.flatnonzero(worst < -gap)[:count - count // 2]
  assert len(robust) + len(fragile) == count, 'widen the pool'
  wrong = np.setdiff1d(np.arange(len(pool)), np.concatenate([robust, fragile]))[:misclassified]
  order = rng.permutation(np.concatenate([robust, fragile, wrong]))
  images, labels = pool[order], labels[order]
  labels[np.isin(order, wrong)] = (labels[np.isin(order, wrong)] + 1) % NUM_CLASSES
  return images, labels, np.isin(order, robust)


def check_witnesses(images, adversarial, labels, model, norm, epsilon, fooled):
  """Asserts every fooled example's witness is in the ball and range and misclassified."""
  delta = (adversarial[fooled].astype(np.float64) - images[fooled]).reshape(fooled.sum(), -1)
  size = np.abs(delta).max(1) if norm == 'linf' else np.sqrt(np.square(delta).sum(1))
  assert np.all(size <= epsilon * (1 + 1e-6) + 1e-3)
  assert adversarial.min() >= 0.0 and adversarial.max() <= 255.0
  assert np.all(model.predict(adversarial[fooled]) != labels[fooled])
