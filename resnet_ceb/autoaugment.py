"""AutoAugment (Cubuk et al. 2018, arXiv:1805.09501) as TF 2.15 graph ops.

A re-implementation of the AutoAugment module of the TPU ResNet/EfficientNet
reference (tensorflow/tpu, models/official/efficientnet/autoaugment.py), which
the CEB paper used for ImageNet, without tf.contrib: the geometric ops go
through `tf.raw_ops.ImageProjectiveTransformV3` with nearest-neighbour
sampling, as the reference and PIL do. Every op takes and returns a uint8
HxWx3 image of any static or dynamic size and runs in graph mode, so
`distort_image_with_autoaugment` can be used inside `tf.data.Dataset.map`.

Three policies are offered, each keeping the magnitude convention of its source:

* ``'v0'``: the ImageNet policy v0 of the TPU reference. Levels run 0..10 over
  `_MAX_LEVEL` = 10; the arguments are those of the reference's `level_to_arg`
  with its AutoAugment hparams (cutout_const=100, translate_const=250).
  Empty pixels are filled with gray 128, as in the reference.
* ``'cifar10'``: the 25 sub-policies learned on reduced CIFAR-10 that the
  appendix of the AutoAugment paper prints.
* ``'cifar10_released'``: the 95 sub-policies of `good_policies()` in the
  released CIFAR training code (tensorflow/models, research/autoaugment/
  policies.py), the output of three policy searches. 20 of them are among the
  paper's 25. docs/FIDELITY.md weighs the two readings of "the original
  AutoAug policies".

Both CIFAR-10 policies use the ranges of that released code for 32x32 images
(augmentation_transforms.py): levels run 0..9 over PARAMETER_MAX = 10. That
code ran the ops on an RGBA PIL image and set every pixel left transparent (by
rotate, shear, translate or cutout) to 0 *after* mean/std normalisation, i.e.
to the CIFAR-10 mean colour, which is (125, 123, 114) in uint8.

Magnitude ranges, with m the level (the sign of the starred ones is random):

============  ============================  ==================================
op            v0 (TPU reference)            cifar10, cifar10_released
============  ============================  ==================================
Rotate*       30 m/10 degrees               int(30 m/10) degrees
ShearX/Y*     0.3 m/10                      0.3 m/10
TranslateX/Y* 250 m/10 pixels               int(10 m/10) pixels
Color etc.    factor 0.1 + 1.8 m/10         factor 0.1 + 1.8 m/10
Posterize     int(4 m/10) bits kept         4 - int(4 m/10) bits kept
Solarize      threshold int(256 m/10)       threshold 256 - int(256 m/10)
SolarizeAdd   +int(110 m/10) below 128      (not an op of the original code)
Cutout        side 2 int(100 m/10)          side 2 (int(20 m/10) // 2)
============  ============================  ==================================

("Color etc." is Color, Contrast, Brightness and Sharpness.) Quirks of the
sources that are kept: in v0 a higher Solarize level means a higher threshold,
so a weaker effect, and Posterize levels 0-2 ask for 0 bits, which the
reference's TF shift clamped to keeping 1 bit. One is not kept: the
reference's Contrast blended towards pixel_count / 256 instead of the mean
gray level; here it follows PIL (only the CIFAR-10 policies use Contrast).

The released code's Cutout op has a bug that is not kept: it fills rows and
columns over the same range, from the top edge of the intended square to its
right edge, so its patch is sometimes empty and sometimes most of the image;
here the op cuts the intended square (it occurs in 3 of the 95 sub-policies).

The original CIFAR-10 pipeline applied the policy before its pad-and-crop,
flip and a 16x16 Cutout; the caller adds those, Cutout with `random_cutout`.
"""
import collections
import contextlib
import functools
import math
import threading

import tensorflow as tf

# The largest level the AutoAugment controller could predict; both sources
# scale levels by it (PARAMETER_MAX in the original CIFAR-10 code).
_MAX_LEVEL = 10.0

HParams = collections.namedtuple('HParams', ['cutout_const', 'translate_const'])
IMAGENET_HPARAMS = HParams(cutout_const=100, translate_const=250)

_IMAGENET_FILL = (128, 128, 128)
# augmentation_transforms.MEANS * 255, rounded.
_CIFAR10_FILL = (125, 123, 114)
# Largest translation and cutout side in pixels of the original 32x32 code.
_CIFAR10_TRANSLATE_CONST = 10
_CIFAR10_CUTOUT_CONST = 20


