"""PGD attacks and the accuracy-vs-epsilon sweep (eval/pgd/, SPEC section 6).

The attack itself is checked on tiny fixed-weight models in plain graph
sessions; the sweep, the command line and resuming run on a small WRN trained
for a few seconds on a learnable synthetic CIFAR-format task (or on real
CIFAR-10 when the environment names it in CEB_CIFAR10_DIR).
"""
import json
import os
import pickle
import shutil
import signal
import subprocess
import sys
import time

from conftest import REPO_ROOT
import eval_fixtures
import numpy as np
import pytest
import tensorflow as tf

from eval import pgd
from eval.attacks import examples
from eval.kit import results
from eval.kit import runner
from eval.pgd import __main__ as pgd_cli
from eval.pgd import sweep
from resnet_ceb import imagenet_input

tf1 = tf.compat.v1

NUM_CLASSES = 5
SHAPE = (4, 4, 3)  # Tiny images keep the unit tests fast.
DIMS = int(np.prod(SHAPE))
TOL = 1e-3  # Pixel units; float32 rounding of x0 + delta.


# ---------------------------------------------------------------------------
# Tiny models and an independent numpy PGD.


def _linear_weights(seed=0, scale=0.003):
  rng = np.random.RandomState(seed)
  return (rng.normal(0, scale, (DIMS, NUM_CLASSES)).astype(np.float32),
          rng.normal(0, 0.5, NUM_CLASSES).astype(np.float32))


def _linear_logits_fn(weights, bias):
  return lambda x: tf.matmul(tf.reshape(x, [-1, DIMS]), weights) + bias


def _mlp_logits_fn(seed=1):
  """A fixed random tanh MLP: non-linear, so gradients change from step to step."""
  rng = np.random.RandomState(seed)
  w1 = rng.normal(0, 0.02, (DIMS, 16)).astype(np.float32)
  w2 = rng.normal(0, 1.0, (16, NUM_CLASSES)).astype(np.float32)
  return lambda x: tf.matmul(tf.tanh(tf.matmul(tf.reshape(x, [-1, DIMS]) - 128.0, w1)), w2)


def _images(count=8, seed=2):
  """Pixels with many values at or near 0 and 255, so clipping is exercised."""
  rng = np.random.RandomState(seed)
  images = rng.uniform(0, 255, (count,) + SHAPE)
  images[rng.uniform(size=images.shape) < 0.3] = 0.0
  images[rng.uniform(size=images.shape) < 0.3] = 254.0
  labels = rng.randint(0, NUM_CLASSES, count).astype(np.int32)
  return images.astype(np.float32), labels


def _numpy_ce_gradient(x, labels, weights, bias):
  """D CE / dx of logits = xW + b: (softmax - onehot) W^T, in float64."""
  flat = x.reshape(len(x), -1).astype(np.float64)
  logits = flat @ weights + bias
  probs = np.exp(logits - logits.max(axis=1, keepdims=True))
  probs /= probs.sum(axis=1, keepdims=True)
  probs[np.arange(len(x)), labels] -= 1.0
  return (probs @ weights.T).reshape(x.shape)


def _numpy_pgd_iterates(x0, labels, targets, weights, bias, norm, epsilon, alpha, steps,
                        scale=None):
  """Every iterate of PGD, written from the update rules of SPEC section 6.

  With a per-channel `scale` s, the same rules run on u = x / s (the model
  seeing u * s, so its u-gradient is s * g) and each iterate is mapped back.
  """
  s = np.ones(SHAPE[-1]) if scale is None else np.asarray(scale, np.float64)
  u0 = x0.astype(np.float64) / s
  u, iterates = u0.copy(), []
  for _ in range(steps):
    if targets is None:
      g = _numpy_ce_gradient(u * s, labels, weights, bias) * s
    else:
      g = -_numpy_ce_gradient(u * s, targets, weights, bias) * s
    if norm == 'linf':
      u = np.clip(u0 + np.clip(u + alpha * np.sign(g) - u0, -epsilon, epsilon), 0, 255 / s)
    else:
      g_norm = np.sqrt((g ** 2).sum(axis=(1, 2, 3), keepdims=True))
      u = u + alpha * g / np.maximum(g_norm, 1e-12)
      delta = u - u0
      d_norm = np.sqrt((delta ** 2).sum(axis=(1, 2, 3), keepdims=True))
      u = np.clip(u0 + delta * np.minimum(1.0, epsilon / np.maximum(d_norm, 1e-12)), 0, 255 / s)
    iterates.append(u * s)
  return iterates


