"""ResNet v1 of the TPU ResNet reference, with Listing 1's edit and a width multiplier.

Mirrors `resnet_model.py` of tensorflow/tpu (models/official/resnet): the same
block functions, BatchNorm settings (momentum 0.9, epsilon 1e-5, the last
BatchNorm of each residual branch starting with gamma = 0) and depth table.
Differences, and why:

* Listing 1: the model stops at the pooled pre-logits f(x) instead of the final
  dense layer; the CEB head (resnet_ceb/ceb.py) supplies the classifier. The
  reshape uses the actual channel count (2048 * width for bottleneck depths,
  512 * width otherwise), so the x2 models give 4096-d f(x).
* `width_multiplier` multiplies the filters of every conv, stem included
  (section 3.2, "twice as wide").
* Inputs are float pixels in [0, 255] and are normalized here with the
  reference's MEAN_RGB / STDDEV_RGB. The reference normalizes outside the
  network, in its input code; doing it inside lets PGD attack pixel units
  and lets eval code feed raw images.
* Every layer has an explicit name under one `resnet_model` variable scope
  with AUTO_REUSE, so calling the model again (e.g. inside the PGD loop)
  reuses the trained variables. BatchNorm layers keep 'batch_normalization'
  in their names, which the trainer's weight-decay rule relies on.
"""
import tensorflow as tf

tf1 = tf.compat.v1

BATCH_NORM_DECAY = 0.9
BATCH_NORM_EPSILON = 1e-5

# The reference's ImageNet statistics, in pixel units.
MEAN_RGB = (0.485 * 255, 0.456 * 255, 0.406 * 255)
STDDEV_RGB = (0.229 * 255, 0.224 * 255, 0.225 * 255)

SCOPE = 'resnet_model'
# Filters of the four block groups at width 1, and the stem's.
GROUP_FILTERS = (64, 128, 256, 512)
STEM_FILTERS = 64
# The output of a bottleneck block has this many times its `filters`.
BOTTLENECK_EXPANSION = 4


def batch_norm_relu(inputs, is_training, name, relu=True, init_zero=False,
                    data_format='channels_last'):
  """BatchNorm (the reference's settings) followed by an optional ReLU.

  Args:
    inputs: [batch, H, W, C] or [batch, C, H, W] tensor.
    is_training: use batch statistics and update the moving averages.
    name: layer name; contains 'batch_normalization' so weight decay skips it.
    relu: apply a ReLU after the normalization.
    init_zero: start gamma at 0, so a residual branch starts as the identity.
    data_format: 'channels_last' or 'channels_first'.

  Returns:
    The normalized tensor, same shape and format.
  """
  gamma_initializer = tf1.zeros_initializer() if init_zero else tf1.ones_initializer()
  inputs = tf1.layers.batch_normalization(
      inputs, axis=1 if data_format == 'channels_first' else 3,
      momentum=BATCH_NORM_DECAY, epsilon=BATCH_NORM_EPSILON, center=True,
      scale=True, training=is_training, fused=True,
      gamma_initializer=gamma_initializer, name=name)
  return tf.nn.relu(inputs) if relu else inputs


def fixed_padding(inputs, kernel_size, data_format='channels_last'):
  """Pads H and W by kernel_size - 1 in total, independently of the input size."""
  pad_total = kernel_size - 1
  pad_beg = pad_total // 2
  spatial = [pad_beg, pad_total - pad_beg]
  if data_format == 'channels_first':
    return tf.pad(inputs, [[0, 0], [0, 0], spatial, spatial])
  return tf.pad(inputs, [[0, 0], spatial, spatial, [0, 0]])


def conv2d_fixed_padding(inputs, filters, kernel_size, strides, name,
                         data_format='channels_last'):
  """A bias-free conv whose padding depends only on kernel_size (as the reference)."""
  if strides > 1:
    inputs = fixed_padding(inputs, kernel_size, data_format)
  return tf1.layers.conv2d(
      inputs, filters, kernel_size, strides=strides,
      padding='SAME' if strides == 1 else 'VALID', use_bias=False,
      kernel_initializer=tf1.variance_scaling_initializer(),
      data_format=data_format, name=name)