def policy_v0():
  """Returns the ImageNet policy v0 of the TPU reference.

  Returns:
    A list of 25 sub-policies, each a list of two
    `(op_name, probability, level)` tuples with levels in 0..10.
  """
  return [
      [('Equalize', 0.8, 1), ('ShearY', 0.8, 4)],
      [('Color', 0.4, 9), ('Equalize', 0.6, 3)],
      [('Color', 0.4, 1), ('Rotate', 0.6, 8)],
      [('Solarize', 0.8, 3), ('Equalize', 0.4, 7)],
      [('Solarize', 0.4, 2), ('Solarize', 0.6, 2)],
      [('Color', 0.2, 0), ('Equalize', 0.8, 8)],
      [('Equalize', 0.4, 8), ('SolarizeAdd', 0.8, 3)],
      [('ShearX', 0.2, 9), ('Rotate', 0.6, 8)],
      [('Color', 0.6, 1), ('Equalize', 1.0, 2)],
      [('Invert', 0.4, 9), ('Rotate', 0.6, 0)],
      [('Equalize', 1.0, 9), ('ShearY', 0.6, 3)],
      [('Color', 0.4, 7), ('Equalize', 0.6, 0)],
      [('Posterize', 0.4, 6), ('AutoContrast', 0.4, 7)],
      [('Solarize', 0.6, 8), ('Color', 0.6, 9)],
      [('Solarize', 0.2, 4), ('Rotate', 0.8, 9)],
      [('Rotate', 1.0, 7), ('TranslateY', 0.8, 9)],
      [('ShearX', 0.0, 0), ('Solarize', 0.8, 4)],
      [('ShearY', 0.8, 0), ('Color', 0.6, 4)],
      [('Color', 1.0, 0), ('Rotate', 0.6, 2)],
      [('Equalize', 0.8, 4), ('Equalize', 0.0, 8)],
      [('Equalize', 1.0, 4), ('AutoContrast', 0.6, 2)],
      [('ShearY', 0.4, 7), ('SolarizeAdd', 0.6, 7)],
      [('Posterize', 0.8, 2), ('Solarize', 0.6, 10)],
      [('Solarize', 0.6, 8), ('Equalize', 0.6, 1)],
      [('Color', 0.8, 6), ('Rotate', 0.4, 5)],
  ]


def policy_cifar10():
  """Returns the 25 CIFAR-10 sub-policies printed in the AutoAugment paper.

  They are the best five policies of its search on reduced CIFAR-10; 15-19
  (counting from 0) are not in the released code's list.

  Returns:
    A list of 25 sub-policies, each a list of two
    `(op_name, probability, level)` tuples with levels in 0..9. Levels of
    AutoContrast, Equalize and Invert are listed as in the paper but unused.
  """
  return [
      [('Invert', 0.1, 7), ('Contrast', 0.2, 6)],
      [('Rotate', 0.7, 2), ('TranslateX', 0.3, 9)],
      [('Sharpness', 0.8, 1), ('Sharpness', 0.9, 3)],
      [('ShearY', 0.5, 8), ('TranslateY', 0.7, 9)],
      [('AutoContrast', 0.5, 8), ('Equalize', 0.9, 2)],
      [('ShearY', 0.2, 7), ('Posterize', 0.3, 7)],
      [('Color', 0.4, 3), ('Brightness', 0.6, 7)],
      [('Sharpness', 0.3, 9), ('Brightness', 0.7, 9)],
      [('Equalize', 0.6, 5), ('Equalize', 0.5, 1)],
      [('Contrast', 0.6, 7), ('Sharpness', 0.6, 5)],
      [('Color', 0.7, 7), ('TranslateX', 0.5, 8)],
      [('Equalize', 0.3, 7), ('AutoContrast', 0.4, 8)],
      [('TranslateY', 0.4, 3), ('Sharpness', 0.2, 6)],
      [('Brightness', 0.9, 6), ('Color', 0.2, 8)],
      [('Solarize', 0.5, 2), ('Invert', 0.0, 3)],
      [('Equalize', 0.2, 0), ('AutoContrast', 0.6, 0)],
      [('Equalize', 0.2, 8), ('Equalize', 0.6, 4)],
      [('Color', 0.9, 9), ('Equalize', 0.6, 6)],
      [('AutoContrast', 0.8, 4), ('Solarize', 0.2, 8)],
      [('Brightness', 0.1, 3), ('Color', 0.7, 0)],
      [('Solarize', 0.4, 5), ('AutoContrast', 0.9, 3)],
      [('TranslateY', 0.9, 9), ('TranslateY', 0.7, 9)],
      [('AutoContrast', 0.9, 2), ('Solarize', 0.8, 3)],
      [('Equalize', 0.8, 8), ('Invert', 0.1, 3)],
      [('TranslateY', 0.7, 9), ('AutoContrast', 0.9, 1)],
  ]