def _run_iterates(logits_fn, images, labels, steps, **kwargs):
  """The k-step attack for k = 1..steps, i.e. every iterate of the n-step one."""
  with tf.Graph().as_default():
    x = tf1.placeholder(tf.float32, (None,) + SHAPE)
    y = tf1.placeholder(tf.int32, [None])
    feed = {x: images, y: labels}
    if kwargs.get('target_labels') is not None:
      targets = tf1.placeholder(tf.int32, [None])
      feed[targets] = kwargs.pop('target_labels')
      kwargs.update(targeted=True, target_labels=targets)
    attacks = [pgd.pgd_attack(logits_fn, x, y, num_steps=k, **kwargs)
               for k in range(1, steps + 1)]
    with tf1.Session() as sess:
      return sess.run(attacks, feed)


def _example_norms(values, norm):
  flat = values.reshape(len(values), -1)
  if norm == 'linf':
    return np.abs(flat).max(axis=1)
  return np.sqrt((flat.astype(np.float64) ** 2).sum(axis=1))


# ---------------------------------------------------------------------------
# The attack.


@pytest.mark.parametrize('norm,epsilon,step_size', [('linf', 8.0, 3.0), ('l2', 40.0, 15.0)])
@pytest.mark.parametrize('random_start', [False, True])
def test_every_iterate_stays_in_the_ball_and_the_pixel_range(norm, epsilon, step_size,
                                                             random_start):
  images, labels = _images()
  iterates = _run_iterates(_mlp_logits_fn(), images, labels, 8, norm=norm,
                           epsilon=epsilon, step_size=step_size,
                           random_start=random_start, seed=(3, 4))
  reached = 0.0
  for x in iterates:
    assert x.min() >= 0.0 and x.max() <= 255.0
    distances = _example_norms(x - images, norm)
    assert distances.max() <= epsilon + TOL
    reached = max(reached, distances.max())
  # The projection was active (8 steps would go further); clipping to the
  # pixel range can pull an L2 iterate slightly inside the sphere.
  assert reached >= 0.9 * epsilon


@pytest.mark.parametrize('norm,epsilon,step_size', [('linf', 6.0, 2.5), ('l2', 20.0, 8.0)])
@pytest.mark.parametrize('targeted', [False, True])
def test_steps_match_numpy_on_a_linear_model(norm, epsilon, step_size, targeted):
  weights, bias = _linear_weights()
  images, labels = _images()
  targets = pgd.random_target_labels(labels, NUM_CLASSES, seed=5) if targeted else None
  got = _run_iterates(_linear_logits_fn(weights, bias), images, labels, 5, norm=norm,
                      epsilon=epsilon, step_size=step_size, target_labels=targets)
  want = _numpy_pgd_iterates(images, labels, targets, weights, bias, norm, epsilon,
                             step_size, 5)
  for k, (g, w) in enumerate(zip(got, want)):
    np.testing.assert_allclose(g, w, atol=TOL, err_msg='iterate %d' % (k + 1))
  # Pixel clipping took effect, and so did the projection: five steps of
  # step_size > epsilon / 2 end near the sphere, not 2.5 epsilon away.
  assert (want[-1] == 0).any() and (want[-1] == 255).any()
  assert _example_norms(want[-1] - images, norm).max() >= 0.9 * epsilon


SCALE = (40.0, 60.0, 80.0)  # A per-channel input std, pixels.


