"""The audit's masking checks (eval/audit/checks.py and their indicators).

Each indicator must fire on a model built to trip it: logits with noise
(randomized_logits), an APGD budget too small for a linear model at L2
(not_converged), a quantized input whose gradient is exactly zero
(zero_gradient), a loss whose small steps are trapped where one big step is
not (single_step_beats_iterative), a loss flat at the clean point that noise
climbs (noise_beats_gradient). On a small WRN trained here, none fires.
"""
import attack_fixtures as fixtures
import numpy as np
import pytest
import tensorflow as tf

from eval import audit
from eval.audit import indicators
from eval.audit import specs
from wrn_cifar import wrn_model

tf1 = tf.compat.v1

CHECKS = ('randomized_logits', 'not_converged', 'zero_gradient',
          'single_step_beats_iterative', 'noise_beats_gradient')


def _names(flags):
  return {indicators.flag_name(flag) for flag in flags}


def _small():
  return [specs.Pgd(), specs.Apgd('ce', num_steps=10), specs.Apgd('targeted-dlr', num_steps=10,
                                                                   num_targets=3)]


def test_noisy_logits_fire_randomized_logits_and_ask_for_eot():
  model = fixtures.LinearModel()
  images, labels, _ = fixtures.clear_cut_examples(model, 'linf', 4.0, 8)

  def noisy(x):
    return model.logits_fn(x) + tf.random.normal([tf.shape(x)[0], fixtures.NUM_CLASSES], 0, 0.1)

  result = audit.run_audit(noisy, images, labels, norm='linf', epsilon=4.0, attacks=['pgd20'])
  assert result.indicators['randomized_logits'] > indicators.RANDOMNESS_TOLERANCE
  assert 'randomized_logits' in _names(result.flags)
  assert indicators.EOT_ADVICE in result.verdict
  plain = audit.run_audit(model.logits_fn, images, labels, norm='linf', epsilon=4.0,
                          attacks=['pgd20'])
  assert plain.indicators['randomized_logits'] == 0.0


def test_eot_samples_average_gradients_and_count_their_passes():
  model = fixtures.LinearModel()
  images, labels, truth = fixtures.clear_cut_examples(model, 'linf', 4.0, 8, misclassified=0)
  spec = specs.Apgd('ce', num_steps=5, eot_samples=3)
  assert spec.gradient_budget() == 3 * 6
  result = audit.run_audit(model.logits_fn, images, labels, norm='linf', epsilon=4.0,
                           attacks=[spec])
  # A deterministic model: the mean of three equal gradients finds the exact answer.
  np.testing.assert_array_equal(result.robust, truth)
  assert result.passes['apgd-ce']['gradient'] <= 3 * 6 * len(labels)
  with pytest.raises(ValueError, match='eot_samples'):
    specs.resolve([specs.Apgd('ce', eot_samples=0)])


def test_a_starved_budget_fires_not_converged():
  # L2, one step from a random point of the sphere: the step lands short of
  # the worst case; two steps and two restarts reach it.
  model = fixtures.LinearModel()
  images, labels, _ = fixtures.clear_cut_examples(model, 'l2', 8.0, 32, gap=0.1)
  starved = [specs.Apgd('ce', num_steps=1), specs.Apgd('targeted-dlr', num_steps=1,
                                                       num_targets=1)]
  result = audit.run_audit(model.logits_fn, images, labels, norm='l2', epsilon=8.0,
                           attacks=starved)
  assert result.indicators['not_converged'] > indicators.TOLERANCE
  assert 'not_converged' in _names(result.flags)
  enough = [specs.Apgd('ce', num_steps=20), specs.Apgd('targeted-dlr', num_steps=20, num_targets=3)]
  result = audit.run_audit(model.logits_fn, images, labels, norm='l2', epsilon=8.0,
                           attacks=enough)
  assert result.indicators['not_converged'] <= indicators.TOLERANCE


def test_a_quantized_input_fires_zero_gradient():
  # x - floormod(x, 64) rounds down to a multiple of 64 with an exactly zero
  # gradient (the two terms' gradients cancel), not a missing one.
  model = fixtures.LinearModel()

  def quantized(x):
    return model.logits_fn(x - tf.math.floormod(x, 64.0) + 32.0)

  images, labels, _ = fixtures.clear_cut_examples(model, 'linf', 4.0, 8, misclassified=0)
  labels = np.argmax(model.logits(images - np.mod(images, 64.0) + 32.0), 1).astype(np.int32)
  result = audit.run_audit(quantized, images, labels, norm='linf', epsilon=4.0, attacks=_small())
  assert result.indicators['zero_gradient'] == 1.0
  assert 'zero_gradient' in _names(result.flags)
  assert result.indicators['gradient_none'] == 0.0


