"""FAB-T (eval/attacks/fab.py): exact on linear models, in the audit's standard sequence.

The projection onto a hyperplane inside the pixel box is checked against
scipy's linear and quadratic programs. On a linear model z = W x + b the
linearization is the model, so FAB's first projection from the clean point is
the exact smallest perturbation towards each target: its first adversarial
lies at eta (1.05) times the closed-form distance, and a few iterations bring
it within 1% of it, at any logit scale. So FAB-T alone reaches the
closed-form robust accuracy, with valid witnesses.
"""
import attack_fixtures as fixtures
import numpy as np
import pytest
import scipy.optimize
import tensorflow as tf

from eval import audit
from eval.attacks import fab
from eval.audit import command as audit_command
from eval.audit import indicators
from eval.audit import specs

tf1 = tf.compat.v1

LINF, L2 = ('linf', 4.0), ('l2', 8.0)


def _session_run(build, feeds):
  """Builds `build(*placeholders)` in a fresh graph and runs it on the numpy feeds."""
  with tf.Graph().as_default():
    placeholders = [tf1.placeholder(tf.as_dtype(value.dtype), value.shape) for value in feeds]
    out = build(*placeholders)
    with tf1.Session() as session:
      return session.run(out, dict(zip(placeholders, feeds)))


# ---------------------------------------------------------------------------
# The projection onto a hyperplane inside the box.


def _problems(count, dims, seed=0):
  """Points in [0, 255] (some on its faces), normals (some zero entries) and targets c."""
  rng = np.random.RandomState(seed)
  points = rng.uniform(0, 255, (count, dims))
  points[rng.uniform(size=points.shape) < 0.1] = 0.0
  points[rng.uniform(size=points.shape) < 0.1] = 255.0
  weights = rng.normal(size=(count, dims))
  weights[rng.uniform(size=weights.shape) < 0.1] = 0.0
  # Signed shares of what the box allows: small (box idle) to nearly all (box active).
  sign = np.where(np.arange(count) % 2, 1.0, -1.0)[:, None]
  reach = np.where(sign * weights > 0, 255.0 - points, points) * np.abs(weights)
  gaps = np.linspace(0.02, 0.98, count) * sign[:, 0] * reach.sum(1)
  return points, weights, gaps


def _program(point, weight, gap, norm):
  """The smallest |delta| with <w, delta> = gap, point + delta in [0, 255], by scipy."""
  low, high = -point, 255.0 - point
  if norm == 'linf':  # Variables (delta, t): minimize t, -t <= delta_i <= t.
    dims = len(point)
    eye = np.eye(dims)
    solved = scipy.optimize.linprog(
        np.r_[np.zeros(dims), 1.0],
        A_ub=np.block([[eye, -np.ones((dims, 1))], [-eye, -np.ones((dims, 1))]]),
        b_ub=np.zeros(2 * dims), A_eq=np.r_[weight, 0.0][None], b_eq=[gap],
        bounds=list(zip(low, high)) + [(0, None)], method='highs')
    return solved.fun
  solved = scipy.optimize.minimize(
      lambda d: 0.5 * d @ d, np.zeros_like(point), jac=lambda d: d, method='SLSQP',
      bounds=list(zip(low, high)), options={'ftol': 1e-12, 'maxiter': 500},
      constraints=[{'type': 'eq', 'fun': lambda d: weight @ d - gap, 'jac': lambda d: weight}])
  return np.sqrt(2 * solved.fun)


def _project(points, weights, offsets, norm, partial=fab.PARTIAL_KINKS):
  return _session_run(lambda p, w, b: fab.project_onto_hyperplane(p, w, b, norm,
                                                                  partial=partial),
                      [points.astype(np.float32), weights.astype(np.float32),
                       offsets.astype(np.float32)])


@pytest.mark.parametrize('norm', ['linf', 'l2'])
def test_the_projection_is_the_smallest_step_onto_the_hyperplane_inside_the_box(norm):
  points, weights, gaps = _problems(10, 24)
  delta = _project(points, weights, gaps + (weights * points).sum(1), norm).astype(np.float64)
  np.testing.assert_allclose((weights * delta).sum(1), gaps, rtol=1e-4,
                             atol=1e-4 * np.abs(gaps).max())
  assert np.all(points + delta >= -1e-3) and np.all(points + delta <= 255 + 1e-3)
  sizes = np.abs(delta).max(1) if norm == 'linf' else np.sqrt(np.square(delta).sum(1))
  best = [_program(*problem, norm) for problem in zip(points, weights, gaps)]
  np.testing.assert_allclose(sizes, best, rtol=1e-4)