@pytest.mark.parametrize('norm,epsilon,step_size', [('linf', 0.1, 0.04), ('l2', 0.4, 0.15)])
@pytest.mark.parametrize('targeted', [False, True])
def test_channel_scale_steps_match_numpy_in_the_scaled_ball(norm, epsilon, step_size,
                                                            targeted):
  weights, bias = _linear_weights()
  images, labels = _images()
  targets = pgd.random_target_labels(labels, NUM_CLASSES, seed=5) if targeted else None
  got = _run_iterates(_linear_logits_fn(weights, bias), images, labels, 5, norm=norm,
                      epsilon=epsilon, step_size=step_size, target_labels=targets,
                      channel_scale=SCALE)
  want = _numpy_pgd_iterates(images, labels, targets, weights, bias, norm, epsilon,
                             step_size, 5, scale=SCALE)
  for k, (g, w) in enumerate(zip(got, want)):
    np.testing.assert_allclose(g, w, atol=TOL, err_msg='iterate %d' % (k + 1))
    assert g.min() >= 0.0 and g.max() <= 255.0
    assert _example_norms((g - images) / SCALE, norm).max() <= epsilon + 1e-5
  delta = got[-1] - images
  if norm == 'linf':
    # Channel c moves up to eps * s_c pixels, and some pixel of each gets there.
    reach = np.abs(delta).reshape(-1, 3).max(axis=0)
    np.testing.assert_allclose(reach, epsilon * np.array(SCALE), rtol=1e-5)
  else:
    assert _example_norms(delta / SCALE, norm).max() >= 0.9 * epsilon


@pytest.mark.parametrize('norm,epsilon', [('linf', 0.2), ('l2', 0.8)])
def test_channel_scale_random_start_lies_in_the_scaled_ball(norm, epsilon):
  images, labels = _images(count=16)
  start = _run_iterates(lambda x: 0.0 * _mlp_logits_fn()(x), images, labels, 1, norm=norm,
                        epsilon=epsilon, random_start=True, seed=(5, 6),
                        channel_scale=SCALE)[0]
  sizes = _example_norms((start - images) / SCALE, norm)
  assert sizes.max() <= epsilon + 1e-5 and sizes.max() >= 0.5 * epsilon
  assert start.min() >= 0.0 and start.max() <= 255.0


@pytest.mark.parametrize('norm', pgd.NORMS)
@pytest.mark.parametrize('random_start', [False, True])
def test_a_unit_channel_scale_is_the_pixel_attack_bit_for_bit(norm, random_start):
  images, labels = _images()
  args = dict(norm=norm, epsilon=10.0, step_size=3.0, random_start=random_start,
              seed=(7, 8))
  pixels = _run_iterates(_mlp_logits_fn(), images, labels, 3, **args)
  unit = _run_iterates(_mlp_logits_fn(), images, labels, 3, channel_scale=(1.0,) * 3,
                       **args)
  for p, u in zip(pixels, unit):
    np.testing.assert_array_equal(p, u)


def test_default_step_size_is_four_thirds_epsilon_over_n():
  weights, bias = _linear_weights()
  images, labels = _images()
  default, explicit = (
      _run_iterates(_linear_logits_fn(weights, bias), images, labels, 3, norm='linf',
                    epsilon=9.0, step_size=size)[-1] for size in (None, 4.0))
  np.testing.assert_array_equal(default, explicit)


@pytest.mark.parametrize('norm', pgd.NORMS)
def test_zero_epsilon_and_zero_gradient_return_the_clean_batch(norm):
  images, labels = _images()
  at_zero = _run_iterates(_mlp_logits_fn(), images, labels, 2, norm=norm, epsilon=0.0,
                          random_start=True, seed=(1, 1))
  flat = _run_iterates(lambda x: 0.0 * _mlp_logits_fn()(x), images, labels, 2,
                       norm=norm, epsilon=10.0, step_size=3.0)
  for x in at_zero + flat:
    np.testing.assert_array_equal(x, images)  # Exactly, and no NaN from 0/0.


@pytest.mark.parametrize('norm', pgd.NORMS)
def test_a_model_without_gradient_path_leaves_the_clean_batch(norm):
  images, labels = _images()
  mlp = _mlp_logits_fn()
  # tf.gradients gives None here; PGD must take that as a zero gradient.
  iterates = _run_iterates(lambda x: mlp(tf.stop_gradient(x)), images, labels, 2,
                           norm=norm, epsilon=10.0, step_size=3.0)
  for x in iterates:
    np.testing.assert_array_equal(x, images)


