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
  params = {'depth': depth, 'width': width, 'loss': loss, 'rho': 3.0,
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


@pytest.mark.parametrize('depth,width', [(27, 10), (4, 1), (28, 0), (28, 2.5)])
def test_bad_depth_or_width(depth, width):
  with pytest.raises(ValueError, match='--depth' if width in (10, 1) else '--width'):
    wrn_model.wrn(depth, width)
