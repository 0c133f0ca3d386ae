"""ResNet v1 of resnet_ceb.resnet_model: sizes, Listing 1's pre-logits, reuse, BatchNorm."""
import numpy as np
import pytest
import tensorflow as tf

from resnet_ceb import resnet_model

tf1 = tf.compat.v1

# Trainable backbone parameters (convs + BatchNorm gamma/beta, no head).
# x1 are the well-known ResNet-50/152 sizes without the 2048x1000 dense layer.
# x2 doubles every conv's filters (stem too), so conv weights grow ~4x:
# see `_bottleneck_count` for the derivation, which these literals must match.
RESNET50_X1 = 23508032
RESNET152_X1 = 58143808
RESNET50_X2 = 93907072
RESNET152_X2 = 232253568


def _bottleneck_count(layers, width):
  """Closed-form trainable parameter count of a bottleneck ResNet v1 backbone.

  Stem: a 7x7x3 conv to 64w channels + BN (2 per channel). Each block with
  input c and filters f = base * w: 1x1 c->f, 3x3 f->f, 1x1 f->4f, each with BN,
  and in the first block of a group a 1x1 c->4f projection with BN.
  """
  stem = 64 * width
  total = 7 * 7 * 3 * stem + 2 * stem
  channels = stem
  for base, blocks in zip((64, 128, 256, 512), layers):
    f = base * width
    for i in range(blocks):
      total += channels * f + 2 * f
      total += 3 * 3 * f * f + 2 * f
      total += f * 4 * f + 2 * 4 * f
      if i == 0:
        total += channels * 4 * f + 2 * 4 * f
      channels = 4 * f
  return total


def _build(depth, width, image_size=224, is_training=True):
  """Builds the model on a placeholder in the current graph; returns f(x)."""
  images = tf1.placeholder(tf.float32, [None, image_size, image_size, 3])
  return resnet_model.resnet_v1(depth, 1000, width)(images, is_training)


def _trainable_count():
  return sum(int(np.prod(v.shape)) for v in tf1.trainable_variables())


@pytest.mark.parametrize('depth,width,expected,dims', [
    (50, 1, RESNET50_X1, 2048),
    pytest.param(152, 1, RESNET152_X1, 2048, marks=pytest.mark.slow),
    (50, 2, RESNET50_X2, 4096),
    pytest.param(152, 2, RESNET152_X2, 4096, marks=pytest.mark.slow),
])
def test_parameter_counts_and_pre_logit_dims(depth, width, expected, dims):
  layers = resnet_model.MODEL_PARAMS[depth][1]
  assert _bottleneck_count(layers, width) == expected
  with tf.Graph().as_default():
    net = _build(depth, width)
    assert net.shape.as_list() == [None, dims]
    assert _trainable_count() == expected
    assert resnet_model.num_features(depth, width) == dims


def test_width_two_doubles_the_stem_and_last_group():
  with tf.Graph().as_default():
    _build(50, 2, image_size=64)
    shapes = {v.op.name: v.shape.as_list() for v in tf1.global_variables()}
  assert shapes['resnet_model/initial_conv2d/kernel'] == [7, 7, 3, 128]
  assert shapes['resnet_model/block_group4/block3/conv2d_3/kernel'] == [1, 1, 1024, 4096]


def test_resnet18_pre_logits_are_512_wide():
  for depth, width, dims in ((18, 1, 512), (34, 2, 1024)):
    with tf.Graph().as_default():
      assert _build(depth, width, image_size=32).shape.as_list() == [None, dims]


def test_second_call_reuses_every_variable():
  with tf.Graph().as_default():
    model = resnet_model.resnet_v1(18, 1000)
    images = tf1.placeholder(tf.float32, [None, 32, 32, 3])
    model(images, True)
    names = sorted(v.op.name for v in tf1.global_variables())
    model(images, False)
    model(images * 0.5, False)
    assert sorted(v.op.name for v in tf1.global_variables()) == names
  assert all(n.startswith('resnet_model/') for n in names)


def test_unknown_depth_or_width_names_the_flag():
  with pytest.raises(ValueError, match='--resnet_depth'):
    resnet_model.resnet_v1(51, 1000)
  for width in (0, -1, 1.5, True):
    with pytest.raises(ValueError, match='--width_multiplier'):
      resnet_model.resnet_v1(50, 1000, width_multiplier=width)


def test_last_batch_norm_of_each_block_starts_at_zero():
  with tf.Graph().as_default():
    _build(18, 1, image_size=32)
    gammas = {v.op.name: v for v in tf1.global_variables() if v.op.name.endswith('gamma')}
    with tf1.Session() as sess:
      sess.run(tf1.global_variables_initializer())
      values = sess.run(gammas)
  last = [n for n in values if '/batch_normalization_2/' in n]
  assert len(last) == 8  # 2 blocks x 4 groups
  for name, value in values.items():
    assert np.all(value == (0.0 if name in last else 1.0)), name


def test_batch_norm_momentum_and_epsilon():
  """One training-mode update moves the moving mean 10% of the way (momentum 0.9)."""
  with tf.Graph().as_default():
    _build(18, 1, image_size=32)
    graph = tf1.get_default_graph()
    conv = graph.get_tensor_by_name('resnet_model/initial_conv2d/Conv2D:0')
    bn = next(op for op in graph.get_operations()
              if op.type.startswith('FusedBatchNorm')
              and 'initial_batch_normalization' in op.name)
    assert bn.get_attr('epsilon') == pytest.approx(1e-5)
    moving_mean = next(v for v in tf1.global_variables()
                       if v.op.name == 'resnet_model/initial_batch_normalization/moving_mean')
    images = graph.get_tensor_by_name('Placeholder:0')
    feed = {images: np.random.RandomState(0).uniform(0, 255, (2, 32, 32, 3))}
    with tf1.Session() as sess:
      sess.run(tf1.global_variables_initializer())
      conv_out, _ = sess.run([conv, tf1.get_collection(tf1.GraphKeys.UPDATE_OPS)], feed)
      updated = sess.run(moving_mean)
  np.testing.assert_allclose(updated, 0.1 * conv_out.mean(axis=(0, 1, 2)),
                             rtol=1e-4, atol=1e-5)


def test_pixels_are_normalized_inside_the_model():
  with tf.Graph().as_default():
    mean_image = tf.constant(np.tile(resnet_model.MEAN_RGB, (1, 2, 2, 1)), tf.float32)
    white = tf.fill([1, 2, 2, 3], 255.0)
    with tf1.Session() as sess:
      zero, top = sess.run([resnet_model.normalize_pixels(mean_image),
                            resnet_model.normalize_pixels(white)])
  np.testing.assert_allclose(zero, 0.0, atol=1e-5)
  expected = (255.0 - np.array(resnet_model.MEAN_RGB)) / np.array(resnet_model.STDDEV_RGB)
  np.testing.assert_allclose(top[0, 0, 0], expected, rtol=1e-5)