@pytest.mark.parametrize('norm', pgd.NORMS)
def test_nan_gradients_leave_only_their_examples_in_place(norm):
  images, labels = _images()
  images[:4, 0, 0, 0] = 0.0
  images[4:, 0, 0, 0] = 50.0
  mlp = _mlp_logits_fn()

  @tf.custom_gradient
  def nan_gradient_where_dark(x):
    """The identity, whose gradient is NaN where the first pixel is 0."""
    dark = tf.equal(x[:, :1, :1, :1], 0.0)
    return tf.identity(x), lambda dy: tf.where(dark, np.float32(np.nan), dy)

  def logits_fn(x):
    return mlp(nan_gradient_where_dark(x))

  final = _run_iterates(logits_fn, images, labels, 2, norm=norm, epsilon=10.0,
                        step_size=3.0)[-1]
  assert np.isfinite(final).all()
  np.testing.assert_array_equal(final[:4], images[:4])
  assert (np.abs(final[4:] - images[4:]).reshape(4, -1).max(axis=1) > 1.0).all()


@pytest.mark.parametrize('norm,epsilon', [('linf', 16.0), ('l2', 60.0)])
def test_targeted_attack_raises_the_target_probability(norm, epsilon):
  images, labels = _images(count=16)
  targets = pgd.random_target_labels(labels, NUM_CLASSES, seed=7)
  logits_fn = _mlp_logits_fn()
  with tf.Graph().as_default():
    x = tf1.placeholder(tf.float32, (None,) + SHAPE)
    adversarial = pgd.pgd_attack(logits_fn, x, labels, norm=norm, epsilon=epsilon,
                                 num_steps=10, targeted=True, target_labels=targets)
    probs = tf.nn.softmax(logits_fn(x))
    with tf1.Session() as sess:
      adv = sess.run(adversarial, {x: images})
      before, after = (sess.run(probs, {x: v}) for v in (images, adv))
  rows = np.arange(len(labels))
  assert (after[rows, targets] > before[rows, targets]).all()


def test_logits_fn_may_create_its_variables():
  images, labels = _images()

  def logits_fn(x):
    with tf1.variable_scope('linear', reuse=tf1.AUTO_REUSE):
      weights = tf1.get_variable('w', [DIMS, NUM_CLASSES])
    return tf.matmul(tf.reshape(x, [-1, DIMS]), weights)

  with tf.Graph().as_default():
    adversarial = pgd.pgd_attack(logits_fn, images, labels, norm='linf', epsilon=4.0,
                                 num_steps=3)
    assert len(tf1.global_variables()) == 1
    with tf1.Session() as sess:
      sess.run(tf1.global_variables_initializer())
      assert np.abs(sess.run(adversarial) - images).max() <= 4.0 + TOL


def test_restarts_keep_the_worst_case_of_each_example():
  images, labels = _images(count=32)
  targets = pgd.random_target_labels(labels, NUM_CLASSES, seed=3)
  logits_fn = _mlp_logits_fn()
  attack = dict(norm='linf', epsilon=6.0, num_steps=3, random_start=True)
  with tf.Graph().as_default():
    seed = tf.constant([11, 12], tf.int64)
    worst = pgd.pgd_worst_case(logits_fn, images, labels, num_restarts=4, seed=seed,
                               target_labels=targets, **attack)
    single = [tf.argmax(logits_fn(pgd.pgd_attack(
        logits_fn, images, labels, targeted=True, target_labels=targets,
        seed=tf.random.experimental.stateless_fold_in(seed, r), **attack)), axis=-1,
        output_type=tf.int32) for r in range(4)]
    with tf1.Session() as sess:
      worst, single = sess.run((worst, single))
  np.testing.assert_array_equal(worst['correct'],
                                np.all([p == labels for p in single], axis=0))
  np.testing.assert_array_equal(worst['hit'], np.any([p == targets for p in single], axis=0))