@pytest.mark.parametrize('norm', ['linf', 'l2'])
def test_sorting_the_smallest_kinks_first_changes_no_step(norm):
  # With 4 of 24 kinks sorted first, the near hyperplanes are solved from those and the far
  # ones sort all; both must give the full sort's steps, the far corner's included.
  points, weights, gaps = _problems(10, 24, seed=2)
  offsets = np.r_[gaps[:-1], 3 * gaps[-1]] + (weights * points).sum(1)
  full = _project(points, weights, offsets, norm, partial=24)
  np.testing.assert_allclose(_project(points, weights, offsets, norm, partial=4), full,
                             rtol=1e-4, atol=1e-3)
  # Both paths ran: some rows move fewer than 4 coordinates to the box's face, some more.
  room = np.where(weights * np.sign(gaps)[:, None] > 0, 255.0 - points, points)
  at_face = ((np.abs(full) >= room - 1e-3) & (room > 0)).sum(1) + (room == 0).sum(1)
  assert at_face.min() < 4 <= at_face.max()


@pytest.mark.parametrize('norm', ['linf', 'l2'])
def test_a_hyperplane_beyond_the_box_gives_the_closest_corner_and_none_gives_zero(norm):
  points, weights, _ = _problems(3, 24, seed=1)
  reach = (np.where(weights > 0, 255.0 - points, points) * np.abs(weights)).sum(1)
  weights[2] = 0.0
  # Twice what the box allows; the point itself; a hyperplane with a zero normal.
  offsets = np.array([2 * reach[0], 0.0, reach[2]]) + (weights * points).sum(1)
  delta = _project(points, weights, offsets, norm)
  np.testing.assert_allclose(delta[0], np.where(weights[0] > 0, 255.0 - points[0],
                                                -points[0]) * (weights[0] != 0), atol=1e-3)
  np.testing.assert_array_equal(delta[1:], 0.0)


# ---------------------------------------------------------------------------
# The attack on linear models.


def _closest_boundary(model, images, labels, norm):
  """Per example, the exact distance to the nearest other class (0 if misclassified).

  fixtures.LinearModel.worst_margins is exact in closed form at any radius
  and falls with it; the distance is where it crosses 0 (bisection).
  """
  distances = np.zeros(len(images))
  for i in np.flatnonzero(model.predict(images) == labels):
    low, high = 0.0, 255.0 if norm == 'linf' else 5000.0
    for _ in range(60):
      middle = (low + high) / 2
      if model.worst_margins(images[i:i + 1], labels[i:i + 1], norm, middle)[0] > 0:
        low = middle
      else:
        high = middle
    distances[i] = high
  return distances


def _fab(model, images, labels, norm, epsilon, **kwargs):
  return _session_run(
      lambda x, y: fab.fab_attack(model.logits_fn, x, y, norm=norm, epsilon=epsilon,
                                  seed=(1, 2), **kwargs), [images, labels])


@pytest.mark.parametrize('threat', [LINF, L2])
def test_the_first_projection_is_exact_and_iterations_close_in(threat):
  images, labels, _ = fixtures.clear_cut_examples(fixtures.LinearModel(), *threat, 12)
  truth = _closest_boundary(fixtures.LinearModel(), images, labels, threat[0])
  attacked = truth > 0
  first = _fab(fixtures.LinearModel(), images, labels, *threat, num_steps=1)['distance']
  np.testing.assert_allclose(first[attacked], fab.ETA * truth[attacked], rtol=1e-4, atol=1e-4)
  for scale in (1.0, 1e4):  # FAB sees only ratios of logit differences: blind to scale.
    out = _fab(fixtures.LinearModel(scale=scale), images, labels, *threat, num_steps=10)
    closer = out['distance'][attacked] / truth[attacked]
    assert np.all(closer >= 1 - 1e-5) and np.all(closer <= 1.01), closer
    np.testing.assert_array_equal(out['distance'][~attacked], 0.0)
    np.testing.assert_array_equal(out['fooled'], out['distance'] <= threat[1])
    assert not out['broken'].any() and out['raised'][attacked].all()