def residual_block(inputs, filters, is_training, strides, use_projection=False,
                   data_format='channels_last'):
  """Two 3x3 convs with a shortcut (ResNet-18/34). Call inside a block's scope."""
  shortcut = inputs
  if use_projection:
    shortcut = conv2d_fixed_padding(inputs, filters, 1, strides,
                                    'projection_conv2d', data_format)
    shortcut = batch_norm_relu(shortcut, is_training,
                               'projection_batch_normalization', relu=False,
                               data_format=data_format)
  x = conv2d_fixed_padding(inputs, filters, 3, strides, 'conv2d_1', data_format)
  x = batch_norm_relu(x, is_training, 'batch_normalization_1',
                      data_format=data_format)
  x = conv2d_fixed_padding(x, filters, 3, 1, 'conv2d_2', data_format)
  x = batch_norm_relu(x, is_training, 'batch_normalization_2', relu=False,
                      init_zero=True, data_format=data_format)
  return tf.nn.relu(x + shortcut)


def bottleneck_block(inputs, filters, is_training, strides, use_projection=False,
                     data_format='channels_last'):
  """1x1, 3x3 (strided), 1x1 x4 convs with a shortcut (ResNet-50 and deeper)."""
  shortcut = inputs
  if use_projection:
    shortcut = conv2d_fixed_padding(inputs, BOTTLENECK_EXPANSION * filters, 1,
                                    strides, 'projection_conv2d', data_format)
    shortcut = batch_norm_relu(shortcut, is_training,
                               'projection_batch_normalization', relu=False,
                               data_format=data_format)
  x = conv2d_fixed_padding(inputs, filters, 1, 1, 'conv2d_1', data_format)
  x = batch_norm_relu(x, is_training, 'batch_normalization_1',
                      data_format=data_format)
  x = conv2d_fixed_padding(x, filters, 3, strides, 'conv2d_2', data_format)
  x = batch_norm_relu(x, is_training, 'batch_normalization_2',
                      data_format=data_format)
  x = conv2d_fixed_padding(x, BOTTLENECK_EXPANSION * filters, 1, 1, 'conv2d_3',
                           data_format)
  x = batch_norm_relu(x, is_training, 'batch_normalization_3', relu=False,
                      init_zero=True, data_format=data_format)
  return tf.nn.relu(x + shortcut)


def block_group(inputs, filters, block_fn, blocks, strides, is_training, name,
                data_format='channels_last'):
  """`blocks` blocks; only the first projects its shortcut and strides."""
  with tf1.variable_scope(name):
    for i in range(blocks):
      with tf1.variable_scope('block%d' % (i + 1)):
        inputs = block_fn(inputs, filters, is_training,
                          strides if i == 0 else 1, use_projection=(i == 0),
                          data_format=data_format)
  return inputs


def _pre_logit_dims(block_fn, width_multiplier):
  """Channels of the last block group: the size of f(x)."""
  expansion = BOTTLENECK_EXPANSION if block_fn is bottleneck_block else 1
  return GROUP_FILTERS[-1] * width_multiplier * expansion


def normalize_pixels(inputs):
  """Maps float pixels in [0, 255] to the reference's normalized inputs."""
  pixels = tf.cast(inputs, tf.float32)
  normalized = (pixels - tf.constant(MEAN_RGB)) / tf.constant(STDDEV_RGB)
  return tf.cast(normalized, inputs.dtype)


