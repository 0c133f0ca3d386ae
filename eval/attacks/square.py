"""Square Attack (Andriushchenko et al. 2020) in the graph, L-inf and L2.

A random search that reads only the model's outputs, so a model whose input
gradient is zero, None or NaN cannot hide from it. It raises the margin loss
L = max_{j != y} z_j - z_y (positive exactly when the example is fooled) by
square-shaped changes of the perturbation, keeping a change iff it raises L:

* the window side is h = round(sqrt(p * H * W)) (at least 1; for L2 at least
  3 and odd, as in the official code; see L2_MIN_SIDE), with p = p_init (0.8)
  halved once the iteration passes 10, 50, 200, 500, 1000, 2000, 4000, 6000
  and 8000. Under the 'autoattack' schedule (the default) these are the
  iterations themselves, counted from 0 as the official code counts them and
  not rescaled: at 5,000 queries p follows the first half of the 10,000-query
  schedule, as AutoAttack's standard version runs it (resc_schedule=False).
  Under 'stretched' they are rescaled to num_queries (the official
  resc_schedule=True, which its authors advise when the budget changes a lot);
* L-inf (Algorithm 2): start from vertical stripes of width one, each column
  and channel +eps or -eps; a change sets a random h x h window to x0 + eps
  or x0 - eps, one sign per channel;
* L2 (Algorithm 3): start, as the official code does, from a grid of
  H // 5-sided tiles, centred, each holding the pattern [eta, -eta] (eta the
  meta pattern of eq. 8: rings of weight sum_k 1 / (n + 1 - k)^2 around the
  centre; randomly transposed) with a random sign per tile and channel,
  scaled to norm eps; a change draws two windows W1, W2, empties W2, and
  refills W1 per channel with [eta, -eta] (randomly transposed, random sign)
  plus W1's old direction, each channel scaled to the norm W1 and W2 held
  together (over all channels) plus a channel's share of the unused budget;
  then the whole perturbation is scaled to norm eps (the official
  renormalisation).

Every perturbation is clipped to the pixel range. An example stops being
queried once fooled (the queries run on the unfooled examples only, gathered
out of the batch), and the loop ends when all are. The start costs one query
and each iteration one more: at most `num_queries` per example. All
randomness is stateless and seeded: the same seed gives the same attack.
"""
import collections
import math

import tensorflow as tf

from eval.attacks import threat_model

P_INIT = 0.8
# Iterations (of a 10000-query budget) after which p is halved.
P_HALVINGS = (10, 50, 200, 500, 1000, 2000, 4000, 6000, 8000)
SCHEDULE_BUDGET = 10000
# The L2 start's tiles: about this many per image side.
L2_TILES_PER_SIDE = 5
# Smaller L2 windows can cancel: on 1 x 1, W1's old direction can be exactly
# minus the pattern, and the refill would drop W1's share of the budget.
L2_MIN_SIDE = 3
SCHEDULES = ('autoattack', 'stretched')

_State = collections.namedtuple('_State', ['iteration', 'x', 'margin', 'fooled', 'queries'])


def window_fraction(iteration, num_queries, p_init, schedule='autoattack'):
  """The window area share p at an iteration (1 = the first change; see the docstring).

  'autoattack': p_init halved at each of P_HALVINGS that iteration - 1 (the
  official count from 0) has passed. 'stretched': the same on iteration *
  SCHEDULE_BUDGET // num_queries.
  """
  if schedule == 'autoattack':
    position = iteration - 1
  else:
    position = iteration * SCHEDULE_BUDGET // num_queries
  halvings = tf.reduce_sum(tf.cast(position > tf.constant(P_HALVINGS), tf.float32))
  return p_init * tf.pow(0.5, halvings)


def _side(fraction, height, width, smallest, odd=False):
  """The window side round(sqrt(p * H * W)) (made odd if asked), within [smallest, min(H, W)]."""
  side = tf.cast(tf.round(tf.sqrt(fraction * height * width)), tf.int32)
  side = tf.maximum(side, smallest)
  if odd:
    side += 1 - side % 2
  return tf.clip_by_value(side, min(smallest, height, width), min(height, width))


def _signs(shape, seed):
  """Uniform random +1 / -1 floats."""
  return tf.where(tf.random.stateless_uniform(shape, seed) < 0.5, -1.0, 1.0)


