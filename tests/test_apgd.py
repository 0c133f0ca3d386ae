"""APGD (eval/attacks/apgd.py): Croce & Hein 2020, Algorithm 1, in one while_loop.

Checked against a plain numpy loop written the way the official AutoAttack
code runs Algorithm 1 (a loss buffer, a counter reset at each checkpoint, a
shrinking gap) on a small tanh MLP where momentum and step-size halving change
the path; its checkpoints against the official ones at every budget; against
the exact robust accuracy of linear models, and on models whose input
gradient is None or NaN.
"""
import attack_fixtures as fixtures
import numpy as np
import pytest
import tensorflow as tf

from eval.attacks import apgd

tf1 = tf.compat.v1

SEED = (5, 6)


def _run(logits_fn, images, labels, with_start=False, **kwargs):
  """The attack's outputs (and its first run's random start) on a batch."""
  with tf.Graph().as_default():
    x = tf1.placeholder(tf.float32, (None,) + fixtures.SHAPE)
    y = tf1.placeholder(tf.int32, [None])
    fetches = {'out': apgd.apgd_attack(logits_fn, x, y, seed=SEED, **kwargs)}
    if with_start:
      first = tf.random.experimental.stateless_fold_in(tf.constant(SEED), tf.constant(0))
      fetches['start'] = apgd.random_start(x, kwargs['norm'], kwargs['epsilon'], first)
    with tf1.Session() as session:
      return session.run(fetches, {x: images, y: labels})


# ---------------------------------------------------------------------------
# Algorithm 1 in numpy, on a fixed tanh MLP.

_RNG = np.random.RandomState(1)
W1 = _RNG.normal(0, 0.03, (fixtures.DIMS, 16)).astype(np.float32)
W2 = _RNG.normal(0, 1.0, (16, fixtures.NUM_CLASSES)).astype(np.float32)


def _mlp_logits_fn(x):
  return tf.matmul(tf.tanh(tf.matmul(tf.reshape(x, [-1, fixtures.DIMS]) - 128.0, W1)), W2)


def _mlp_ce(x, labels):
  """CE, its input gradient and misclassification of the MLP, in float64."""
  rows = np.arange(len(x))
  hidden = np.tanh((x.reshape(len(x), -1) - 128.0) @ W1)
  logits = hidden @ W2
  others = logits.copy()
  others[rows, labels] = -np.inf
  top = others.max(1)
  loss = np.logaddexp(0, top + np.log(np.exp(others - top[:, None]).sum(1)) - logits[rows, labels])
  probs = np.exp(logits - logits.max(1, keepdims=True))
  probs /= probs.sum(1, keepdims=True)
  probs[rows, labels] -= 1.0
  gradient = (((probs @ W2.T) * (1 - hidden ** 2)) @ W1.T).reshape(x.shape)
  return loss, gradient, logits.argmax(1) != labels


def _per_example(values):
  return values.reshape(-1, 1, 1, 1)


def _norms(values):
  return _per_example(np.sqrt(np.square(values).reshape(len(values), -1).sum(1)))


def _official_gaps(num_steps):
  """The official code's gaps between checkpoints: int() of float products."""
  gap = max(int(0.22 * num_steps), 1)
  shrink, smallest = max(int(0.03 * num_steps), 1), max(int(0.06 * num_steps), 1)
  while True:
    yield gap
    gap = max(gap - shrink, smallest)


