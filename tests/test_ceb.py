"""The CEB objective of Listings 2-3 against its closed forms (Eq. 8-9, section 2.3)."""
import math

import numpy as np
import pytest
import tensorflow as tf

from resnet_ceb import ceb

tf1 = tf.compat.v1
BATCH, DIMS, CLASSES = 16, 6, 4


def _session_run(build, fetch_vars=True, seed=0):
  """Builds `build(f, y)` on random inputs in a fresh graph and runs its outputs."""
  rng = np.random.RandomState(seed)
  f = rng.randn(BATCH, DIMS).astype(np.float32) * 3.0
  y = rng.randint(0, CLASSES, BATCH).astype(np.int32)
  with tf.Graph().as_default():
    tf1.set_random_seed(seed)
    out = build(tf.constant(f), tf.constant(y))
    with tf1.Session() as sess:
      sess.run(tf1.global_variables_initializer())
      # Non-zero biases so that mu_y = W[y] + b exercises every parameter.
      for var in tf1.global_variables():
        if 'bias' in var.name:
          sess.run(var.assign(rng.randn(*var.shape.as_list()).astype(np.float32)))
      variables = {v.op.name: v for v in tf1.global_variables()} if fetch_vars else {}
      return f, y, sess.run((out, variables))


def test_rex_equals_closed_form_of_eq_8_9():
  f, _, (out, _) = _session_run(
      lambda f, y: ceb.ceb_head(f, y, CLASSES, True, 0.5))
  eps = out['z'] - f
  expected = 0.5 * np.sum((f - out['mu']) * (f - out['mu'] + 2.0 * eps), axis=-1)
  np.testing.assert_allclose(out['rex'], expected, rtol=1e-4, atol=1e-3)
  # The noise is a real standard-normal sample, not zero.
  assert 0.5 < np.std(eps) < 1.5


def test_mu_is_dense_of_one_hot_with_bias():
  _, y, (out, variables) = _session_run(
      lambda f, y: ceb.ceb_head(f, y, CLASSES, True, 0.5))
  kernel, bias = variables['bzy/dense/kernel'], variables['bzy/dense/bias']
  np.testing.assert_allclose(out['mu'], kernel[y] + bias, rtol=1e-5, atol=1e-5)


def test_hyz_is_cross_entropy_of_classifier_on_sampled_z():
  _, y, (out, variables) = _session_run(
      lambda f, y: ceb.ceb_head(f, y, CLASSES, True, 0.5))
  logits = out['z'] @ variables['cyz/dense/kernel'] + variables['cyz/dense/bias']
  log_softmax = logits - np.log(np.sum(np.exp(logits - logits.max(-1, keepdims=True)),
                                       -1, keepdims=True)) - logits.max(-1, keepdims=True)
  np.testing.assert_allclose(out['hyz'], -log_softmax[np.arange(BATCH), y],
                             rtol=1e-4, atol=1e-4)
  np.testing.assert_allclose(out['logits'], logits, rtol=1e-4, atol=1e-4)


def test_loss_is_mean_of_gamma_rex_plus_hyz_and_tends_to_cross_entropy():
  for gamma in (0.5, 1e-3, 1e-9):
    _, _, (out, _) = _session_run(
        lambda f, y, g=gamma: ceb.ceb_head(f, y, CLASSES, True, g))
    np.testing.assert_allclose(out['loss'], np.mean(gamma * out['rex'] + out['hyz']),
                               rtol=1e-5)
    assert abs(out['loss'] - np.mean(out['hyz'])) <= gamma * np.abs(out['rex']).mean() + 1e-5
  assert abs(out['loss'] - np.mean(out['hyz'])) < 1e-5