@pytest.mark.parametrize('kwargs,fragment', [
    (dict(norm='l1'), 'norm'),
    (dict(epsilon=-1.0), 'epsilon'),
    (dict(epsilon=float('nan')), 'epsilon'),
    (dict(epsilon='8'), 'epsilon'),
    (dict(epsilon=True), 'epsilon'),
    (dict(num_steps=0), 'num_steps'),
    (dict(num_steps=2.5), 'num_steps'),
    (dict(step_size=0.0), 'step_size'),
    (dict(step_size=float('inf')), 'step_size'),
    (dict(targeted=True), 'target_labels'),
    (dict(target_labels=[1, 2]), 'target_labels'),
    (dict(clip_min=255.0, clip_max=0.0), 'clip_min'),
    (dict(channel_scale=(1.0, 0.0, 1.0)), 'channel_scale'),
    (dict(channel_scale=(1.0, float('nan'), 1.0)), 'channel_scale'),
    (dict(channel_scale='abc'), 'channel_scale'),
    (dict(channel_scale=(1.0, 2.0)), '3 channels'),
])
def test_attack_argument_errors(kwargs, fragment):
  args = dict(norm='linf', epsilon=8.0, num_steps=5)
  args.update(kwargs)
  with tf.Graph().as_default():
    with pytest.raises(ValueError, match=fragment):
      pgd.pgd_attack(_mlp_logits_fn(), np.zeros((2,) + SHAPE, np.float32), [0, 1], **args)


def test_restart_argument_errors():
  with tf.Graph().as_default():
    x = np.zeros((2,) + SHAPE, np.float32)
    with pytest.raises(ValueError, match='random_start'):
      pgd.pgd_worst_case(_mlp_logits_fn(), x, [0, 1], norm='linf', epsilon=1.0,
                         num_steps=2, num_restarts=2)
    with pytest.raises(ValueError, match='num_restarts'):
      pgd.pgd_worst_case(_mlp_logits_fn(), x, [0, 1], norm='linf', epsilon=1.0,
                         num_steps=2, num_restarts=0)


# ---------------------------------------------------------------------------
# Targets.


def test_random_targets_are_seeded_wrong_and_uniform():
  labels = np.random.RandomState(0).randint(0, 10, 5000).astype(np.int32)
  targets = pgd.random_target_labels(labels, 10, seed=1)
  np.testing.assert_array_equal(targets, pgd.random_target_labels(labels, 10, seed=1))
  assert (targets != pgd.random_target_labels(labels, 10, seed=2)).mean() > 0.8
  assert (targets != labels).all()
  offsets = (targets - labels) % 10
  counts = np.bincount(offsets, minlength=10)
  assert counts[0] == 0 and np.abs(counts[1:] / len(labels) - 1 / 9).max() < 0.02
  # A prefix of the examples gets the same targets (chunk boundaries included).
  np.testing.assert_array_equal(pgd.random_target_labels(labels[:1500], 10, seed=1),
                                targets[:1500])
  with pytest.raises(ValueError, match='at least 2 classes'):
    pgd.random_target_labels(labels, 1, seed=1)


def test_streamed_targets_equal_random_target_labels():
  images = np.zeros((1100, 2, 2, 3), np.uint8)
  labels = np.random.RandomState(4).randint(0, 10, 1100).astype(np.int32)
  config = pgd.PgdConfig(targeted=True, target_seed=9, batch_size=500)
  with tf.Graph().as_default():
    dataset = sweep._input_fn(examples.array_examples(images, labels), config, 10)({})
    batch = tf1.data.make_one_shot_iterator(dataset).get_next()
    streamed = []
    with tf1.Session() as sess:
      for _ in range(3):
        streamed.append(sess.run(batch['target']))
  np.testing.assert_array_equal(np.concatenate(streamed),
                                pgd.random_target_labels(labels, 10, seed=9))


# ---------------------------------------------------------------------------
# The examples an attack reads (eval/examples.py).


