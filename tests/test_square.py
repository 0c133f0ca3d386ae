"""The Square Attack (eval/square.py): Andriushchenko et al. 2020, L-inf and L2.

Checked on linear models behind input layers without a usable gradient
(stop_gradient, NaN, round), whose exact robust accuracy is known; for the
invariants of its two samplers; for its p schedule and L2 meta pattern; and
for its query accounting.
"""
import attack_fixtures as fixtures
import numpy as np
import pytest
import tensorflow as tf

from eval.attacks import square

tf1 = tf.compat.v1


def _run(logits_fn, images, labels, seed=(3, 4), **kwargs):
  with tf.Graph().as_default():
    x = tf1.placeholder(tf.float32, (None,) + fixtures.SHAPE)
    y = tf1.placeholder(tf.int32, [None])
    ops = square.square_attack(logits_fn, x, labels=y, seed=seed, **kwargs)
    with tf1.Session() as session:
      return session.run(ops, {x: images, y: labels})


def _evaluate(build):
  with tf.Graph().as_default(), tf1.Session() as session:
    return session.run(build())


def _official_p(i_iter, n_queries, p_init, rescale):
  """The official p_selection, restated: i_iter counts from 0."""
  if rescale:
    i_iter = int(i_iter / n_queries * 10000)
  bounds = (10, 50, 200, 500, 1000, 2000, 4000, 6000, 8000)
  return p_init / 2 ** sum(i_iter > bound for bound in bounds)


def test_p_follows_the_official_schedule_unrescaled_and_stretched():
  iterations = list(range(1, 60)) + [200, 201, 202, 501, 502, 4001, 4002, 4999, 5000]
  with tf.Graph().as_default(), tf1.Session() as session:
    official = session.run([square.window_fraction(i, 5000, 0.8) for i in iterations])
    stretched = session.run([square.window_fraction(i, 5000, 0.8, 'stretched')
                             for i in (5, 6, 25, 26)])
  # Our iteration i is the official i_iter = i - 1 (the start is query 0).
  np.testing.assert_allclose(official, [_official_p(i - 1, 5000, 0.8, False)
                                        for i in iterations], rtol=1e-6)
  assert official[10] == official[0] == np.float32(0.8) and official[11] == np.float32(0.4)
  # Stretched: a 5000-query budget runs the 10000-query schedule twice as fast.
  np.testing.assert_allclose(stretched, [0.8, 0.4, 0.4, 0.2], rtol=1e-6)


def test_l2_windows_are_odd_and_reach_every_position():
  # The official code draws corners in [0, H - s - 1], so its windows never
  # cover the last row or column; these corners reach H - s as well.
  with tf.Graph().as_default(), tf1.Session() as session:
    sides = session.run([square._side(p, 32, 32, square.L2_MIN_SIDE, odd=True)
                         for p in (0.8, 0.4, 0.1, 0.01, 0.001)])
    rows, cols = session.run(square._corners(4000, 3, 4, 4, tf.constant([1, 2])))
  assert all(side % 2 == 1 for side in sides) and sides[0] == 29 and sides[-1] == 3
  assert set(rows) == set(cols) == {0, 1}


def test_l2_start_is_the_official_grid():
  x0 = np.full((2, 32, 32, 3), 128.0, np.float32)
  with tf.Graph().as_default(), tf1.Session() as session:
    sampler = square._Sampler('l2', 8.0, tf.constant(x0))
    delta = session.run(sampler.start(tf.constant([3, 4]))) - x0
  # Tiles of 6 from offset 1: rows and columns 0 and 31 stay clean.
  assert not delta[:, 0].any() and not delta[:, 31].any()
  assert not delta[:, :, 0].any() and not delta[:, :, 31].any()
  np.testing.assert_allclose(np.sqrt(np.square(delta).sum((1, 2, 3))), 8.0, rtol=1e-4)
  tile = delta[0, 1:7, 1:7, 0]
  # [eta, -eta]: one half positive, the other negative, in one orientation.
  assert (np.sign(tile[:3]) * np.sign(tile[3:]) < 0).all() or \
      (np.sign(tile[:, :3]) * np.sign(tile[:, 3:]) < 0).all()


