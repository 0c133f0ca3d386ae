"""Wide-ResNet-28x10 for CIFAR-10 with no BatchNorm at all (section 3.1, A.1).

The network follows Zagoruyko & Komodakis' pre-activation wide ResNet (depth 6n+4,
widths 16, 16k, 32k, 64k) with every BatchNorm removed. Two things keep it
trainable without normalization, in the spirit of Fixup (Zhang et al. 2019):

* every conv uses He-normal initialization (variance 2 / fan_in), with the first
  conv of each residual branch scaled by 1/sqrt(number of blocks), and
* the last conv of each residual branch starts at zero, so the initial network is
  a chain of shortcuts and the activations do not grow with depth.

Convs carry biases, which BatchNorm's beta used to provide.

Following Listing 1, the model returns the pooled pre-logits f(x) (64*k dims); the
CEB head or the baseline's dense layer is added by the trainer. Inputs are pixels
in [0, 255] and are normalized inside the model, so attacks work in pixel units.
"""
import math

import tensorflow as tf

tf1 = tf.compat.v1

# Per-channel mean and standard deviation of the CIFAR-10 training set, in pixels.
CIFAR_MEAN_RGB = (125.307, 122.950, 113.865)
CIFAR_STDDEV_RGB = (62.993, 62.089, 66.705)


def check_depth_and_width(depth, width):
  """Raises ValueError naming the flag unless depth = 6n+4 (n >= 1) and width >= 1."""
  if not isinstance(depth, int) or depth < 10 or (depth - 4) % 6:
    raise ValueError('--depth=%r must be 6n+4 with n >= 1 (10, 16, 22, 28, ...)' % (depth,))
  if not isinstance(width, int) or width < 1:
    raise ValueError('--width=%r must be a positive integer' % (width,))


def _conv(inputs, filters, kernel_size, strides, name, init_scale=1.0):
  """A biased conv with scaled He-normal init (init_scale 0 gives a zero kernel)."""
  fan_in = kernel_size * kernel_size * int(inputs.shape[-1])
  if init_scale == 0.0:
    initializer = tf1.zeros_initializer()
  else:
    initializer = tf1.random_normal_initializer(
        stddev=init_scale * math.sqrt(2.0 / fan_in))
  return tf1.layers.conv2d(
      inputs, filters, kernel_size, strides=strides, padding='same',
      kernel_initializer=initializer, name=name)


def _block(inputs, filters, strides, branch_scale, name):
  """A pre-activation residual block without BatchNorm."""
  with tf1.variable_scope(name):
    activated = tf.nn.relu(inputs)
    if strides == 1 and int(inputs.shape[-1]) == filters:
      shortcut = inputs
    else:
      shortcut = _conv(activated, filters, 1, strides, 'shortcut')
    branch = _conv(activated, filters, 3, strides, 'conv1', init_scale=branch_scale)
    branch = _conv(tf.nn.relu(branch), filters, 3, 1, 'conv2', init_scale=0.0)
    return shortcut + branch


def wrn(depth=28, width=10):
  """Builds a BatchNorm-free WRN-depth-width.

  Args:
    depth: 6n+4 (28 in the paper).
    width: widening factor k (10 in the paper).

  Returns:
    `model(inputs, is_training)` mapping float pixels [batch, 32, 32, 3] in
    [0, 255] to the pooled pre-logits [batch, 64 * width]. Variables live under
    the scope `wrn` and are reused on every call, so attacks can rebuild the
    network on new inputs. `is_training` is accepted for the Listing 1 interface;
    with no BatchNorm or dropout the network is the same in both modes.
  """
  check_depth_and_width(depth, width)
  blocks_per_group = (depth - 4) // 6
  branch_scale = (3 * blocks_per_group) ** -0.5

  def model(inputs, is_training):
    del is_training  # No BatchNorm or dropout: train and eval graphs are equal.
    with tf1.variable_scope('wrn', reuse=tf1.AUTO_REUSE):
      x = (tf.cast(inputs, tf.float32) - CIFAR_MEAN_RGB) / CIFAR_STDDEV_RGB
      x = _conv(x, 16, 3, 1, 'stem')
      for group, (filters, strides) in enumerate(
          [(16 * width, 1), (32 * width, 2), (64 * width, 2)]):
        for i in range(blocks_per_group):
          x = _block(x, filters, strides if i == 0 else 1, branch_scale,
                     'group%d_block%d' % (group + 1, i + 1))
      x = tf.nn.relu(x)
      x = tf.reduce_mean(x, axis=[1, 2])
      return tf.reshape(x, [-1, 64 * width])

  return model
