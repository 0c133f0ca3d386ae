"""The BatchNorm-free WRN of section 3.1."""
import numpy as np
import pytest
import tensorflow as tf

from wrn_cifar import wrn_main
from wrn_cifar import wrn_model

tf1 = tf.compat.v1


def _build(depth, width, loss='ceb'):
  images = tf1.placeholder(tf.float32, [None, 32, 32, 3])
  labels = tf1.placeholder(tf.int32, [None])
  params = {'depth': depth, 'width': width, 'loss': loss, 'rho': 3.0, 'num_classes': 10,
            'jump_start': True, 'steps_per_epoch': 10, 'train_epochs': 3,
            'base_learning_rate': 1e-3, 'use_tpu': False, 'batch_size': 8,
            'max_steps': 30, 'log_every_n_steps': 10}
  tf1.train.get_or_create_global_step()
  wrn_main.wrn_model_fn(images, labels, tf.estimator.ModeKeys.TRAIN, params)
  return images


def test_training_graph_has_no_batchnorm_anywhere():
  with tf.Graph().as_default() as graph:
    _build(28, 10)
    op_types = {op.type.lower() for op in graph.get_operations()}
    names = [op.name.lower() for op in graph.get_operations()]
    variables = [v.name for v in tf1.global_variables()]
  assert len(variables) > 50  # The WRN, its heads, Adam's slots: the check has teeth.
  assert not [t for t in op_types if 'batchnorm' in t or 'fusedbatchnorm' in t]
  assert not [n for n in names if 'batch_norm' in n or 'batchnorm' in n]
  assert not [v for v in variables if 'moving' in v or 'batch_norm' in v]


def _trainable_count():
  return sum(np.prod(v.shape.as_list()) for v in tf1.trainable_variables())


@pytest.mark.parametrize('variant', wrn_model.VARIANTS)
@pytest.mark.parametrize('init', wrn_model.INITS)
@pytest.mark.parametrize('depth,width', [(28, 10), (16, 2), (10, 1)])
def test_each_variant_has_its_shapes_and_parameter_count(depth, width, init, variant):
  with tf.Graph().as_default():
    images = tf1.placeholder(tf.float32, [None, 32, 32, 3])
    net = wrn_model.wrn(depth, width, init, variant)(images, True)
    assert net.shape.as_list() == [None, 64 * width]
    assert _trainable_count() == _wrn_param_count(depth, width, init, variant)


def test_wrn_28_10_has_the_published_size():
  # WRN-28-10 has 36.5M parameters with BatchNorm; without it, 36.45M.
  with tf.Graph().as_default():
    wrn_model.wrn(28, 10)(tf1.placeholder(tf.float32, [None, 32, 32, 3]), True)
    assert 36.4e6 < _trainable_count() < 36.6e6