def _numpy_meta_pattern(rows, cols):
  """Eq. 8 cell by cell: sum_{k=0}^{M} 1 / (n + 1 - k)^2, M = n - ring distance."""
  n = rows // 2
  pattern = np.zeros((rows, cols))
  for r in range(rows):
    for s in range(cols):
      ring = n - max(abs(r - rows // 2), abs(s - cols // 2))
      pattern[r, s] = sum(1.0 / (n + 1 - k) ** 2 for k in range(ring + 1))
  return pattern


@pytest.mark.parametrize('rows, cols', [(5, 5), (4, 2), (6, 3), (1, 1)])
def test_meta_pattern_is_equation_8(rows, cols):
  got = _evaluate(lambda: square.meta_pattern(tf.constant(rows), tf.constant(cols)))
  np.testing.assert_allclose(got, _numpy_meta_pattern(rows, cols), rtol=1e-6)
  assert got[rows // 2, cols // 2] == got.max()


# Square's L2 windows (at least 3 x 3 of a 4 x 4 image) search a coarser set of
# directions than L-inf's, so its fragile examples lie further past the boundary.
@pytest.mark.parametrize('norm, epsilon, layer, gap', [
    ('linf', 4.0, 'stop_gradient', 0.5), ('linf', 4.0, 'round', 0.5),
    ('l2', 8.0, 'nan_gradient', 1.0)])
def test_breaks_models_without_a_gradient_exactly(norm, epsilon, layer, gap):
  model = fixtures.LinearModel(input_layer=layer)
  images, labels, robust = fixtures.clear_cut_examples(model, norm, epsilon, 16, gap=gap)
  out = _run(model.logits_fn, images, labels, norm=norm, epsilon=epsilon, num_queries=500)
  np.testing.assert_array_equal(out['fooled'], ~robust)
  fixtures.check_witnesses(images, out['adversarial'], labels, model, norm, epsilon,
                           out['fooled'])
  attacked = model.predict(images) == labels
  assert out['raised'][attacked & robust].all()


def test_linf_changes_sit_on_the_corners_of_the_cube():
  model = fixtures.LinearModel()
  images, labels, _ = fixtures.clear_cut_examples(model, 'linf', 4.0, 8, misclassified=0)
  out = _run(model.logits_fn, images, labels, norm='linf', epsilon=4.0, num_queries=50)
  delta = out['adversarial'] - images
  at_box = (out['adversarial'] == 0) | (out['adversarial'] == 255)
  assert np.all((np.abs(np.abs(delta) - 4.0) < 1e-4) | at_box)


def test_l2_changes_keep_the_whole_budget():
  # Pixels in [64, 192] and eps = 8: clipping never bites, so Algorithm 3 keeps
  # the perturbation's norm at exactly eps however the windows move it around.
  model = fixtures.LinearModel()
  images, labels, _ = fixtures.clear_cut_examples(model, 'l2', 8.0, 8, misclassified=0)
  out = _run(model.logits_fn, images, labels, norm='l2', epsilon=8.0, num_queries=80)
  norms = np.sqrt(np.square(out['adversarial'] - images).reshape(len(images), -1).sum(1))
  np.testing.assert_allclose(norms, 8.0, rtol=1e-4)


def test_same_seed_same_attack():
  model = fixtures.LinearModel()
  images, labels, _ = fixtures.clear_cut_examples(model, 'l2', 8.0, 8)
  kwargs = dict(norm='l2', epsilon=8.0, num_queries=30)
  first = _run(model.logits_fn, images, labels, **kwargs)
  again = _run(model.logits_fn, images, labels, **kwargs)
  other = _run(model.logits_fn, images, labels, seed=(9, 9), **kwargs)
  np.testing.assert_array_equal(first['adversarial'], again['adversarial'])
  assert not np.array_equal(first['adversarial'], other['adversarial'])


def test_counts_queries_and_stops_querying_the_fooled():
  model = fixtures.LinearModel()
  images, labels, _ = fixtures.clear_cut_examples(model, 'linf', 4.0, 8, misclassified=0)
  out = _run(model.logits_fn, images, labels, norm='linf', epsilon=0.01, num_queries=40)
  assert not out['fooled'].any()
  assert out['forward_passes'] == len(labels) * (40 + 1)  # The clean pass included.
  wrong = (labels + 1) % fixtures.NUM_CLASSES
  out = _run(model.logits_fn, images, wrong, norm='linf', epsilon=4.0, num_queries=40)
  assert out['fooled'].all() and out['forward_passes'] == len(labels)
  np.testing.assert_array_equal(out['adversarial'], images)


@pytest.mark.parametrize('kwargs, message', [
    (dict(p_init=0.0), 'p_init'),
    (dict(p_init=1.5), 'p_init'),
    (dict(num_queries=0), 'num_queries'),
    (dict(epsilon=-2.0), 'epsilon'),
    (dict(norm='l0'), 'norm'),
])
def test_bad_arguments_are_clear_errors(kwargs, message):
  with tf.Graph().as_default():
    x = tf1.placeholder(tf.float32, (None,) + fixtures.SHAPE)
    with pytest.raises(ValueError, match=message):
      square.square_attack(fixtures.LinearModel().logits_fn, x, tf.zeros([1], tf.int32),
                           **dict(dict(norm='linf', epsilon=4.0), **kwargs))


def test_needs_static_image_shapes():
  with tf.Graph().as_default():
    x = tf1.placeholder(tf.float32, [None, None, None, 3])
    with pytest.raises(ValueError, match='static'):
      square.square_attack(fixtures.LinearModel().logits_fn, x, tf.zeros([1], tf.int32),
                           norm='linf', epsilon=4.0)