def test_cceb_logits_are_gaussian_log_densities_of_class_means():
  _, y, (out, variables) = _session_run(
      lambda f, y: ceb.ceb_head(f, y, CLASSES, True, 0.5, consistent=True))
  mus = variables['bzy/dense/kernel'] + variables['bzy/dense/bias']
  z = out['z']
  log_density = (-0.5 * np.sum((z[:, None, :] - mus[None]) ** 2, axis=-1)
                 - 0.5 * DIMS * math.log(2 * math.pi))
  diff = out['logits'] - log_density
  np.testing.assert_allclose(diff - diff[:, :1], 0.0, atol=1e-3)
  # No separate classifier weights: the classifier is Bayes' rule on b(z|y).
  assert not any(name.startswith('cyz') for name in variables)
  # hzy uses the same mu as the classifier.
  np.testing.assert_allclose(out['hzy'], -log_density[np.arange(BATCH), y],
                             rtol=1e-4, atol=1e-3)


def test_cceb_empirical_prior_adds_log_p_y_as_eq_11():
  counts = [1, 2, 3, 10]  # p(y) = 1/16, 2/16, 3/16, 10/16
  log_prior = ceb.empirical_log_prior(counts)
  np.testing.assert_allclose(log_prior, np.log(np.array(counts) / 16.0), rtol=1e-6)
  # Both heads in one graph share b(z|y)'s variables (AUTO_REUSE) and z = f(x).
  _, y, (heads, variables) = _session_run(lambda f, y: {
      'uniform': ceb.ceb_head(f, y, CLASSES, False, 0.5, consistent=True),
      'empirical': ceb.ceb_head(f, y, CLASSES, False, 0.5, consistent=True,
                                log_prior=log_prior)})
  uniform, empirical = heads['uniform'], heads['empirical']
  mus = variables['bzy/dense/kernel'] + variables['bzy/dense/bias']
  z = uniform['z']
  log_density = (-0.5 * np.sum((z[:, None, :] - mus[None]) ** 2, axis=-1)
                 - 0.5 * DIMS * math.log(2 * math.pi))
  # q(y|z) = softmax(log q(z|y) + log p(y)), written out in float64.
  logits = log_density + np.log(np.array(counts) / 16.0)
  log_q = logits - np.log(np.sum(np.exp(logits - logits.max(-1, keepdims=True)), -1,
                                 keepdims=True)) - logits.max(-1, keepdims=True)
  np.testing.assert_allclose(empirical['hyz'], -log_q[np.arange(BATCH), y], rtol=1e-4,
                             atol=1e-4)
  np.testing.assert_allclose(empirical['logits'] - uniform['logits'],
                             np.broadcast_to(log_prior, (BATCH, CLASSES)), atol=1e-4)
  # The prior moves only the classifier: rex and hzy are those of the uniform prior.
  for key in ('rex', 'hzy', 'hzx'):
    np.testing.assert_array_equal(empirical[key], uniform[key])
  assert not np.allclose(empirical['hyz'], uniform['hyz'], atol=1e-3)


@pytest.mark.parametrize('counts', [[3, 0, 2, 1], []])
def test_empirical_prior_needs_every_class_seen(counts):
  with pytest.raises(ValueError, match='--cceb_prior'):
    ceb.empirical_log_prior(counts)


def test_a_prior_is_refused_for_losses_other_than_cceb():
  with tf.Graph().as_default(), pytest.raises(ValueError, match='--cceb_prior'):
    ceb.build_head('ceb', tf.zeros([2, DIMS]), tf.zeros([2], tf.int32), CLASSES, False,
                   0.5, log_prior=ceb.empirical_log_prior([1, 1, 1, 1]))