def _wrn_param_count(depth, width, init, variant):
  """The WRN's parameter count, by a formula independent of the model code.

  3x3 convs (with biases under fixup); 1x1 projections where the channels
  change in the zagoruyko variant, none in the parameter-free autoaugment one.
  """
  def conv(size, in_ch, out_ch):
    return size * size * in_ch * out_ch + (out_ch if init == 'fixup' else 0)
  total = conv(3, 3, 16)
  in_ch = 16
  for out_ch in (16 * width, 32 * width, 64 * width):
    for _ in range((depth - 4) // 6):
      total += conv(3, in_ch, out_ch) + conv(3, out_ch, out_ch)
      if variant == 'zagoruyko' and in_ch != out_ch:
        total += conv(1, in_ch, out_ch)
      in_ch = out_ch
  return total


def test_output_is_pooled_pre_logits_of_64k_dims_and_reuses_variables():
  with tf.Graph().as_default():
    model = wrn_model.wrn(10, 3)
    images = tf.random.uniform([4, 32, 32, 3], 0, 255)
    first = model(images, False)
    count = len(tf1.global_variables())
    second = model(images, True)
    assert len(tf1.global_variables()) == count
    with tf1.Session() as sess:
      sess.run(tf1.global_variables_initializer())
      a, b = sess.run([first, second])
  assert a.shape == (4, 192)
  np.testing.assert_array_equal(a, b)


def test_initial_activations_stay_bounded_with_depth():
  # The Fixup-style init keeps a deep BN-free net's output scale near its input's.
  with tf.Graph().as_default():
    images = tf.random.uniform([8, 32, 32, 3], 0, 255, seed=1)
    net = wrn_model.wrn(40, 1, init='fixup')(images, True)
    with tf1.Session() as sess:
      sess.run(tf1.global_variables_initializer())
      value = sess.run(net)
  assert np.all(np.isfinite(value)) and 1e-3 < np.abs(value).mean() < 10


def _initial_variables(depth, width, **kwargs):
  """The WRN's variables right after initialization, by name (without 'wrn/')."""
  with tf.Graph().as_default():
    tf1.set_random_seed(0)
    wrn_model.wrn(depth, width, **kwargs)(tf1.placeholder(tf.float32, [None, 32, 32, 3]), True)
    with tf1.Session() as sess:
      sess.run(tf1.global_variables_initializer())
      return {v.name[len('wrn/'):-len(':0')]: value
              for v, value in zip(tf1.global_variables(), sess.run(tf1.global_variables()))}


def test_he_and_zagoruyko_are_the_defaults():
  default = _initial_variables(10, 2)
  explicit = _initial_variables(10, 2, init='he', variant='zagoruyko')
  assert sorted(default) == sorted(explicit)
  for name, value in default.items():
    np.testing.assert_array_equal(value, explicit[name])


def test_fixup_init_scales_branches_zeroes_their_ends_and_adds_biases():
  variables = _initial_variables(16, 4, init='fixup')
  blocks = 3 * 2  # Three groups of (16 - 4) / 6 blocks.
  biases = [name for name in variables if name.endswith('/bias')]
  assert len(biases) == 1 + 2 * blocks + 3  # Stem, two convs a block, 3 shortcuts.
  assert all(not variables[name].any() for name in biases)
  for group, width in ((1, 64), (3, 256)):
    conv1 = variables['group%d_block2/conv1/kernel' % group]
    conv2 = variables['group%d_block2/conv2/kernel' % group]
    assert not conv2.any()  # The branch starts as zero: the block is its shortcut.
    fan_in = 9 * width
    assert conv1.std() == pytest.approx(blocks ** -0.5 * np.sqrt(2.0 / fan_in), rel=0.05)


def test_he_init_is_the_original_wrns_fan_out_he_without_biases():
  variables = _initial_variables(16, 4, init='he')
  assert not [name for name in variables if name.endswith('/bias')]
  stem = variables['stem/kernel']
  assert stem.std() == pytest.approx(np.sqrt(2.0 / (9 * 16)), rel=0.1)  # fan_out, not 9 * 3.
  for name in ('group1_block2/conv1/kernel', 'group3_block2/conv2/kernel',
               'group2_block1/shortcut/kernel'):
    kernel = variables[name]
    fan_out = kernel.shape[0] * kernel.shape[1] * kernel.shape[3]
    assert kernel.std() == pytest.approx(np.sqrt(2.0 / fan_out), rel=0.05), name


def test_he_init_has_the_fixup_shapes_less_the_biases():
  fixup, he = _initial_variables(10, 2, init='fixup'), _initial_variables(10, 2, init='he')
  assert {n: v.shape for n, v in he.items()} == {
      n: v.shape for n, v in fixup.items() if not n.endswith('/bias')}


def test_bad_init_variant_or_bottleneck_names_the_flag():
  with pytest.raises(ValueError, match='--wrn_init'):
    wrn_model.wrn(10, 1, init='xavier')
  with pytest.raises(ValueError, match='--wrn_variant'):
    wrn_model.wrn(10, 1, variant='resnet')
  for dims in (-1, 2.5):
    with pytest.raises(ValueError, match='--bottleneck_dims'):
      wrn_model.with_bottleneck(wrn_model.wrn(10, 1), dims)


def _pool(x, stride):
  n, h, w, c = x.shape
  return x.reshape(n, h // stride, stride, w // stride, stride, c).mean(axis=(2, 4))


def _pad(x, channels):
  extra = channels - x.shape[-1]
  return np.pad(x, [(0, 0)] * 3 + [(extra // 2, extra - extra // 2)])


def test_autoaugment_variant_is_its_parameter_free_shortcuts_and_adds_at_fixup_init():
  # At the Fixup-style init every branch ends in a zero conv with a zero bias, so
  # the network is its shortcuts alone, here rebuilt in numpy from the stem's output.
  images = np.random.RandomState(0).uniform(0, 255, [2, 32, 32, 3]).astype(np.float32)
  width = 2
  with tf.Graph().as_default() as graph:
    net = wrn_model.wrn(16, width, 'fixup', 'autoaugment')(tf.constant(images), False)
    stem = graph.get_tensor_by_name('wrn/stem/BiasAdd:0')
    with tf1.Session() as sess:
      sess.run(tf1.global_variables_initializer())
      stem_out, out = sess.run([stem, net])
  # Group 1: the first block's shortcut takes the activated stem, its group add the raw one.
  x = _pad(np.maximum(stem_out, 0), 16 * width) + _pad(stem_out, 16 * width)
  for channels in (32 * width, 64 * width):  # A block shortcut plus the group add.
    x = 2 * _pad(_pool(x, 2), channels)
  x += _pad(_pool(stem_out, 4), 64 * width)  # The add from the stem to the end.
  expected = np.maximum(x, 0).mean(axis=(1, 2))
  np.testing.assert_allclose(out, expected, rtol=1e-4, atol=1e-5)
  assert np.abs(expected).max() > 0.1


def test_bottleneck_adds_a_dense_layer_of_its_width_and_zero_adds_none():
  with tf.Graph().as_default():
    images = tf1.placeholder(tf.float32, [None, 32, 32, 3])
    model = wrn_model.wrn(10, 1)
    assert wrn_model.with_bottleneck(model, 0) is model
    net = wrn_model.with_bottleneck(model, 20)(images, True)
    assert net.shape.as_list() == [None, 20]
    wrn_model.with_bottleneck(model, 20)(images, False)  # Reuses the dense layer.
    variables = {v.op.name: v.shape.as_list() for v in tf1.trainable_variables()}
    count = _trainable_count()
  assert variables['wrn/bottleneck/kernel'] == [64, 20]
  assert variables['wrn/bottleneck/bias'] == [20]
  assert count == _wrn_param_count(10, 1, 'he', 'zagoruyko') + 64 * 20 + 20


@pytest.mark.parametrize('depth,width', [(27, 10), (4, 1), (28, 0), (28, 2.5)])
def test_bad_depth_or_width(depth, width):
  with pytest.raises(ValueError, match='--depth' if width in (10, 1) else '--width'):
    wrn_model.wrn(depth, width)