def _mean_images(count, value=100.0):
  """Images whose pixel mean is exactly `value` (zero-mean noise around it)."""
  noise = np.random.RandomState(0).uniform(-10, 10, (count,) + fixtures.SHAPE)
  noise -= noise.mean(axis=(1, 2, 3), keepdims=True)
  return (value + noise).astype(np.float32), np.zeros(count, np.int32)


def test_a_trap_for_small_steps_fires_single_step_beats_iterative():
  # Along t = (mean pixel - 100) / eps the loss rises to t = 0.3, falls to
  # t = 0.8, then climbs past the boundary at t ~ 0.87. PGD-20's steps of
  # eps / 15 oscillate around 0.3; FGSM jumps to t = 1.
  epsilon = 8.0

  def trap(x):
    t = (tf.reduce_mean(x, axis=[1, 2, 3]) - 100.0) / epsilon
    height = t - 2.0 * tf.nn.relu(t - 0.3) + 11.0 * tf.nn.relu(t - 0.8)
    return tf.stack([tf.zeros_like(t), height - 0.5], axis=1)

  images, labels = _mean_images(6)
  result = audit.run_audit(trap, images, labels, norm='linf', epsilon=epsilon,
                           attacks=['pgd20'])
  assert result.pgd20_accuracy == 1.0
  assert result.indicators['single_step_beats_iterative'] == 1.0
  assert result.indicators['noise_beats_gradient'] == 0.0
  assert 'single_step_beats_iterative' in _names(result.flags)


def test_a_loss_flat_at_the_clean_point_fires_noise_beats_gradient():
  # The logit of class 1 is the pixels' variance minus 5: zero gradient at a
  # flat image, where PGD and FGSM cannot move, while noise of variance
  # eps^2 / 3 crosses over.
  def variance(x):
    spread = tf.reduce_mean(tf.square(x - tf.reduce_mean(x, axis=[1, 2, 3], keepdims=True)),
                            axis=[1, 2, 3])
    return tf.stack([tf.zeros_like(spread), spread - 5.0], axis=1)

  images = np.full((4,) + fixtures.SHAPE, 100.0, np.float32)
  result = audit.run_audit(variance, images, np.zeros(4, np.int32), norm='linf', epsilon=8.0,
                           attacks=['pgd20'])
  assert result.pgd20_accuracy == 1.0
  assert result.indicators['noise_beats_gradient'] == 1.0
  assert 'noise_beats_gradient' in _names(result.flags)


# ---------------------------------------------------------------------------
# A plain trained WRN: no check fires.


def _blocks(count, seed):
  """32x32 images of 4 classes: a bright quadrant on noise."""
  rng = np.random.RandomState(seed)
  labels = rng.randint(0, 4, count).astype(np.int32)
  images = rng.uniform(40, 120, (count, 32, 32, 3))
  for index, label in enumerate(labels):
    row, col = divmod(label, 2)
    images[index, 16 * row:16 * row + 16, 16 * col:16 * col + 16] += 120
  return images.astype(np.float32), labels


def _tiny_wrn():
  network = wrn_model.wrn(depth=10, width=1)

  def logits_fn(x):
    features = network(x, False)
    with tf1.variable_scope('head', reuse=tf1.AUTO_REUSE):
      return tf1.layers.dense(features, 4, name='logits')

  return logits_fn


def _trained_weights(logits_fn, steps=120):
  images, labels = _blocks(256, seed=1)
  with tf.Graph().as_default():
    tf1.set_random_seed(0)
    x = tf1.placeholder(tf.float32, [None, 32, 32, 3])
    y = tf1.placeholder(tf.int32, [None])
    loss = tf1.losses.sparse_softmax_cross_entropy(y, logits_fn(x))
    train = tf1.train.AdamOptimizer(1e-3).minimize(loss)
    with tf1.Session() as session:
      session.run(tf1.global_variables_initializer())
      for step in range(steps):
        batch = slice(32 * (step % 8), 32 * (step % 8 + 1))
        session.run(train, {x: images[batch], y: labels[batch]})
      return {v.op.name: session.run(v) for v in tf1.trainable_variables()}


@pytest.mark.slow
def test_a_plain_trained_wrn_fires_none_of_the_checks():
  logits_fn = _tiny_wrn()
  weights = _trained_weights(logits_fn)

  def restore(session):
    for variable in tf1.trainable_variables():
      variable.load(weights[variable.op.name], session)

  images, labels = _blocks(24, seed=2)
  result = audit.run_audit(logits_fn, images, labels, norm='linf', epsilon=2.0, restore_fn=restore,
                           attacks=_small() + [specs.Square(num_queries=50)], batch_size=24)
  assert result.clean_accuracy >= 0.9
  assert set(CHECKS) <= set(result.indicators)
  assert not _names(result.flags) & set(CHECKS), result.flags
