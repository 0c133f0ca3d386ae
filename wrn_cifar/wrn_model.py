"""Wide-ResNet-28x10 for CIFAR-10 with no BatchNorm at all (section 3.1, A.1).

The network follows Zagoruyko & Komodakis' pre-activation wide ResNet (depth 6n+4,
widths 16, 16k, 32k, 64k) with every BatchNorm removed. Two initializations:

* ``'fixup'`` (the default) keeps the BatchNorm-free network trainable, in the
  spirit of Fixup (Zhang et al. 2019): every conv is He-normal (variance
  2 / fan_in), the first conv of each residual branch is scaled by
  1/sqrt(number of blocks), and the last conv of each branch starts at zero, so
  the initial network is a chain of shortcuts whose activations do not grow
  with depth. Convs carry biases, which BatchNorm's beta used to provide.
* ``'he'`` is the paper's words taken literally, "the basic 28x10 WRN" with
  only its BatchNorm removed: the original WRN code's He-normal init
  (variance 2 / fan_out, as `MSRinit` in the Torch release and `conv2d` in the
  AutoAugment TF code) for every conv, and no conv biases, as there.

Following Listing 1, the model returns the pooled pre-logits f(x) (64*k dims); the
CEB head or the baseline's dense layer is added by the trainer. Inputs are pixels
in [0, 255] and are normalized inside the model, so attacks work in pixel units.
"""
import math

import tensorflow as tf

from resnet_ceb import bfloat16

tf1 = tf.compat.v1

# Per-channel mean and standard deviation of the CIFAR-10 training set, in pixels.
CIFAR_MEAN_RGB = (125.307, 122.950, 113.865)
CIFAR_STDDEV_RGB = (62.993, 62.089, 66.705)

# The --wrn_init values, the default first.
INITS = ('fixup', 'he')


def check_depth_and_width(depth, width):
  """Raises ValueError naming the flag unless depth = 6n+4 (n >= 1) and width >= 1."""
  if not isinstance(depth, int) or depth < 10 or (depth - 4) % 6:
    raise ValueError('--depth=%r must be 6n+4 with n >= 1 (10, 16, 22, 28, ...)' % (depth,))
  if not isinstance(width, int) or width < 1:
    raise ValueError('--width=%r must be a positive integer' % (width,))


def check_init(init):
  """Raises ValueError naming the flag unless `init` is one of INITS."""
  if init not in INITS:
    raise ValueError('--wrn_init=%r must be one of %s' % (init, ', '.join(INITS)))


def _conv(inputs, filters, kernel_size, strides, name, init, scale=1.0):
  """A conv initialized as `init` says, its He-normal kernel scaled by `scale`.

  'fixup': fan_in He with a bias (scale 0 gives a zero kernel); 'he': fan_out
  He and no bias.
  """
  fixup = init == 'fixup'
  fan = kernel_size * kernel_size * (int(inputs.shape[-1]) if fixup else filters)
  if scale == 0.0:
    initializer = tf1.zeros_initializer()
  else:
    initializer = tf1.random_normal_initializer(stddev=scale * math.sqrt(2.0 / fan))
  return tf1.layers.conv2d(
      inputs, filters, kernel_size, strides=strides, padding='same',
      use_bias=fixup, kernel_initializer=initializer, name=name)


def _block(inputs, filters, strides, init, branch_scales, name):
  """A pre-activation residual block without BatchNorm.

  `branch_scales` scales the init of the branch's two convs.
  """
  with tf1.variable_scope(name):
    activated = tf.nn.relu(inputs)
    if strides == 1 and int(inputs.shape[-1]) == filters:
      shortcut = inputs
    else:
      shortcut = _conv(activated, filters, 1, strides, 'shortcut', init)
    branch = _conv(activated, filters, 3, strides, 'conv1', init, branch_scales[0])
    branch = _conv(tf.nn.relu(branch), filters, 3, 1, 'conv2', init, branch_scales[1])
    return shortcut + branch


def wrn(depth=28, width=10, init='fixup'):
  """Builds a BatchNorm-free WRN-depth-width.

  Args:
    depth: 6n+4 (28 in the paper).
    width: widening factor k (10 in the paper).
    init: 'fixup' (Fixup-style scaling, zero-init branch ends, conv biases) or
      'he' (the original WRN's plain He init, no conv biases); see the module
      docstring. The two have different variables, so a checkpoint only loads
      into the init it was trained with.

  Returns:
    `model(inputs, is_training)` mapping float pixels [batch, 32, 32, 3] in
    [0, 255] to the pooled pre-logits [batch, 64 * width]. Variables live under
    the scope `wrn` and are reused on every call, so attacks can rebuild the
    network on new inputs. `is_training` is accepted for the Listing 1 interface;
    with no BatchNorm or dropout the network is the same in both modes.

  Raises:
    ValueError: depth, width or init is invalid.
  """
  check_depth_and_width(depth, width)
  check_init(init)
  blocks_per_group = (depth - 4) // 6
  if init == 'fixup':
    branch_scales = ((3 * blocks_per_group) ** -0.5, 0.0)
  else:
    branch_scales = (1.0, 1.0)

  def model(inputs, is_training):
    del is_training  # No BatchNorm or dropout: train and eval graphs are equal.
    with tf1.variable_scope('wrn', reuse=tf1.AUTO_REUSE):
      x = (tf.cast(inputs, tf.float32) - CIFAR_MEAN_RGB) / CIFAR_STDDEV_RGB
      x = tf.cast(x, bfloat16.compute_dtype(inputs))  # bfloat16 in: bfloat16 convs.
      x = _conv(x, 16, 3, 1, 'stem', init)
      for group, (filters, strides) in enumerate(
          [(16 * width, 1), (32 * width, 2), (64 * width, 2)]):
        for i in range(blocks_per_group):
          x = _block(x, filters, strides if i == 0 else 1, init, branch_scales,
                     'group%d_block%d' % (group + 1, i + 1))
      x = tf.nn.relu(x)
      x = tf.reduce_mean(x, axis=[1, 2])
      return tf.reshape(x, [-1, 64 * width])

  return model