# The three searches behind the released list, each a list of policies of five
# sub-policies, in the order `good_policies()` concatenates them.
_RELEASED_SEARCH_0 = [
    [[('Invert', 0.1, 7), ('Contrast', 0.2, 6)],
     [('Rotate', 0.7, 2), ('TranslateX', 0.3, 9)],
     [('Sharpness', 0.8, 1), ('Sharpness', 0.9, 3)],
     [('ShearY', 0.5, 8), ('TranslateY', 0.7, 9)],
     [('AutoContrast', 0.5, 8), ('Equalize', 0.9, 2)]],
    [[('Solarize', 0.4, 5), ('AutoContrast', 0.9, 3)],
     [('TranslateY', 0.9, 9), ('TranslateY', 0.7, 9)],
     [('AutoContrast', 0.9, 2), ('Solarize', 0.8, 3)],
     [('Equalize', 0.8, 8), ('Invert', 0.1, 3)],
     [('TranslateY', 0.7, 9), ('AutoContrast', 0.9, 1)]],
    [[('Solarize', 0.4, 5), ('AutoContrast', 0.0, 2)],
     [('TranslateY', 0.7, 9), ('TranslateY', 0.7, 9)],
     [('AutoContrast', 0.9, 0), ('Solarize', 0.4, 3)],
     [('Equalize', 0.7, 5), ('Invert', 0.1, 3)],
     [('TranslateY', 0.7, 9), ('TranslateY', 0.7, 9)]],
    [[('Solarize', 0.4, 5), ('AutoContrast', 0.9, 1)],
     [('TranslateY', 0.8, 9), ('TranslateY', 0.9, 9)],
     [('AutoContrast', 0.8, 0), ('TranslateY', 0.7, 9)],
     [('TranslateY', 0.2, 7), ('Color', 0.9, 6)],
     [('Equalize', 0.7, 6), ('Color', 0.4, 9)]],
]
_RELEASED_SEARCH_1 = [
    [[('ShearY', 0.2, 7), ('Posterize', 0.3, 7)],
     [('Color', 0.4, 3), ('Brightness', 0.6, 7)],
     [('Sharpness', 0.3, 9), ('Brightness', 0.7, 9)],
     [('Equalize', 0.6, 5), ('Equalize', 0.5, 1)],
     [('Contrast', 0.6, 7), ('Sharpness', 0.6, 5)]],
    [[('Brightness', 0.3, 7), ('AutoContrast', 0.5, 8)],
     [('AutoContrast', 0.9, 4), ('AutoContrast', 0.5, 6)],
     [('Solarize', 0.3, 5), ('Equalize', 0.6, 5)],
     [('TranslateY', 0.2, 4), ('Sharpness', 0.3, 3)],
     [('Brightness', 0.0, 8), ('Color', 0.8, 8)]],
    [[('Solarize', 0.2, 6), ('Color', 0.8, 6)],
     [('Solarize', 0.2, 6), ('AutoContrast', 0.8, 1)],
     [('Solarize', 0.4, 1), ('Equalize', 0.6, 5)],
     [('Brightness', 0.0, 0), ('Solarize', 0.5, 2)],
     [('AutoContrast', 0.9, 5), ('Brightness', 0.5, 3)]],
    [[('Contrast', 0.7, 5), ('Brightness', 0.0, 2)],
     [('Solarize', 0.2, 8), ('Solarize', 0.1, 5)],
     [('Contrast', 0.5, 1), ('TranslateY', 0.2, 9)],
     [('AutoContrast', 0.6, 5), ('TranslateY', 0.0, 9)],
     [('AutoContrast', 0.9, 4), ('Equalize', 0.8, 4)]],
    [[('Brightness', 0.0, 7), ('Equalize', 0.4, 7)],
     [('Solarize', 0.2, 5), ('Equalize', 0.7, 5)],
     [('Equalize', 0.6, 8), ('Color', 0.6, 2)],
     [('Color', 0.3, 7), ('Color', 0.2, 4)],
     [('AutoContrast', 0.5, 2), ('Solarize', 0.7, 2)]],
    [[('AutoContrast', 0.2, 0), ('Equalize', 0.1, 0)],
     [('ShearY', 0.6, 5), ('Equalize', 0.6, 5)],
     [('Brightness', 0.9, 3), ('AutoContrast', 0.4, 1)],
     [('Equalize', 0.8, 8), ('Equalize', 0.7, 7)],
     [('Equalize', 0.7, 7), ('Solarize', 0.5, 0)]],
    [[('Equalize', 0.8, 4), ('TranslateY', 0.8, 9)],
     [('TranslateY', 0.8, 9), ('TranslateY', 0.6, 9)],
     [('TranslateY', 0.9, 0), ('TranslateY', 0.5, 9)],
     [('AutoContrast', 0.5, 3), ('Solarize', 0.3, 4)],
     [('Solarize', 0.5, 3), ('Equalize', 0.4, 4)]],
]
_RELEASED_SEARCH_2 = [
    [[('Color', 0.7, 7), ('TranslateX', 0.5, 8)],
     [('Equalize', 0.3, 7), ('AutoContrast', 0.4, 8)],
     [('TranslateY', 0.4, 3), ('Sharpness', 0.2, 6)],
     [('Brightness', 0.9, 6), ('Color', 0.2, 8)],
     [('Solarize', 0.5, 2), ('Invert', 0.0, 3)]],
    [[('AutoContrast', 0.1, 5), ('Brightness', 0.0, 0)],
     [('Cutout', 0.2, 4), ('Equalize', 0.1, 1)],
     [('Equalize', 0.7, 7), ('AutoContrast', 0.6, 4)],
     [('Color', 0.1, 8), ('ShearY', 0.2, 3)],
     [('ShearY', 0.4, 2), ('Rotate', 0.7, 0)]],
    [[('ShearY', 0.1, 3), ('AutoContrast', 0.9, 5)],
     [('TranslateY', 0.3, 6), ('Cutout', 0.3, 3)],
     [('Equalize', 0.5, 0), ('Solarize', 0.6, 6)],
     [('AutoContrast', 0.3, 5), ('Rotate', 0.2, 7)],
     [('Equalize', 0.8, 2), ('Invert', 0.4, 0)]],
    [[('Equalize', 0.9, 5), ('Color', 0.7, 0)],
     [('Equalize', 0.1, 1), ('ShearY', 0.1, 3)],
     [('AutoContrast', 0.7, 3), ('Equalize', 0.7, 0)],
     [('Brightness', 0.5, 1), ('Contrast', 0.1, 7)],
     [('Contrast', 0.1, 4), ('Solarize', 0.6, 5)]],
    [[('Solarize', 0.2, 3), ('ShearX', 0.0, 0)],
     [('TranslateX', 0.3, 0), ('TranslateX', 0.6, 0)],
     [('Equalize', 0.5, 9), ('TranslateY', 0.6, 7)],
     [('ShearX', 0.1, 0), ('Sharpness', 0.5, 1)],
     [('Equalize', 0.8, 6), ('Invert', 0.3, 6)]],
    [[('AutoContrast', 0.3, 9), ('Cutout', 0.5, 3)],
     [('ShearX', 0.4, 4), ('AutoContrast', 0.9, 2)],
     [('ShearX', 0.0, 3), ('Posterize', 0.0, 3)],
     [('Solarize', 0.4, 3), ('Color', 0.2, 4)],
     [('Equalize', 0.1, 4), ('Equalize', 0.7, 6)]],
    [[('Equalize', 0.3, 8), ('AutoContrast', 0.4, 3)],
     [('Solarize', 0.6, 4), ('AutoContrast', 0.7, 6)],
     [('AutoContrast', 0.2, 9), ('Brightness', 0.4, 8)],
     [('Equalize', 0.1, 0), ('Equalize', 0.0, 6)],
     [('Equalize', 0.8, 4), ('Equalize', 0.0, 4)]],
    [[('Equalize', 0.5, 5), ('AutoContrast', 0.1, 2)],
     [('Solarize', 0.5, 5), ('AutoContrast', 0.9, 5)],
     [('AutoContrast', 0.6, 1), ('AutoContrast', 0.7, 8)],
     [('Equalize', 0.2, 0), ('AutoContrast', 0.1, 2)],
     [('Equalize', 0.6, 9), ('Equalize', 0.4, 4)]],
]