def _numpy_apgd(x0, labels, start, norm, epsilon, num_steps):
  """The official loop step by step; returns the witness where fooled, else the best point."""
  x0 = x0.astype(np.float64)

  def project(x):
    delta = x - x0
    if norm == 'linf':
      delta = np.clip(delta, -epsilon, epsilon)
    else:
      delta *= np.minimum(1.0, epsilon / np.maximum(_norms(delta), 1e-12))
    return np.clip(x0 + delta, 0, 255)

  def direction(g):
    return np.sign(g) if norm == 'linf' else g / np.maximum(_norms(g), 1e-12)

  x = previous = best = start.astype(np.float64)
  loss, gradient, fooled = _mlp_ce(x, labels)
  best_loss, best_gradient, checked, witness = loss, gradient, loss, np.where(
      _per_example(fooled), x, x0)
  eta = np.full(len(x), 2.0 * epsilon)
  reduced_before = np.ones(len(x), bool)
  # Row i holds step i's loss; the first window reads row -1, still zero.
  losses = np.zeros((num_steps, len(x)))
  gaps = _official_gaps(num_steps)
  gap, counter = next(gaps), 0
  for i in range(num_steps):
    momentum = 0.75 if i else 1.0
    z = project(x + _per_example(eta) * direction(gradient))
    new = project(x + momentum * (z - x) + (1 - momentum) * (x - previous))
    previous = x
    x = new
    loss, gradient, wrong = _mlp_ce(x, labels)
    losses[i] = loss
    better = loss > best_loss
    best = np.where(_per_example(better), x, best)
    best_gradient = np.where(_per_example(better), gradient, best_gradient)
    best_loss = np.where(better, loss, best_loss)
    witness = np.where(_per_example(wrong & ~fooled), x, witness)
    fooled |= wrong
    counter += 1
    if counter == gap:
      rises = sum(losses[i - c] > losses[i - c - 1] for c in range(gap))
      halve = (rises <= 0.75 * gap) | (~reduced_before & (checked >= best_loss))
      eta = np.where(halve, eta / 2, eta)
      x = np.where(_per_example(halve), best, x)
      gradient = np.where(_per_example(halve), best_gradient, gradient)
      reduced_before, checked = halve, best_loss
      gap, counter = next(gaps), 0
    if fooled.all():
      break
  return np.where(_per_example(fooled), witness, best), fooled


def test_checkpoints_follow_the_official_code_at_every_budget():
  for num_steps in range(1, 301):
    marks = [0]
    for gap in _official_gaps(num_steps):
      if marks[-1] + gap > num_steps:
        break
      marks.append(marks[-1] + gap)
    assert apgd.checkpoints(num_steps) == marks, num_steps
  assert apgd.checkpoints(100) == [0, 22, 41, 57, 70, 80, 87, 93, 99]
  assert apgd.checkpoints(10) == [0, 2, 3, 4, 5, 6, 7, 8, 9, 10]
  assert apgd.checkpoints(20) == [0, 4, 7, 9] + list(range(10, 21))


def test_stretched_checkpoints_follow_the_papers_fractions():
  # p = 0, .22, .41, .57, .70, .80, .87, .93, .99; w_j = ceil(p_j * N).
  assert apgd.checkpoints(100, 'stretched') == [0, 22, 41, 57, 70, 80, 87, 93, 99]
  assert apgd.checkpoints(10, 'stretched') == [0, 3, 5, 6, 7, 8, 9, 10]
  with pytest.raises(ValueError, match='schedule'):
    apgd.checkpoints(10, 'fast')


@pytest.mark.parametrize('norm, epsilon', [('linf', 2.0), ('l2', 16.0)])
def test_matches_the_official_loop_step_by_step(norm, epsilon):
  rng = np.random.RandomState(0)
  images = rng.randint(0, 256, (16,) + fixtures.SHAPE).astype(np.float32)
  labels = np.argmax(np.tanh((images.reshape(16, -1) - 128) @ W1) @ W2, 1).astype(np.int32)
  got = _run(_mlp_logits_fn, images, labels, with_start=True, norm=norm, epsilon=epsilon,
             num_steps=20)
  expected, fooled = _numpy_apgd(images, labels, got['start'], norm, epsilon, 20)
  assert 0 < fooled.sum() < len(labels)  # Both the witness and the best point are compared.
  np.testing.assert_array_equal(got['out']['fooled'], fooled)
  # float32 against float64: a coordinate whose gradient is near 0 may step
  # differently once, moving it by a fraction of eta.
  np.testing.assert_allclose(got['out']['adversarial'], expected, atol=0.1)


# ---------------------------------------------------------------------------
# Exact answers and broken gradients.


@pytest.mark.parametrize('loss', apgd.LOSSES)
@pytest.mark.parametrize('norm, epsilon', [('linf', 4.0), ('l2', 8.0)])
def test_reaches_the_exact_robust_accuracy_of_a_linear_model(norm, epsilon, loss):
  model = fixtures.LinearModel()
  images, labels, robust = fixtures.clear_cut_examples(model, norm, epsilon, 16)
  out = _run(model.logits_fn, images, labels, norm=norm, epsilon=epsilon, loss=loss,
             num_steps=30)['out']
  clean_wrong = model.predict(images) != labels
  np.testing.assert_array_equal(out['fooled'], ~robust)
  assert np.all(out['adversarial'][clean_wrong] == images[clean_wrong])
  fixtures.check_witnesses(images, out['adversarial'], labels, model, norm, epsilon,
                           out['fooled'])
  assert out['raised'][~clean_wrong].all() and not out['broken'].any()