def test_imagenet_examples_come_from_image_net_input(monkeypatch):
  class FakeImageNetInput:
    def __init__(self, is_training, data_dir, image_size):
      assert not is_training and data_dir == '/data' and image_size == 224

    def input_fn(self, params):
      images = tf.fill([7, 224, 224, 3], 9.0)
      labels = tf.range(7, dtype=tf.int64)
      return tf.data.Dataset.from_tensor_slices((images, labels)).batch(params['batch_size'])

  monkeypatch.setattr(imagenet_input, 'ImageNetInput', FakeImageNetInput)
  examples_fn = examples.load_examples('imagenet', '/data', False, 5, 3)
  with tf.Graph().as_default():
    dataset = examples_fn().batch(10)
    images, labels = tf1.data.make_one_shot_iterator(dataset).get_next()
    with tf1.Session() as sess:
      images, labels = sess.run((images, labels))
  assert images.shape == (5, 224, 224, 3) and images.dtype == np.float32
  np.testing.assert_array_equal(labels, np.arange(5))


# ---------------------------------------------------------------------------
# A small trained WRN: the sweep, the command line and resuming.


def _write_python_batch(path, images, labels):
  planar = images.transpose(0, 3, 1, 2).reshape(len(images), -1)
  with open(path, 'wb') as f:
    pickle.dump({b'data': planar, b'labels': [int(v) for v in labels]}, f)