def _corners(batch, side, height, width, seed):
  """Random top-left corners of side x side windows inside the image, per example."""
  row_seed, col_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
  rows = tf.random.stateless_uniform([batch], row_seed, 0, height - side + 1, tf.int32)
  cols = tf.random.stateless_uniform([batch], col_seed, 0, width - side + 1, tf.int32)
  return rows, cols


def _offsets(corners, side, size):
  """Positions relative to the windows' corners ([batch, size]) and which lie inside."""
  offsets = tf.range(size)[None, :] - corners[:, None]
  return offsets, tf.logical_and(offsets >= 0, offsets < side)


def _window(rows, cols, side, height, width):
  """[batch, H, W, 1] bool: the side x side windows at (rows, cols)."""
  _, in_rows = _offsets(rows, side, height)
  _, in_cols = _offsets(cols, side, width)
  return tf.logical_and(in_rows[:, :, None], in_cols[:, None, :])[..., None]


def _place(patterns, rows, cols, height, width):
  """[batch, side, side] patterns put at (rows, cols) of zero [batch, H, W, 1] images."""
  side = tf.shape(patterns)[1]
  row_offsets, in_rows = _offsets(rows, side, height)
  col_offsets, in_cols = _offsets(cols, side, width)
  picked = tf.gather(patterns, tf.clip_by_value(row_offsets, 0, side - 1), axis=1,
                     batch_dims=1)
  picked = tf.gather(picked, tf.clip_by_value(col_offsets, 0, side - 1), axis=2,
                     batch_dims=1)
  inside = tf.logical_and(in_rows[:, :, None], in_cols[:, None, :])
  return tf.where(inside, picked, tf.zeros_like(picked))[..., None]