def test_eval_mode_uses_the_mean_and_is_deterministic():
  for loss in ('ceb', 'cceb', 'vib'):
    f, y, (out, _) = _session_run(
        lambda f, y, name=loss: ceb.build_head(name, f, y, CLASSES, False, 0.5))
    np.testing.assert_array_equal(out['z'], f)
    np.testing.assert_allclose(out['rex'], 0.5 * np.sum((f - out['mu']) ** 2, -1),
                               rtol=1e-4, atol=1e-3)
  # Two evaluations of the same model give identical logits; training does not.
  with tf.Graph().as_default():
    f = tf.constant(np.random.RandomState(2).randn(BATCH, DIMS).astype(np.float32))
    eval_logits = ceb.ceb_head(f, None, CLASSES, False, 0.5)['logits']
    train_logits = ceb.ceb_head(f, None, CLASSES, True, 0.5)['logits']
    with tf1.Session() as sess:
      sess.run(tf1.global_variables_initializer())
      first, noisy_first = sess.run([eval_logits, train_logits])
      second, noisy_second = sess.run([eval_logits, train_logits])
  np.testing.assert_array_equal(first, second)
  assert np.abs(noisy_first - noisy_second).max() > 1e-3


def test_vib_uses_standard_normal_marginal():
  f, _, (out, variables) = _session_run(
      lambda f, y: ceb.vib_head(f, y, CLASSES, True, 0.25))
  eps = out['z'] - f
  np.testing.assert_allclose(out['rex'], 0.5 * np.sum(f * (f + 2 * eps), -1),
                             rtol=1e-4, atol=1e-3)
  assert not any(name.startswith('bzy') for name in variables)


def test_xent_is_the_unchanged_baseline():
  f, y, (out, variables) = _session_run(lambda f, y: ceb.xent_head(f, y, CLASSES))
  logits = f @ variables['cyz/dense/kernel'] + variables['cyz/dense/bias']
  np.testing.assert_allclose(out['logits'], logits, rtol=1e-4, atol=1e-4)
  assert set(out) == {'z', 'logits', 'hyz', 'loss'}


@pytest.mark.parametrize('loss', ['ceb', 'cceb', 'vib'])
def test_gradients_reach_mu_classifier_and_encoder(loss):
  with tf.Graph().as_default():
    x = tf.constant(np.random.RandomState(1).randn(BATCH, 5).astype(np.float32))
    y = tf.constant(np.arange(BATCH) % CLASSES)
    net = tf1.layers.dense(x, DIMS, name='encoder')
    out = ceb.build_head(loss, net, y, CLASSES, True, 0.5)
    variables = tf1.trainable_variables()
    grads = tf.gradients(out['loss'], variables)
    with tf1.Session() as sess:
      sess.run(tf1.global_variables_initializer())
      values = dict(zip([v.op.name for v in variables], sess.run(grads)))
  expected = {'encoder/kernel', 'encoder/bias'}
  expected |= {'bzy/dense/kernel', 'bzy/dense/bias'} if loss != 'vib' else set()
  expected |= {'cyz/dense/kernel', 'cyz/dense/bias'} if loss != 'cceb' else set()
  assert set(values) == expected
  for name, grad in values.items():
    assert np.abs(grad).sum() > 0, name


def test_weights_and_lerp():
  assert ceb.rho_to_gamma(3.0) == pytest.approx(math.exp(-3.0))
  assert ceb.rho_to_beta(0.0) == pytest.approx(0.5)
  assert ceb.rho_weight('vib', 2.0) == pytest.approx(1 / (1 + math.exp(2.0)))
  assert ceb.rho_weight('ceb', 2.0) == pytest.approx(math.exp(-2.0))
  with tf.Graph().as_default(), tf1.Session() as sess:
    values = sess.run([ceb.lerp(tf.constant(s, tf.int64), 0, 100, 10.0, 20.0)
                       for s in (-5, 0, 25, 100, 300)])
  np.testing.assert_allclose(values, [10.0, 10.0, 12.5, 20.0, 20.0])


@pytest.mark.parametrize('loss,rho', [('nope', 1.0), ('ceb', float('nan')),
                                      ('ceb', float('inf')), ('vib', '-inf')])
def test_bad_loss_or_rho_is_refused_naming_the_flag(loss, rho):
  with pytest.raises(ValueError, match='--loss' if loss == 'nope' else '--rho'):
    ceb.check_loss_and_rho(loss, rho)
