"""Wide-ResNet-28x10 for CIFAR-10 with no BatchNorm at all (section 3.1, A.1).

The network is a pre-activation wide ResNet (depth 6n+4: three groups of n
blocks of two 3x3 convs, widths 16, 16k, 32k, 64k) with every BatchNorm
removed. "The basic 28x10 WRN" (L442-444) has two readings, `variant`:

* ``'zagoruyko'`` (the default): Zagoruyko & Komodakis' WRN, where a block
  whose shape changes takes a 1x1-conv projection shortcut.
* ``'autoaugment'``: the WRN of the released AutoAugment code, whose policies,
  Cutout and fills the CIFAR pipeline follows (`research/autoaugment/wrn.py`,
  read for its structure, not copied). Its shortcuts have no parameters
  (average pooling by the stride, then zero channels added evenly on both
  sides); besides every block's own shortcut, each group's output adds the
  group's input the same way, and the last group's output adds the stem's.

Two initializations:

* ``'he'`` (the default) is the paper's words taken literally, "the basic
  28x10 WRN" with only its BatchNorm removed: the original WRN code's
  He-normal init (variance 2 / fan_out, as `MSRinit` in the Torch release and
  `conv2d` in the AutoAugment TF code) for every conv, and no conv biases, as
  there.
* ``'fixup'`` keeps the BatchNorm-free network trainable by construction, in
  the spirit of Fixup (Zhang et al. 2019): every conv is He-normal (variance
  2 / fan_in), the first conv of each residual branch is scaled by
  1/sqrt(number of blocks), and the last conv of each branch starts at zero, so
  the initial network is a chain of shortcuts whose activations do not grow
  with depth. Convs carry biases, which BatchNorm's beta used to provide.
  It was the default before the measurement in docs/FIDELITY.md showed that
  `'he'` trains as well.

Following Listing 1, the model returns the pooled pre-logits f(x) (64*k dims); the
CEB head or the baseline's dense layer is added by the trainer. `with_bottleneck`
puts section 2.2's "dense layer with d outputs" in between instead. Inputs are
pixels in [0, 255] and are normalized inside the model, so attacks work in pixel
units.
"""
import math

import tensorflow as tf

from resnet_ceb import bfloat16

tf1 = tf.compat.v1

# Per-channel mean and standard deviation of the CIFAR-10 training set, in pixels.
CIFAR_MEAN_RGB = (125.307, 122.950, 113.865)
CIFAR_STDDEV_RGB = (62.993, 62.089, 66.705)

# The --wrn_init values, the default first.
INITS = ('he', 'fixup')
# The --wrn_variant values, the default first.
VARIANTS = ('zagoruyko', 'autoaugment')


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


def check_variant(variant):
  """Raises ValueError naming the flag unless `variant` is one of VARIANTS."""
  if variant not in VARIANTS:
    raise ValueError('--wrn_variant=%r must be one of %s' % (variant, ', '.join(VARIANTS)))


def check_bottleneck_dims(dims):
  """Raises ValueError naming the flag unless `dims` is an integer >= 0."""
  if not isinstance(dims, int) or dims < 0:
    raise ValueError('--bottleneck_dims=%r must be an integer >= 0 (0: no dense layer)'
                     % (dims,))


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