def test_same_seed_same_attack():
  model = fixtures.LinearModel()
  images, labels, _ = fixtures.clear_cut_examples(model, 'linf', 4.0, 8)
  kwargs = dict(norm='linf', epsilon=4.0, num_steps=5, loss='dlr')
  first = _run(model.logits_fn, images, labels, with_start=True, **kwargs)
  again = _run(model.logits_fn, images, labels, with_start=True, **kwargs)
  for key in first['out']:
    np.testing.assert_array_equal(first['out'][key], again['out'][key])
  np.testing.assert_array_equal(first['start'], again['start'])
  assert not np.array_equal(first['start'], images)


@pytest.mark.parametrize('layer', ['stop_gradient', 'nan_gradient'])
def test_broken_gradients_are_recorded_not_fatal(layer):
  model = fixtures.LinearModel(input_layer=layer)
  images, labels, robust = fixtures.clear_cut_examples(model, 'linf', 4.0, 8)
  out = _run(model.logits_fn, images, labels, norm='linf', epsilon=4.0, num_steps=5,
             loss='targeted-dlr', num_targets=3)['out']
  attacked = model.predict(images) == labels
  assert out['broken'][attacked].all() and not out['raised'][attacked].any()
  assert not out['fooled'][robust].any()
  assert np.isfinite(out['adversarial']).all()


def test_counts_passes_and_attacks_only_survivors():
  model = fixtures.LinearModel()
  images, labels, _ = fixtures.clear_cut_examples(model, 'linf', 4.0, 8, misclassified=0)
  # At a tiny radius nothing falls: every run takes every step on every example.
  # More targets than other classes means all 9 of them.
  out = _run(model.logits_fn, images, labels, norm='linf', epsilon=0.01, num_steps=4,
             loss='targeted-dlr', num_targets=20, num_restarts=2)['out']
  assert not out['fooled'].any()
  assert out['gradient_passes'] == 9 * 2 * (4 + 1) * len(labels)
  # Misclassified examples are fooled by their clean image and never attacked.
  out = _run(model.logits_fn, images, (labels + 1) % fixtures.NUM_CLASSES, norm='linf',
             epsilon=4.0, num_steps=4)['out']
  assert out['fooled'].all() and out['gradient_passes'] == 0
  np.testing.assert_array_equal(out['adversarial'], images)


@pytest.mark.parametrize('kwargs, message', [
    (dict(loss='hinge'), 'loss'),
    (dict(epsilon=-1.0), 'epsilon'),
    (dict(num_steps=0), 'num_steps'),
    (dict(num_restarts=0), 'num_restarts'),
    (dict(norm='l1'), 'norm'),
])
def test_bad_arguments_are_clear_errors(kwargs, message):
  model = fixtures.LinearModel()
  with tf.Graph().as_default():
    x = tf1.placeholder(tf.float32, (None,) + fixtures.SHAPE)
    with pytest.raises(ValueError, match=message):
      apgd.apgd_attack(model.logits_fn, x, tf.zeros([1], tf.int32),
                       **dict(dict(norm='linf', epsilon=4.0), **kwargs))


def _three_classes(images):
  return tf.reshape(images, [-1, fixtures.DIMS])[:, :3]


def test_losses_need_enough_classes_and_graph_mode():
  with tf.Graph().as_default():
    x = tf1.placeholder(tf.float32, (None,) + fixtures.SHAPE)
    with pytest.raises(ValueError, match='at least 4 classes'):
      apgd.apgd_attack(_three_classes, x, tf.zeros([1], tf.int32), norm='linf', epsilon=1.0,
                       loss='targeted-dlr')
  with pytest.raises(ValueError, match='graph'):
    apgd.apgd_attack(fixtures.LinearModel().logits_fn, np.zeros((1,) + fixtures.SHAPE),
                     np.zeros(1), norm='linf', epsilon=1.0)