@pytest.mark.parametrize('threat', [LINF, L2])
@pytest.mark.parametrize('scale', [1.0, 1e4])
def test_fab_t_alone_reaches_the_closed_form_robust_accuracy(threat, scale):
  model = fixtures.LinearModel(scale=scale)
  images, labels, truth = fixtures.clear_cut_examples(fixtures.LinearModel(), *threat, 16)
  result = audit.run_audit(model.logits_fn, images, labels, norm=threat[0],
                           epsilon=threat[1], attacks=['fab-t'])
  np.testing.assert_array_equal(result.robust, truth)
  correct = model.predict(images) == labels
  fixtures.check_witnesses(images, result.adversarial, labels, model, *threat,
                           correct & ~result.robust)
  assert list(result.per_attack) == ['clean', 'fab-t']
  assert result.per_attack['fab-t'] == np.mean(truth) < result.clean_accuracy
  assert result.indicators['unbounded_accuracy'] == 0.0
  # Logits x 1e4 saturate the clean cross-entropy (its gradient is exactly 0): flagged,
  # yet FAB-T is not fooled by it.
  names = {indicators.flag_name(flag) for flag in result.flags}
  assert names == (set() if scale == 1 else {'gradient_zero'})


@pytest.mark.parametrize('layer', ['stop_gradient', 'nan_gradient'])
def test_a_model_without_a_gradient_is_no_crash_and_is_flagged(layer):
  model = fixtures.LinearModel(input_layer=layer)
  images, labels, _ = fixtures.clear_cut_examples(model, *LINF, 6)
  fab_t = specs.Fab(num_targets=2, num_steps=3)
  correct = model.predict(images) == labels
  result = audit.run_audit(model.logits_fn, images, labels, norm='linf', epsilon=4.0,
                           attacks=[fab_t])
  np.testing.assert_array_equal(result.robust, correct)
  np.testing.assert_array_equal(result.adversarial, images)
  assert result.passes['fab-t']['gradient'] == correct.sum() * fab_t.gradient_budget()
  names = {indicators.flag_name(flag) for flag in result.flags}
  assert {'gradient_broken_in_attack', 'never_raised_loss'} <= names


def test_restarts_start_at_half_the_radius_and_the_same_seed_gives_the_same_attack():
  model = fixtures.LinearModel()
  images, labels, _ = fixtures.clear_cut_examples(model, *L2, 8)
  starts = _session_run(lambda x: fab.random_start(x, 'l2', 4.0, tf.constant([3, 4])),
                        [images])
  np.testing.assert_allclose(np.sqrt(np.square(starts - images).sum((1, 2, 3))), 4.0,
                             rtol=1e-5)
  first, again = (_fab(model, images, labels, *L2, num_steps=3, num_restarts=2,
                       num_targets=2) for _ in '12')
  for key in first:
    np.testing.assert_array_equal(first[key], again[key])


# ---------------------------------------------------------------------------
# The sequence and the flags.


def test_the_standard_sequence_is_autoattacks_after_pgd20():
  standard = specs.resolve(None)
  assert [spec.name for spec in standard] == ['pgd20', 'apgd-ce', 'apgd-t', 'fab-t', 'square']
  assert standard[3] == specs.Fab(num_targets=9, num_steps=100, num_restarts=1)
  assert (fab.ALPHA_MAX, fab.ETA, fab.BETA) == (0.1, 1.05, 0.9)


def test_the_budget_flags_build_fab_t_and_refuse_bad_counts(capsys):
  parser = audit_command.build_parser()
  args = parser.parse_args(['--model_dir', 'm', '--fab_targets', '4', '--fab_steps', '7'])
  attacks = audit_command._attacks_from_args(args)  # pylint: disable=protected-access
  assert [spec.name for spec in attacks] == ['pgd20', 'apgd-ce', 'apgd-t', 'fab-t', 'square']
  assert attacks[3] == specs.Fab(num_targets=4, num_steps=7)
  for flag in ('--fab_targets', '--fab_steps'):
    with pytest.raises(SystemExit) as exit_info:
      audit_command.main(['--model_dir', 'nowhere', flag, '0'])
    assert exit_info.value.code == 2 and 'error: %s' % flag in capsys.readouterr().err


@pytest.mark.parametrize('spec, message', [
    (specs.Fab(num_targets=0), 'Fab num_targets'),
    (specs.Fab(num_steps=-1), 'Fab num_steps'),
    (specs.Fab(num_restarts=1.5), 'Fab num_restarts')])
def test_a_bad_fab_budget_is_a_clear_error(spec, message):
  with pytest.raises(ValueError, match=message):
    specs.resolve([spec])