def policy_cifar10_released():
  """Returns the CIFAR-10 policy of the released AutoAugment training code.

  That code (`good_policies()`) concatenates the best policies of three
  searches: 4, 7 and 8 policies of five sub-policies each.

  Returns:
    A list of 95 sub-policies, each a list of two
    `(op_name, probability, level)` tuples with levels in 0..9.
  """
  searches = (_RELEASED_SEARCH_0, _RELEASED_SEARCH_1, _RELEASED_SEARCH_2)
  return [list(subpolicy) for search in searches for policy in search
          for subpolicy in policy]


# The stateless seed of the `distort_image_with_autoaugment` call being built,
# and how many random draws it has made so far (one per op built).
_STATELESS = threading.local()


@contextlib.contextmanager
def _stateless_draws(seed):
  """Makes `_uniform` stateless, seeded from `seed`, while the graph is built."""
  previous = getattr(_STATELESS, 'state', None)
  _STATELESS.state = None if seed is None else [tf.convert_to_tensor(seed), 0]
  try:
    yield
  finally:
    _STATELESS.state = previous


def _uniform(maxval=1.0, dtype=tf.float32):
  """A scalar uniform draw: stateful, or under `_stateless_draws` a function of its seed.

  Each stateless draw folds a build-order counter into the seed, so every
  random choice of the policy gets its own stream.
  """
  state = getattr(_STATELESS, 'state', None)
  if state is None:
    return tf.random.uniform([], maxval=maxval, dtype=dtype)
  state[1] += 1
  seed = tf.random.experimental.stateless_fold_in(state[0], state[1])
  return tf.random.stateless_uniform([], seed, maxval=maxval, dtype=dtype)