def _free_shortcut(inputs, filters, strides):
  """A parameter-free shortcut to `filters` channels at `strides`.

  Average pooling over strides x strides windows, then zero channels, half
  before and half after the existing ones (the autoaugment variant).
  """
  if strides > 1:
    inputs = tf.nn.avg_pool2d(inputs, strides, strides, 'VALID')
  extra = filters - int(inputs.shape[-1])
  if extra:
    inputs = tf.pad(inputs, [[0, 0], [0, 0], [0, 0], [extra // 2, extra - extra // 2]])
  return inputs


def _shortcut(inputs, activated, filters, strides, init, variant, first):
  """A block's shortcut: the identity where the shape stays, else the variant's.

  'zagoruyko' projects the activated input with a 1x1 conv; 'autoaugment'
  pools and pads, taking the activated input only in the network's first
  block (where the released code activates once for both paths).
  """
  if variant == 'autoaugment':
    return _free_shortcut(activated if first else inputs, filters, strides)
  if strides == 1 and int(inputs.shape[-1]) == filters:
    return inputs
  return _conv(activated, filters, 1, strides, 'shortcut', init)


def _block(inputs, filters, strides, init, branch_scales, name, variant, first):
  """A pre-activation residual block without BatchNorm.

  `branch_scales` scales the init of the branch's two convs; `first` marks the
  network's first block.
  """
  with tf1.variable_scope(name):
    activated = tf.nn.relu(inputs)
    shortcut = _shortcut(inputs, activated, filters, strides, init, variant, first)
    branch = _conv(activated, filters, 3, strides, 'conv1', init, branch_scales[0])
    branch = _conv(tf.nn.relu(branch), filters, 3, 1, 'conv2', init, branch_scales[1])
    return shortcut + branch


def _groups(stem, width, blocks_per_group, init, branch_scales, variant):
  """The three groups of blocks after the stem, with the variant's extra adds."""
  x = group_input = stem
  for group, (filters, strides) in enumerate(
      [(16 * width, 1), (32 * width, 2), (64 * width, 2)]):
    for i in range(blocks_per_group):
      x = _block(x, filters, strides if i == 0 else 1, init, branch_scales,
                 'group%d_block%d' % (group + 1, i + 1), variant, group == i == 0)
    if variant == 'autoaugment':
      x = group_input = x + _free_shortcut(group_input, filters, strides)
  if variant == 'autoaugment':
    x += _free_shortcut(stem, 64 * width, 4)
  return x


def wrn(depth=28, width=10, init='he', variant='zagoruyko'):
  """Builds a BatchNorm-free WRN-depth-width.

  Args:
    depth: 6n+4 (28 in the paper).
    width: widening factor k (10 in the paper).
    init: 'he' (the original WRN's plain He init, no conv biases) or 'fixup'
      (Fixup-style scaling, zero-init branch ends, conv biases); see the module
      docstring. The two have different variables, so a checkpoint only loads
      into the init it was trained with.
    variant: 'zagoruyko' (1x1-conv projection shortcuts) or 'autoaugment'
      (parameter-free shortcuts, group and stem adds); see the module
      docstring. Depth and width mean the same in both.

  Returns:
    `model(inputs, is_training)` mapping float pixels [batch, 32, 32, 3] in
    [0, 255] to the pooled pre-logits [batch, 64 * width]. Variables live under
    the scope `wrn` and are reused on every call, so attacks can rebuild the
    network on new inputs. `is_training` is accepted for the Listing 1 interface;
    with no BatchNorm or dropout the network is the same in both modes.

  Raises:
    ValueError: depth, width, init or variant is invalid.
  """
  check_depth_and_width(depth, width)
  check_init(init)
  check_variant(variant)
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
      x = _groups(x, width, blocks_per_group, init, branch_scales, variant)
      x = tf.nn.relu(x)
      x = tf.reduce_mean(x, axis=[1, 2])
      return tf.reshape(x, [-1, 64 * width])

  return model


def with_bottleneck(model, dims):
  """`model` followed by section 2.2's "dense layer with d outputs"; `model` for 0.

  Section 2.2 (L221-224) replaces the softmax layer with a dense layer whose d
  outputs are the encoder's means; Listing 1 (ImageNet) takes the pooled
  features themselves. With dims > 0 the returned model maps pixels to that
  dense layer's output (kernel: TF's default Glorot-uniform; bias: zeros),
  under `wrn/bottleneck`, reused on every call.
  """
  check_bottleneck_dims(dims)
  if not dims:
    return model

  def bottlenecked(inputs, is_training):
    pooled = model(inputs, is_training)
    with tf1.variable_scope('wrn', reuse=tf1.AUTO_REUSE):
      return tf1.layers.dense(pooled, dims, name='bottleneck')

  return bottlenecked