def meta_pattern(rows, cols):
  """Eq. 8's [rows, cols] pattern: sum_{k=0}^{M} 1 / (n + 1 - k)^2 on ring M.

  n = rows // 2 and M(r, s) = n - max(|r - rows // 2|, |s - cols // 2|), so
  weights grow towards the centre; cells with M < 0 are 0.
  """
  n = rows // 2
  ring = tf.maximum(tf.abs(tf.range(rows) - rows // 2)[:, None],
                    tf.abs(tf.range(cols) - cols // 2)[None, :])
  terms = n - ring
  inverse_squares = 1.0 / tf.square(tf.cast(tf.range(1, n + 2), tf.float32))
  cumulative = tf.concat([[0.0], tf.cumsum(inverse_squares)], 0)
  # sum_{k=0}^{M} 1 / (n + 1 - k)^2 = C[n + 1] - C[n - M], C[j] = sum_{i<=j} 1 / i^2.
  values = cumulative[n + 1] - tf.gather(cumulative, tf.clip_by_value(n - terms, 0, n + 1))
  return tf.where(terms >= 0, values, tf.zeros_like(values))


def _window_pattern(side):
  """The L2 change's side x side pattern: +eta left, -eta right, unit norm."""
  left = side // 2
  pattern = tf.concat([meta_pattern(side, left), -meta_pattern(side, side - left)], axis=1)
  return pattern / tf.norm(pattern)


def _channel_norm(values):
  """L2 norm over rows and columns, per example and channel: [batch, 1, 1, C]."""
  return tf.sqrt(tf.reduce_sum(tf.square(values), axis=[1, 2], keepdims=True))


class _Sampler:
  """Start points and candidate changes of one norm, on [batch, H, W, C] images."""

  def __init__(self, norm, epsilon, x0):
    self.norm, self.epsilon, self.x0 = norm, epsilon, x0
    self.height, self.width, self.channels = x0.shape[1:]
    self.batch = tf.shape(x0)[0]

  def start(self, seed):
    if self.norm == 'linf':
      stripes = _signs([self.batch, 1, self.width, self.channels], seed)
      return threat_model.clip_pixels(self.x0 + self.epsilon * stripes)
    return self.l2_start(seed)

  def l2_start(self, seed):
    """The official grid: H // 5-sided tiles from offset (H - 5 tile) // 2, cut at the edge."""
    tile = max(1, self.height // L2_TILES_PER_SIDE)
    offset = max(0, (self.height - L2_TILES_PER_SIDE * tile) // 2)
    counts = [self.height // tile, self.width // tile]
    sign_seed, transpose_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
    signs = _signs([self.batch] + counts + [self.channels], sign_seed)
    transpose = tf.random.stateless_uniform([self.batch] + counts + [1], transpose_seed) < 0.5
    pattern = _window_pattern(tile)

    def spread(values):
      return tf.repeat(tf.repeat(values, tile, axis=1), tile, axis=2)

    grid = tf.where(spread(transpose), tf.tile(tf.transpose(pattern), counts)[None, :, :, None],
                    tf.tile(pattern, counts)[None, :, :, None])
    delta = spread(signs) * grid
    delta = tf.pad(delta, [[0, 0], [offset, self.height], [offset, self.width], [0, 0]])
    delta = delta[:, :self.height, :self.width]
    delta *= self.epsilon / tf.maximum(threat_model.example_norm(delta), threat_model.TINY_NORM)
    return threat_model.project(self.x0 + delta, self.x0, 'l2', self.epsilon)

  def candidate(self, x, fraction, seed):
    side = _side(fraction, self.height, self.width, 1 if self.norm == 'linf' else L2_MIN_SIDE,
                 odd=self.norm == 'l2')
    seeds = tf.unstack(tf.random.experimental.stateless_split(seed, 4))
    if self.norm == 'linf':
      window = _window(*_corners(self.batch, side, self.height, self.width, seeds[0]), side,
                       self.height, self.width)
      signs = _signs([self.batch, 1, 1, self.channels], seeds[1])
      return tf.where(window, threat_model.clip_pixels(self.x0 + self.epsilon * signs), x)
    return self.l2_candidate(x, side, seeds)

  def l2_candidate(self, x, side, seeds):
    """Algorithm 3: W2 emptied, W1 refilled with the pattern and W1's old direction.

    As in the official code: each channel of W1 gets the norm of both windows
    over all channels plus its share of the unused budget, then the whole
    perturbation is scaled to norm eps.
    """
    first = _corners(self.batch, side, self.height, self.width, seeds[0])
    second = _corners(self.batch, side, self.height, self.width, seeds[1])
    in_first = tf.cast(_window(*first, side, self.height, self.width), tf.float32)
    in_either = tf.maximum(in_first, tf.cast(
        _window(*second, side, self.height, self.width), tf.float32))
    pattern = _window_pattern(side)
    transpose = tf.random.stateless_uniform([self.batch], seeds[2]) < 0.5
    patterns = tf.where(transpose[:, None, None], tf.transpose(pattern)[None], pattern[None])
    eta = _place(patterns, *first, self.height, self.width)
    delta = x - self.x0
    old = delta * in_first
    unused = tf.maximum(self.epsilon ** 2 - tf.reduce_sum(
        tf.square(delta), axis=[1, 2, 3], keepdims=True), 0.0)
    new = (_signs([self.batch, 1, 1, self.channels], seeds[3]) * eta
           + old / tf.maximum(_channel_norm(old), threat_model.TINY_NORM))
    available = tf.sqrt(tf.square(threat_model.example_norm(delta * in_either))
                        + unused / self.channels)
    delta = (delta * (1.0 - in_either)
             + new / tf.maximum(_channel_norm(new), threat_model.TINY_NORM) * available)
    delta *= self.epsilon / tf.maximum(threat_model.example_norm(delta), threat_model.TINY_NORM)
    return threat_model.project(self.x0 + delta, self.x0, 'l2', self.epsilon)


def _count(mask):
  return tf.reduce_sum(tf.cast(mask, tf.int32))


def _where(mask, a, b):
  """tf.where with a [batch] mask selecting whole images."""
  return tf.where(tf.reshape(mask, [-1, 1, 1, 1]), a, b)


def _query(model, x, labels, active):
  """Margin and misclassification where `active` (only those are run); -inf, False elsewhere."""
  where = tf.where(active)
  logits = model.logits(tf.gather_nd(x, where))
  labels_run = tf.gather_nd(labels, where)
  size = tf.shape(active, out_type=tf.int64)
  margin = tf.tensor_scatter_nd_update(tf.fill(size, -math.inf), where,
                                       threat_model.margin(logits, labels_run))
  wrong = tf.not_equal(tf.argmax(logits, -1, output_type=tf.int32), labels_run)
  return margin, tf.scatter_nd(where, tf.cast(wrong, tf.int32), size) > 0


def _check_arguments(norm, epsilon, num_queries, p_init, x, schedule):
  threat_model.require_graph_mode('The Square Attack')
  threat_model.require(schedule in SCHEDULES, 'schedule=%r is not one of %s'
                       % (schedule, ', '.join(SCHEDULES)))
  threat_model.check_norm(norm)
  threat_model.radius(epsilon)
  threat_model.check_num_steps(num_queries, 'num_queries')
  threat_model.require(threat_model.is_finite_real(p_init) and 0 < p_init <= 1,
                       'p_init=%r must be a number in (0, 1]' % (p_init,))
  threat_model.require(x.shape.rank == 4 and x.shape[1:].is_fully_defined(),
                       'the Square Attack needs [batch, H, W, C] images with static H, W, C, '
                       'got shape %s' % x.shape)


def square_attack(logits_fn, x, labels, *, norm, epsilon, num_queries=5000, p_init=P_INIT,
                  seed=(0, 0), schedule='autoattack'):
  """Builds the Square Attack on a batch, all queries inside one `tf.while_loop`.

  Args:
    logits_fn: `logits_fn(images)` building logits for float pixels in [0, 255].
    x: [batch, H, W, C] clean pixels (H, W, C static).
    labels: [batch] int true labels.
    norm: 'linf' or 'l2'.
    epsilon: radius of the ball, in pixel units (a number, or a scalar
      tensor checked by whoever feeds it).
    num_queries: model queries per example, the start included.
    p_init: the first window's share of the image area.
    seed: shape-[2] int seed (tuple or tensor) of all random draws.
    schedule: 'autoattack' (p on the official unrescaled schedule) or
      'stretched' (rescaled to num_queries); see the module docstring.

  Returns:
    A dict of tensors: 'adversarial' ([batch, ...]: the misclassified point
    where fooled, else the highest-loss point found), 'fooled', 'raised' (the
    loss rose above the start's) ([batch] bool; clean-misclassified examples
    are fooled at x and never queried) and 'forward_passes' (int32 scalar:
    per-example forward passes, the clean one included).

  Raises:
    ValueError: an argument is out of range.
  """
  x = tf.cast(x, tf.float32)
  _check_arguments(norm, epsilon, num_queries, p_init, x, schedule)
  labels = tf.cast(labels, tf.int32)
  model = threat_model.ModelUnderAttack(logits_fn, x)
  sampler = _Sampler(norm, threat_model.radius(epsilon), x)
  seed = tf.convert_to_tensor(seed)
  clean_wrong = tf.not_equal(tf.argmax(model.clean_logits, -1, output_type=tf.int32), labels)
  start = _where(clean_wrong, x, sampler.start(tf.random.experimental.stateless_fold_in(seed, 0)))
  active = tf.logical_not(clean_wrong)
  margin, wrong = _query(model, start, labels, active)

  def step(state):
    active = tf.logical_not(state.fooled)
    fraction = window_fraction(state.iteration, num_queries, p_init, schedule)
    candidate = sampler.candidate(
        state.x, fraction, tf.random.experimental.stateless_fold_in(seed, state.iteration))
    margin, wrong = _query(model, candidate, labels, active)
    accept = tf.logical_and(active, margin > state.margin)
    return (_State(iteration=state.iteration + 1, x=_where(accept, candidate, state.x),
                   margin=tf.where(accept, margin, state.margin),
                   fooled=tf.logical_or(state.fooled, tf.logical_and(accept, wrong)),
                   queries=state.queries + _count(active)),)

  def keep_going(state):
    return tf.logical_and(state.iteration < num_queries,
                          tf.logical_not(tf.reduce_all(state.fooled)))

  initial = _State(iteration=tf.constant(1), x=start, margin=margin,
                   fooled=tf.logical_or(clean_wrong, wrong), queries=_count(active))
  final, = tf.while_loop(keep_going, step, (initial,), parallel_iterations=1)
  return {'adversarial': tf.stop_gradient(final.x), 'fooled': final.fooled,
          'raised': tf.logical_and(active, final.margin > margin),
          'forward_passes': final.queries + tf.shape(x)[0]}

