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


def test_wrn_28_10_shapes_and_parameter_count():
  with tf.Graph().as_default():
    images = tf1.placeholder(tf.float32, [None, 32, 32, 3])
    net = wrn_model.wrn(28, 10)(images, True)
    assert net.shape.as_list() == [None, 640]
    count = sum(np.prod(v.shape.as_list()) for v in tf1.trainable_variables())
  # WRN-28-10 has 36.5M parameters with BatchNorm; without it (and with conv
  # biases instead of BN's beta) the count is 36.48M: computed layer by layer.
  expected = _wrn_param_count(28, 10)
  assert count == expected
  assert 36.4e6 < count < 36.6e6


def _wrn_param_count(depth, width):
  """Independent count: 3x3 convs with biases, 1x1 shortcuts where shapes change."""
  n = (depth - 4) // 6
  total = 3 * 3 * 3 * 16 + 16
  in_ch = 16
  for out_ch in (16 * width, 32 * width, 64 * width):
    for i in range(n):
      total += 9 * in_ch * out_ch + out_ch + 9 * out_ch * out_ch + out_ch
      if i == 0 and in_ch != out_ch or (i == 0 and out_ch != 16 * width):
        total += in_ch * out_ch + out_ch
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
    net = wrn_model.wrn(40, 1)(images, True)
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


def test_fixup_is_the_default_init():
  default, fixup = _initial_variables(10, 2), _initial_variables(10, 2, init='fixup')
  assert sorted(default) == sorted(fixup)
  for name, value in default.items():
    np.testing.assert_array_equal(value, fixup[name])


def test_fixup_init_scales_branches_zeroes_their_ends_and_adds_biases():
  variables = _initial_variables(16, 4)
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
  fixup, he = _initial_variables(10, 2), _initial_variables(10, 2, init='he')
  assert {n: v.shape for n, v in he.items()} == {
      n: v.shape for n, v in fixup.items() if not n.endswith('/bias')}


def test_bad_init_names_the_flag():
  with pytest.raises(ValueError, match='--wrn_init'):
    wrn_model.wrn(10, 1, init='xavier')


@pytest.mark.parametrize('depth,width', [(27, 10), (4, 1), (28, 0), (28, 2.5)])
def test_bad_depth_or_width(depth, width):
  with pytest.raises(ValueError, match='--depth' if width in (10, 1) else '--width'):
    wrn_model.wrn(depth, width)