def blend(image1, image2, factor):
  """Interpolates from image1 (factor 0) to image2 (factor 1), as PIL enhancers.

  Factors above 1 extrapolate; the result is clipped to 0..255 and truncated.

  Args:
    image1: The degenerate image, uint8 or a scalar broadcast against image2.
    image2: The uint8 image.
    factor: A non-negative float scalar.

  Returns:
    The blended uint8 image.
  """
  image1 = tf.cast(image1, tf.float32)
  image2 = tf.cast(image2, tf.float32)
  blended = image1 + tf.cast(factor, tf.float32) * (image2 - image1)
  return tf.cast(tf.clip_by_value(blended, 0.0, 255.0), tf.uint8)


def _in_range(size, start, stop):
  """Returns a bool vector of length `size`, true on [start, stop)."""
  indices = tf.range(size)
  return (indices >= start) & (indices < stop)


def cutout(image, pad_size, replace=0):
  """Applies Cutout (arXiv:1708.04552) at a uniformly random centre.

  Args:
    image: An HxWx3 image, uint8 or float.
    pad_size: Half the side of the square, which is clipped at the borders.
    replace: The fill value, a scalar or one value per channel, cast to the
      image's dtype.

  Returns:
    The image with the square set to `replace`.
  """
  image = tf.convert_to_tensor(image)
  shape = tf.shape(image)
  center_y = _uniform(maxval=shape[0], dtype=tf.int32)
  center_x = _uniform(maxval=shape[1], dtype=tf.int32)
  rows = _in_range(shape[0], center_y - pad_size, center_y + pad_size)
  cols = _in_range(shape[1], center_x - pad_size, center_x + pad_size)
  inside = rows[:, tf.newaxis, tf.newaxis] & cols[tf.newaxis, :, tf.newaxis]
  return tf.where(inside, tf.cast(replace, image.dtype), image)