def resnet_v1_generator(block_fn, layers, num_classes, width_multiplier=1,
                        data_format='channels_last'):
  """The ResNet v1 model function for a block type and blocks per group.

  Args:
    block_fn: `residual_block` or `bottleneck_block`.
    layers: blocks in each of the four groups.
    num_classes: unused; kept for the reference's signature (Listing 1 moved
      the classifier into the CEB head).
    width_multiplier: multiplies the filters of every conv.
    data_format: 'channels_last' (NHWC, needed on CPU) or 'channels_first'.

  Returns:
    `model(inputs, is_training)` mapping float pixels [batch, H, W, 3] in
    [0, 255] (NHWC whatever data_format) to the pooled pre-logits
    [batch, 512 * width or 2048 * width].
  """
  del num_classes  # The classifier lives in the CEB head (Listing 1).
  spatial_axes = [2, 3] if data_format == 'channels_first' else [1, 2]

  def model(inputs, is_training):
    """Builds the network on `inputs`, reusing variables on every call."""
    with tf1.variable_scope(SCOPE, reuse=tf1.AUTO_REUSE):
      x = normalize_pixels(inputs)
      if data_format == 'channels_first':
        x = tf.transpose(x, [0, 3, 1, 2])
      x = conv2d_fixed_padding(x, STEM_FILTERS * width_multiplier, 7, 2,
                               'initial_conv2d', data_format)
      x = batch_norm_relu(x, is_training, 'initial_batch_normalization',
                          data_format=data_format)
      x = tf1.layers.max_pooling2d(x, 3, 2, padding='SAME',
                                   data_format=data_format, name='initial_max_pool')
      for i, (filters, blocks) in enumerate(zip(GROUP_FILTERS, layers)):
        x = block_group(x, filters * width_multiplier, block_fn, blocks,
                        1 if i == 0 else 2, is_training, 'block_group%d' % (i + 1),
                        data_format)
      # Global average pooling; the reference's VALID average pool over the
      # whole feature map computes the same thing for any input size.
      x = tf.reduce_mean(x, axis=spatial_axes, name='final_avg_pool')
      # Listing 1: return the pre-logits instead of the final dense layer; the
      # width comes from the channel count (2048 * width_multiplier for ResNet-50).
      return tf.reshape(x, [-1, int(x.shape[-1])])

  return model


# Depth -> (block function, blocks per group), as in the reference.
MODEL_PARAMS = {
    18: (residual_block, (2, 2, 2, 2)),
    34: (residual_block, (3, 4, 6, 3)),
    50: (bottleneck_block, (3, 4, 6, 3)),
    101: (bottleneck_block, (3, 4, 23, 3)),
    152: (bottleneck_block, (3, 8, 36, 3)),
    200: (bottleneck_block, (3, 24, 36, 3)),
}


def check_depth_and_width(resnet_depth, width_multiplier):
  """Raises ValueError naming the flag for an unknown depth or a bad width."""
  if resnet_depth not in MODEL_PARAMS:
    raise ValueError('--resnet_depth=%r is not one of %s' % (
        resnet_depth, ', '.join(str(d) for d in sorted(MODEL_PARAMS))))
  if (not isinstance(width_multiplier, int) or isinstance(width_multiplier, bool)
      or width_multiplier < 1):
    raise ValueError('--width_multiplier=%r must be a positive integer (the '
                     'paper uses 1 and 2)' % (width_multiplier,))


def num_features(resnet_depth, width_multiplier=1):
  """The width of f(x): 2048 * width for bottleneck depths, 512 * width otherwise."""
  check_depth_and_width(resnet_depth, width_multiplier)
  return _pre_logit_dims(MODEL_PARAMS[resnet_depth][0], width_multiplier)


def resnet_v1(resnet_depth, num_classes, width_multiplier=1,
              data_format='channels_last'):
  """Returns `model(inputs, is_training)` for a ResNet v1 of the given depth.

  Args:
    resnet_depth: 18, 34, 50, 101, 152 or 200.
    num_classes: kept for the reference's signature; the head is elsewhere.
    width_multiplier: 1, or 2 for the paper's "twice as wide" models.
    data_format: 'channels_last' or 'channels_first'.

  Raises:
    ValueError: unknown depth or width, naming --resnet_depth or --width_multiplier.
  """
  check_depth_and_width(resnet_depth, width_multiplier)
  if data_format not in ('channels_last', 'channels_first'):
    raise ValueError("--data_format=%r must be 'channels_last' or "
                     "'channels_first'" % (data_format,))
  block_fn, layers = MODEL_PARAMS[resnet_depth]
  return resnet_v1_generator(block_fn, layers, num_classes, width_multiplier,
                             data_format)