def _write_learnable_cifar(root, num_train=500, num_test=200, seed=0):
  """CIFAR-10 python layout where each class is a 2x2 grid of colors plus noise."""
  rng = np.random.RandomState(seed)
  grids = rng.uniform(40, 215, (10, 2, 2, 3)).repeat(16, axis=1).repeat(16, axis=2)

  def draw(count):
    labels = rng.randint(0, 10, count)
    images = grids[labels] + rng.normal(0, 20, (count, 32, 32, 3))
    return np.clip(np.round(images), 0, 255).astype(np.uint8), labels

  folder = os.path.join(root, 'cifar-10-batches-py')
  os.makedirs(folder)
  for i in range(5):
    _write_python_batch(os.path.join(folder, 'data_batch_%d' % (i + 1)), *draw(num_train // 5))
  _write_python_batch(os.path.join(folder, 'test_batch'), *draw(num_test))
  return root


def _env():
  return dict(os.environ, TF_CPP_MIN_LOG_LEVEL='3')


@pytest.fixture(scope='module')
def trained(tmp_path_factory):
  """(model_dir, data_dir) of a WRN-10-1 CEB model trained for a few seconds.

  Training is deterministic, so the attack tests see the same model every run.
  """
  root = tmp_path_factory.mktemp('pgd')
  data_dir = os.environ.get('CEB_CIFAR10_DIR')
  if data_dir:
    epochs = '1'
  else:
    data_dir = _write_learnable_cifar(str(root / 'data'))
    epochs = '10'
  model_dir = str(root / 'model')
  subprocess.run(
      [sys.executable, '-m', 'wrn_cifar.wrn_main', '--model_dir', model_dir,
       '--data_dir', data_dir, '--depth', '10', '--width', '1', '--train_batch_size',
       '50', '--train_epochs', epochs, '--augment_name', 'none', '--loss', 'ceb',
       '--rho', '3', '--base_learning_rate', '3e-3', '--mode', 'train',
       '--deterministic', '--save_checkpoints_steps', '1000'],
      check=True, cwd=REPO_ROOT, env=_env(), stdout=subprocess.DEVNULL,
      stderr=subprocess.DEVNULL)
  return model_dir, data_dir


def _cli_args(trained, output, *extra):
  model_dir, data_dir = trained
  args = ['--model_dir', model_dir, '--data_dir', data_dir, '--num_examples', '100',
          '--batch_size', '50'] + list(extra)
  return args + ['--output', str(output)] if output else args


def _sweep(trained, output, *extra):
  pgd_cli.main(_cli_args(trained, output, *extra))
  with open(output) as f:
    return json.load(f)


def _clean_accuracy(trained, num_examples):
  """Clean accuracy through runner.predict's default predict_fn, independently."""
  model_dir, data_dir = trained
  model = runner.load_model(model_dir)
  examples_fn = examples.load_examples('cifar10', data_dir, False, num_examples, 50)
  outputs = runner.predict(model, lambda params: examples_fn().map(
      lambda image, label: {'image': image, 'label': label}).batch(50))
  return float(np.mean(outputs['logits'].argmax(axis=-1) == outputs['label']))


@pytest.mark.slow
@pytest.mark.parametrize('norm,epsilons', [('linf', '0,4,16,64'), ('l2', '0,200,1000,4000')])
def test_sweep_starts_at_clean_accuracy_and_falls(trained, tmp_path, norm, epsilons):
  result = _sweep(trained, tmp_path / 'r.json', '--norm', norm, '--epsilons', epsilons)
  summary = result['summary']
  clean = _clean_accuracy(trained, 100)
  assert result['complete'] and result['evaluation'] == 'pgd_' + norm
  assert summary['clean_accuracy'] == clean and clean >= 0.2
  assert summary['accuracy'][0] == clean  # epsilon = 0
  assert all(a >= b for a, b in zip(summary['accuracy'], summary['accuracy'][1:]))
  assert summary['accuracy'][-1] <= 0.5 * clean
  assert sorted(result['items']) == sorted('eps=%s' % e for e in epsilons.split(','))


@pytest.mark.slow
def test_targeted_sweep_hits_targets_and_repeats_exactly(trained, tmp_path):
  args = ('--targeted', '--target_seed', '3', '--random_start', '--num_restarts', '2',
          '--seed', '5', '--epsilons', '0,48', '--num_steps', '10')
  first = _sweep(trained, tmp_path / 'a.json', *args)
  second = _sweep(trained, tmp_path / 'b.json', *args)
  assert first == second
  assert first['evaluation'] == 'pgd_linf_targeted'
  zero, large = first['items']['eps=0'], first['items']['eps=48']
  assert zero['accuracy'] == zero['clean_accuracy']
  assert large['target_hit_rate'] > zero['target_hit_rate'] + 0.2
  assert large['accuracy'] < zero['accuracy']


@pytest.fixture
def model_copy(trained, tmp_path):
  """A private copy of the trained model_dir that a test may change."""
  copy = str(tmp_path / 'model')
  shutil.copytree(trained[0], copy)
  return copy, trained[1]


def _results_dir(model_dir):
  return os.path.join(model_dir, 'results')


def test_default_output_is_under_model_dir(model_copy):
  pgd_cli.main(_cli_args(model_copy, None, '--epsilons', '0', '--num_steps', '1'))
  model = runner.load_model(model_copy[0])
  assert os.listdir(_results_dir(model.model_dir)) == [
      os.path.basename(results.default_path(model.model_dir, 'pgd_linf', model.step))]


def _set_param(model_dir, **changes):
  path = os.path.join(model_dir, 'params.json')
  with open(path) as f:
    recorded = json.load(f)
  recorded['params'].update(changes)
  with open(path, 'w') as f:
    json.dump(recorded, f)


def test_imagenet_sweep_runs_on_the_trainer_input(tmp_path):
  model_dir = eval_fixtures.make_model_dir(str(tmp_path / 'model'), image_size=64,
                                           loss='ceb')
  _set_param(model_dir, dataset='imagenet')
  output = tmp_path / 'r.json'
  pgd_cli.main(['--model_dir', model_dir, '--fake_data', '--num_examples', '6',
                '--batch_size', '4', '--epsilons', '0,8', '--num_steps', '2',
                '--targeted', '--output', str(output)])
  result = json.loads(output.read_text())
  assert result['header']['dataset'] == 'imagenet'
  zero = result['items']['eps=0']
  assert zero['num_examples'] == 6 and zero['accuracy'] == zero['clean_accuracy']
  assert 'target_hit_rate' in result['items']['eps=8']


def _cli_error(argv, capsys):
  """The `error: ...` line of a refused command line (which exits 2)."""
  return eval_fixtures.cli_error(pgd_cli.main, argv, capsys)


@pytest.mark.parametrize('extra,fragment', [
    (['--epsilons', '-1'], '--epsilons'),
    (['--epsilons', '2,abc'], '--epsilons'),
    (['--epsilons', 'nan'], '--epsilons'),
    (['--epsilons', '4,4.0'], '--epsilons'),
    (['--epsilons', '8', '--num_steps', '0'], '--num_steps'),
    (['--epsilons', '8', '--num_steps', 'x'], '--num_steps'),
    (['--epsilons', '8', '--norm', 'l1'], '--norm'),
    (['--epsilons', '8', '--step_size', '-1'], '--step_size'),
    (['--epsilons', '8', '--num_restarts', '3'], '--random_start'),
    (['--epsilons', '8', '--num_examples', '0'], '--num_examples'),
    (['--epsilons', '8', '--checkpoint', '/nonexistent/model.ckpt-1'], '--checkpoint'),
    (['--epsilons', '8', '--dataset', 'imagenet'], '--dataset'),
    (['--epsilons', '8', '--data_dir', '/nonexistent'], '--data_dir'),
])
def test_bad_flags_exit_2_and_write_nothing(model_copy, capsys, extra, fragment):
  assert fragment in _cli_error(_cli_args(model_copy, None, *extra), capsys)
  assert not os.path.exists(_results_dir(model_copy[0]))


def test_bad_model_dirs_exit_2(model_copy, tmp_path, capsys):
  model_dir, data_dir = model_copy
  empty = str(tmp_path / 'empty')
  os.makedirs(empty)
  for bad in (empty, str(tmp_path / 'missing')):
    assert 'params.json' in _cli_error(
        ['--model_dir', bad, '--data_dir', data_dir, '--epsilons', '8'], capsys)
  _set_param(model_dir, width=2)
  assert 'another architecture' in _cli_error(
      _cli_args(model_copy, None, '--epsilons', '8'), capsys)
  assert not os.path.exists(_results_dir(model_dir))


def test_targeted_with_one_class_exits_2(model_copy, monkeypatch, capsys):
  load_model = runner.load_model

  def one_class(*args, **kwargs):
    model = load_model(*args, **kwargs)
    return model._replace(params=dict(model.params, num_classes=1))

  monkeypatch.setattr(runner, 'load_model', one_class)
  line = _cli_error(_cli_args(model_copy, None, '--epsilons', '8', '--targeted'), capsys)
  assert line.startswith('error: --targeted') and 'params.json' in line
  assert not os.path.exists(_results_dir(model_copy[0]))


def test_result_file_of_other_flags_is_left_alone(model_copy, tmp_path, capsys):
  output = tmp_path / 'r.json'
  _sweep(model_copy, output, '--epsilons', '0', '--num_steps', '1')
  before = output.read_bytes()
  assert 'another evaluation' in _cli_error(
      _cli_args(model_copy, output, '--epsilons', '0', '--num_steps', '2'), capsys)
  assert output.read_bytes() == before


@pytest.mark.slow
def test_killed_sweep_resumes_to_the_uninterrupted_file(trained, tmp_path):
  command = [sys.executable, '-m', 'eval.pgd'] + _cli_args(
      trained, None, '--epsilons', '0,8,16,32', '--norm', 'l2', '--num_steps', '10')
  quiet = dict(cwd=REPO_ROOT, env=_env(), stdout=subprocess.DEVNULL,
               stderr=subprocess.DEVNULL)
  full, resumed = tmp_path / 'full.json', tmp_path / 'resumed.json'
  subprocess.run(command + ['--output', str(full)], check=True, **quiet)
  process = subprocess.Popen(command + ['--output', str(resumed)], **quiet)
  deadline = time.time() + 300
  while not resumed.exists():
    assert process.poll() is None, 'the sweep exited before writing an item'
    assert time.time() < deadline
    time.sleep(0.02)
  process.send_signal(signal.SIGKILL)
  process.wait()
  partial = json.loads(resumed.read_text())
  assert not partial['complete'] and 1 <= len(partial['items']) < 4
  subprocess.run(command + ['--output', str(resumed)], check=True, **quiet)
  assert resumed.read_bytes() == full.read_bytes()