def random_cutout(image, size, replace, seed=None):
  """Cutout of a `size` x `size` square, as the AutoAugment CIFAR pipeline's last step.

  The centre is uniform over the image and the square is clipped at the
  borders, as in that pipeline's `cutout_numpy` (which fills half-sides of
  size // 2, so an odd `size` cuts a square one pixel smaller).

  Args:
    image: An HxWx3 image, uint8 or float.
    size: The side of the square in pixels.
    replace: The fill value, a scalar or one value per channel.
    seed: None for a stateful draw, or a shape-[2] integer tensor: then the
      centre is a stateless function of `seed` alone.

  Returns:
    The image with the square set to `replace`.
  """
  with _stateless_draws(seed):
    return cutout(image, size // 2, replace)


def solarize(image, threshold=128):
  """Inverts the pixels at or above `threshold` (PIL ImageOps.solarize)."""
  return tf.where(tf.cast(image, tf.int32) < threshold, image, 255 - image)


def solarize_add(image, addition=0, threshold=128):
  """Adds `addition` to the pixels below `threshold`, clipping to 0..255."""
  pixels = tf.cast(image, tf.int32)
  added = tf.cast(tf.clip_by_value(pixels + addition, 0, 255), tf.uint8)
  return tf.where(pixels < threshold, added, image)


def color(image, factor):
  """Scales saturation by blending with the grayscale image (PIL Color)."""
  gray = tf.image.grayscale_to_rgb(tf.image.rgb_to_grayscale(image))
  return blend(gray, image, factor)


def contrast(image, factor):
  """Scales contrast by blending with the mean gray level (PIL Contrast)."""
  gray = tf.cast(tf.image.rgb_to_grayscale(image), tf.float32)
  # PIL rounds the mean half up.
  return blend(tf.floor(tf.reduce_mean(gray) + 0.5), image, factor)


def brightness(image, factor):
  """Scales brightness by blending with black (PIL Brightness)."""
  return blend(tf.zeros_like(image), image, factor)


def posterize(image, bits):
  """Keeps the `bits` most significant bits of each pixel (PIL posterize).

  At least one bit is kept: 0 bits shifted uint8 by 8 in the reference, which
  TF clamps to a shift of 7.

  Args:
    image: A uint8 image.
    bits: The number of bits to keep, an int scalar.

  Returns:
    The posterized uint8 image.
  """
  shift = tf.clip_by_value(8 - tf.cast(bits, tf.int32), 0, 7)
  shift = tf.cast(shift, tf.uint8)
  return tf.bitwise.left_shift(tf.bitwise.right_shift(image, shift), shift)


def _transform(image, coefficients, replace):
  """Resamples `image` by a projective map, filling uncovered pixels.

  Args:
    image: A uint8 HxWx3 image.
    coefficients: The 8 numbers [a0, a1, a2, b0, b1, b2, c0, c1] mapping an
      output pixel (x, y) to the input pixel ((a0 x + a1 y + a2) / k,
      (b0 x + b1 y + b2) / k), k = c0 x + c1 y + 1; x is the column.
    replace: The fill value, a scalar or one value per channel.

  Returns:
    The transformed uint8 image.
  """
  coefficients = tf.stack([tf.cast(c, tf.float32) for c in coefficients])
  # An opaque fourth channel becomes 0 exactly where nothing was sampled.
  opaque = tf.ones_like(image[:, :, :1])
  wrapped = tf.concat([image, opaque], axis=-1)[tf.newaxis]
  moved = tf.raw_ops.ImageProjectiveTransformV3(
      images=wrapped, transforms=coefficients[tf.newaxis],
      output_shape=tf.shape(image)[:2], fill_value=0.0,
      interpolation='NEAREST', fill_mode='CONSTANT')[0]
  return tf.where(moved[:, :, 3:] > 0, moved[:, :, :3],
                  tf.cast(replace, tf.uint8))


def rotate(image, degrees, replace):
  """Rotates the image counterclockwise by `degrees` about its centre.

  This is the sense of PIL's Image.rotate and of tf.contrib.image.rotate used
  by the reference; the policies draw the sign at random anyway.

  Args:
    image: A uint8 HxWx3 image.
    degrees: The angle, a float scalar.
    replace: The fill value for the uncovered corners.

  Returns:
    The rotated uint8 image.
  """
  radians = tf.cast(degrees, tf.float32) * (math.pi / 180.0)
  cos, sin = tf.cos(radians), tf.sin(radians)
  size = tf.cast(tf.shape(image)[:2], tf.float32)
  center_y, center_x = (size[0] - 1.0) / 2.0, (size[1] - 1.0) / 2.0
  # Maps an output pixel, taken relative to the centre, back onto the input.
  return _transform(image, [
      cos, -sin, center_x - cos * center_x + sin * center_y,
      sin, cos, center_y - sin * center_x - cos * center_y, 0.0, 0.0,
  ], replace)


def translate_x(image, pixels, replace):
  """Translates as PIL's affine: out[y, x] = in[y, x + pixels]."""
  return _transform(image, [1.0, 0.0, pixels, 0.0, 1.0, 0.0, 0.0, 0.0], replace)


def translate_y(image, pixels, replace):
  """Translates as PIL's affine: out[y, x] = in[y + pixels, x]."""
  return _transform(image, [1.0, 0.0, 0.0, 0.0, 1.0, pixels, 0.0, 0.0], replace)


def shear_x(image, level, replace):
  """Shears as PIL's affine: out[y, x] = in[y, x + level * y]."""
  return _transform(image, [1.0, level, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0], replace)


def shear_y(image, level, replace):
  """Shears as PIL's affine: out[y, x] = in[y + level * x, x]."""
  return _transform(image, [1.0, 0.0, 0.0, level, 1.0, 0.0, 0.0, 0.0], replace)


def autocontrast(image):
  """Stretches each channel linearly to span 0..255 (PIL autocontrast).

  Constant channels are left unchanged.

  Args:
    image: A uint8 HxWx3 image.

  Returns:
    The stretched uint8 image.
  """
  pixels = tf.cast(image, tf.float32)
  low = tf.reduce_min(pixels, axis=[0, 1])
  span = tf.reduce_max(pixels, axis=[0, 1]) - low
  # Multiplying before dividing keeps the channel maximum at exactly 255.
  stretched = (pixels - low) * 255.0 / tf.maximum(span, 1.0)
  stretched = tf.cast(tf.clip_by_value(stretched, 0.0, 255.0), tf.uint8)
  return tf.where(span > 0, stretched, image)


def sharpness(image, factor):
  """Blends the image with its PIL SMOOTH-filtered version (PIL Sharpness).

  As in PIL, the one-pixel border of the filtered image keeps the original
  values, and filtered values are rounded.

  Args:
    image: A uint8 HxWx3 image.
    factor: A non-negative float scalar; 1 is the identity.

  Returns:
    The sharpened (factor > 1) or blurred (factor < 1) uint8 image.
  """
  pixels = tf.cast(image, tf.float32)
  # Integer weights keep the sums exact before the division by their total.
  kernel = tf.constant([[1.0, 1.0, 1.0], [1.0, 5.0, 1.0], [1.0, 1.0, 1.0]])
  kernel = tf.tile(kernel[:, :, tf.newaxis, tf.newaxis], [1, 1, 3, 1])
  smooth = tf.nn.depthwise_conv2d(
      pixels[tf.newaxis], kernel, strides=[1, 1, 1, 1], padding='SAME')[0]
  smooth = tf.round(smooth / 13.0)
  shape = tf.shape(image)
  interior = (_in_range(shape[0], 1, shape[0] - 1)[:, tf.newaxis, tf.newaxis]
              & _in_range(shape[1], 1, shape[1] - 1)[tf.newaxis, :, tf.newaxis])
  return blend(tf.where(interior, smooth, pixels), image, factor)


def _equalize_channel(channel):
  """Equalizes one uint8 channel with PIL's histogram lookup table."""
  values = tf.cast(channel, tf.int32)
  histogram = tf.math.bincount(values, minlength=256, maxlength=256)
  last_count = tf.gather(histogram, tf.reduce_max(tf.where(histogram > 0)))
  step = (tf.reduce_sum(histogram) - last_count) // 255

  def apply_lut():
    # A value maps to the number of smaller pixels, in rounded units of step.
    lut = (tf.cumsum(histogram, exclusive=True) + step // 2) // step
    return tf.gather(tf.minimum(lut, 255), values)

  return tf.cast(tf.cond(step > 0, apply_lut, lambda: values), tf.uint8)


def equalize(image):
  """Equalizes the histogram of each channel (PIL ImageOps.equalize)."""
  return tf.stack([_equalize_channel(image[:, :, c]) for c in range(3)], -1)


def invert(image):
  """Inverts the image: 255 - x."""
  return 255 - tf.convert_to_tensor(image)


NAME_TO_FUNC = {
    'AutoContrast': autocontrast,
    'Equalize': equalize,
    'Invert': invert,
    'Rotate': rotate,
    'Posterize': posterize,
    'Solarize': solarize,
    'SolarizeAdd': solarize_add,
    'Color': color,
    'Contrast': contrast,
    'Brightness': brightness,
    'Sharpness': sharpness,
    'ShearX': shear_x,
    'ShearY': shear_y,
    'TranslateX': translate_x,
    'TranslateY': translate_y,
    'Cutout': cutout,
}

# Ops whose last argument is the policy's fill value.
_FILL_OPS = frozenset(
    ['Rotate', 'ShearX', 'ShearY', 'TranslateX', 'TranslateY', 'Cutout'])


def _float_parameter(level, maxval):
  """Scales `maxval` by level / _MAX_LEVEL."""
  return level * maxval / _MAX_LEVEL


def _int_parameter(level, maxval):
  """Scales `maxval` by level / _MAX_LEVEL, truncating to an int."""
  return int(_float_parameter(level, maxval))


def _randomly_negate(value):
  """Returns the float tensor `value` or `-value` with equal probability."""
  value = tf.cast(value, tf.float32)
  return tf.where(_uniform() < 0.5, -value, value)


def _enhance_level_to_arg(level):
  """Maps a level to an enhancement factor in 0.1..1.9 (both policies)."""
  return (_float_parameter(level, 1.8) + 0.1,)


def _signed_level_to_arg(maxval, to_number=_float_parameter):
  """Builds a level-to-argument map with range +-maxval and a random sign."""
  return lambda level: (_randomly_negate(to_number(level, maxval)),)


def _no_args(level):
  """The level-to-argument map of ops that take no magnitude."""
  del level  # AutoContrast, Equalize and Invert ignore it.
  return ()


def level_to_arg(hparams):
  """Returns the v0 (TPU reference) map from op name to level -> op args.

  Args:
    hparams: An `HParams` giving the largest cutout half-side and
      translation, in pixels.

  Returns:
    A dict from op name to a function of the level (0..10) returning the op's
    arguments, without the fill value, as a tuple.
  """
  return {
      'AutoContrast': _no_args,
      'Equalize': _no_args,
      'Invert': _no_args,
      'Rotate': _signed_level_to_arg(30.0),
      'Posterize': lambda level: (_int_parameter(level, 4),),
      'Solarize': lambda level: (_int_parameter(level, 256),),
      'SolarizeAdd': lambda level: (_int_parameter(level, 110),),
      'Color': _enhance_level_to_arg,
      'Contrast': _enhance_level_to_arg,
      'Brightness': _enhance_level_to_arg,
      'Sharpness': _enhance_level_to_arg,
      'ShearX': _signed_level_to_arg(0.3),
      'ShearY': _signed_level_to_arg(0.3),
      'Cutout': lambda level: (_int_parameter(level, hparams.cutout_const),),
      'TranslateX': _signed_level_to_arg(hparams.translate_const),
      'TranslateY': _signed_level_to_arg(hparams.translate_const),
  }


def cifar10_level_to_arg():
  """Returns the map from op name to level -> op args of the CIFAR-10 code.

  The ranges are those of the original augmentation_transforms.py for 32x32
  images; see the module docstring.

  Returns:
    A dict from op name to a function of the level (0..9) returning the op's
    arguments, without the fill value, as a tuple.
  """
  translate = _signed_level_to_arg(_CIFAR10_TRANSLATE_CONST, _int_parameter)
  return {
      'AutoContrast': _no_args,
      'Equalize': _no_args,
      'Invert': _no_args,
      'Rotate': _signed_level_to_arg(30, _int_parameter),
      'Posterize': lambda level: (4 - _int_parameter(level, 4),),
      'Solarize': lambda level: (256 - _int_parameter(level, 256),),
      'Color': _enhance_level_to_arg,
      'Contrast': _enhance_level_to_arg,
      'Brightness': _enhance_level_to_arg,
      'Sharpness': _enhance_level_to_arg,
      'ShearX': _signed_level_to_arg(0.3),
      'ShearY': _signed_level_to_arg(0.3),
      # The original cuts a square of side 2 (size // 2) around the centre.
      'Cutout': lambda level: (
          _int_parameter(level, _CIFAR10_CUTOUT_CONST) // 2,),
      'TranslateX': translate,
      'TranslateY': translate,
  }


_PolicySpec = collections.namedtuple(
    '_PolicySpec', ['subpolicies', 'level_to_arg', 'fill'])

_POLICIES = {
    'v0': _PolicySpec(
        policy_v0, functools.partial(level_to_arg, IMAGENET_HPARAMS),
        _IMAGENET_FILL),
    'cifar10': _PolicySpec(policy_cifar10, cifar10_level_to_arg, _CIFAR10_FILL),
    'cifar10_released': _PolicySpec(
        policy_cifar10_released, cifar10_level_to_arg, _CIFAR10_FILL),
}


# Ops that ignore their level, so one branch serves all their levels.
_LEVELLESS_OPS = frozenset(['AutoContrast', 'Equalize', 'Invert'])


def _apply_op(image, name, level, op_args, replace):
  """Applies the op `name` at `level` (no probability: that is the caller's)."""
  args = op_args[name](level)
  if name in _FILL_OPS:
    args += (replace,)
  return NAME_TO_FUNC[name](image, *args)


def _apply_position(image, steps, index, op_args, replace):
  """Applies, with its probability, step `steps[index]` of the chosen sub-policy.

  `steps` holds the step at one position (first or second) of every
  sub-policy. Steps with the same op and level share one branch of a
  `tf.switch_case`, which keeps the graph, and its build time, small: the
  released CIFAR-10 list has 190 steps but 81 distinct ones.

  Args:
    image: The uint8 image.
    steps: One `(op_name, probability, level)` step per sub-policy.
    index: The chosen sub-policy, an int32 scalar tensor.
    op_args: The policy's map from op name to level -> op args.
    replace: The policy's fill value.

  Returns:
    The image after that step.
  """
  keys = [(name, None if name in _LEVELLESS_OPS else level)
          for name, _, level in steps]
  distinct = list(dict.fromkeys(keys))
  branch = tf.gather([distinct.index(key) for key in keys], index)
  prob = tf.gather([prob for _, prob, _ in steps], index)
  branches = [functools.partial(_apply_op, image, name, level, op_args, replace)
              for name, level in distinct]
  return tf.cond(_uniform() < prob, lambda: tf.switch_case(branch, branches),
                 lambda: image)


def distort_image_with_autoaugment(image, augmentation_name, seed=None):
  """Applies one uniformly chosen sub-policy of an AutoAugment policy.

  Each step of the chosen sub-policy is then applied with its probability.
  The reference's chain of `tf.cond`s over whole sub-policies becomes, for
  each step position, one `tf.cond` on the step's probability around one
  `tf.switch_case` over the distinct steps; the distribution is the same.

  Args:
    image: A uint8 HxWx3 image tensor of static or dynamic size.
    augmentation_name: 'v0' (ImageNet), 'cifar10' (the paper's 25 CIFAR-10
      sub-policies) or 'cifar10_released' (the released code's 95).
    seed: None for stateful random ops, or a shape-[2] integer tensor: then
      every random choice is stateless, a function of `seed` alone.

  Returns:
    The augmented uint8 image, of the same shape.

  Raises:
    ValueError: If `augmentation_name` is not a known policy.
  """
  if augmentation_name not in _POLICIES:
    raise ValueError('Invalid augmentation_name {!r}; expected one of {}.'
                     .format(augmentation_name, sorted(_POLICIES)))
  spec = _POLICIES[augmentation_name]
  subpolicies = spec.subpolicies()
  image = tf.convert_to_tensor(image)
  augmented = image
  with _stateless_draws(seed):
    op_args = spec.level_to_arg()
    index = _uniform(maxval=len(subpolicies), dtype=tf.int32)
    for steps in zip(*subpolicies):
      augmented = _apply_position(augmented, steps, index, op_args, spec.fill)
  return tf.ensure_shape(augmented, image.shape)
