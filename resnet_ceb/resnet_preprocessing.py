"""ImageNet preprocessing of the TPU ResNet reference (resnet_preprocessing.py).

Training: an Inception-style distorted bounding-box crop (area 8%-100%, aspect
ratio 3/4-4/3, 10 attempts, falling back to the eval center crop), decoded
straight from the JPEG bytes, a bicubic resize to image_size, a random
left-right flip and, optionally, AutoAugment ImageNet policy v0.
Evaluation: a center crop of image_size / (image_size + 32) of the shorter
side, resized bicubically to image_size.

The output is float pixels in [0, 255] (bfloat16 if asked); the network
normalizes them itself (resnet_model.normalize_pixels). One difference from
the reference: the bicubic resize can overshoot [0, 255] slightly, which the
reference clipped only before AutoAugment; here every output is clipped so
callers can rely on the range.
"""
import tensorflow as tf

from resnet_ceb import autoaugment

IMAGE_SIZE = 224
CROP_PADDING = 32
AUGMENT_NAMES = ('autoaugment',)
# AutoAugment's ImageNet policy, as in the reference.
AUTOAUGMENT_POLICY = 'v0'


def distorted_bounding_box_crop(image_bytes, bbox, min_object_covered=0.1,
                                aspect_ratio_range=(0.75, 1.33),
                                area_range=(0.05, 1.0), max_attempts=100,
                                seed=None):
  """Decodes a random crop of a JPEG, sampled as in Inception training.

  Args:
    image_bytes: scalar string tensor of JPEG bytes.
    bbox: [1, num_boxes, 4] float boxes (ymin, xmin, ymax, xmax) to cover.
    min_object_covered: fraction of some box the crop must contain.
    aspect_ratio_range: allowed width / height of the crop.
    area_range: allowed fraction of the image area.
    max_attempts: samples tried before returning the whole image.
    seed: None (stateful op), or a shape-[2] integer tensor making the crop a
      stateless function of it.

  Returns:
    The uint8 [h, w, 3] crop.
  """
  shape = tf.io.extract_jpeg_shape(image_bytes)
  options = dict(bounding_boxes=bbox, min_object_covered=min_object_covered,
                 aspect_ratio_range=aspect_ratio_range, area_range=area_range,
                 max_attempts=max_attempts, use_image_if_no_bounding_boxes=True)
  if seed is None:
    bbox_begin, bbox_size, _ = tf.image.sample_distorted_bounding_box(shape, **options)
  else:
    bbox_begin, bbox_size, _ = tf.image.stateless_sample_distorted_bounding_box(
        shape, seed=seed, **options)
  offset_y, offset_x, _ = tf.unstack(bbox_begin)
  target_height, target_width, _ = tf.unstack(bbox_size)
  crop_window = tf.stack([offset_y, offset_x, target_height, target_width])
  return tf.io.decode_and_crop_jpeg(image_bytes, crop_window, channels=3)


def _at_least_x_are_equal(a, b, x):
  """Whether at least x elements of a and b are equal."""
  return tf.reduce_sum(tf.cast(tf.equal(a, b), tf.int32)) >= x


def _resize(image, image_size):
  """The reference's bicubic resize of one image to image_size x image_size."""
  return tf.compat.v1.image.resize_bicubic([image], [image_size, image_size])[0]


def _decode_and_random_crop(image_bytes, image_size, seed=None):
  """Random crop and resize; the center crop if sampling gave the whole image."""
  bbox = tf.constant([0.0, 0.0, 1.0, 1.0], dtype=tf.float32, shape=[1, 1, 4])
  image = distorted_bounding_box_crop(
      image_bytes, bbox, min_object_covered=0.1,
      aspect_ratio_range=(3. / 4, 4. / 3.), area_range=(0.08, 1.0),
      max_attempts=10, seed=seed)
  original_shape = tf.io.extract_jpeg_shape(image_bytes)
  # All 10 attempts failed: sample_distorted_bounding_box returned the image.
  bad = _at_least_x_are_equal(original_shape, tf.shape(image), 3)
  return tf.cond(bad,
                 lambda: _decode_and_center_crop(image_bytes, image_size),
                 lambda: _resize(image, image_size))


def _decode_and_center_crop(image_bytes, image_size):
  """Center crop of image_size / (image_size + CROP_PADDING) of the shorter side."""
  shape = tf.io.extract_jpeg_shape(image_bytes)
  image_height, image_width = shape[0], shape[1]
  padded_center_crop_size = tf.cast(
      (image_size / (image_size + CROP_PADDING))
      * tf.cast(tf.minimum(image_height, image_width), tf.float32), tf.int32)
  offset_height = ((image_height - padded_center_crop_size) + 1) // 2
  offset_width = ((image_width - padded_center_crop_size) + 1) // 2
  crop_window = tf.stack([offset_height, offset_width,
                          padded_center_crop_size, padded_center_crop_size])
  image = tf.io.decode_and_crop_jpeg(image_bytes, crop_window, channels=3)
  return _resize(image, image_size)


def _autoaugment(image, seed=None):
  """AutoAugment policy v0 on float pixels, through uint8 as the reference."""
  image = tf.cast(tf.clip_by_value(image, 0.0, 255.0), tf.uint8)
  image = autoaugment.distort_image_with_autoaugment(image, AUTOAUGMENT_POLICY,
                                                     seed=seed)
  return tf.cast(image, tf.float32)


def _finish(image, image_size, use_bfloat16):
  """Static shape, [0, 255] range and the requested float type."""
  image = tf.reshape(image, [image_size, image_size, 3])
  image = tf.clip_by_value(image, 0.0, 255.0)
  return tf.cast(image, tf.bfloat16 if use_bfloat16 else tf.float32)


def _sub_seed(seed, index):
  """The index-th stateless seed derived from `seed`, or None when unseeded."""
  if seed is None:
    return None
  return tf.random.experimental.stateless_fold_in(seed, index)


def _flip(image, seed):
  """Random left-right flip, stateless when seeded."""
  if seed is None:
    return tf.image.random_flip_left_right(image)
  return tf.image.stateless_random_flip_left_right(image, seed)


def preprocess_for_train(image_bytes, image_size=IMAGE_SIZE, use_bfloat16=False,
                         augment_name=None, seed=None):
  """Random crop, flip and optional AutoAugment of one JPEG (stateless if seeded)."""
  image = _decode_and_random_crop(image_bytes, image_size, _sub_seed(seed, 0))
  image = _flip(image, _sub_seed(seed, 1))
  image = tf.reshape(image, [image_size, image_size, 3])
  if augment_name == 'autoaugment':
    image = _autoaugment(image, _sub_seed(seed, 2))
  return _finish(image, image_size, use_bfloat16)


def preprocess_for_eval(image_bytes, image_size=IMAGE_SIZE, use_bfloat16=False):
  """Center crop of one JPEG."""
  image = _decode_and_center_crop(image_bytes, image_size)
  return _finish(image, image_size, use_bfloat16)


def check_augment_name(augment_name):
  """Raises ValueError naming --augment_name unless it is None or known."""
  if augment_name is not None and augment_name not in AUGMENT_NAMES:
    raise ValueError('--augment_name=%r is not one of: %s (or unset for none)'
                     % (augment_name, ', '.join(AUGMENT_NAMES)))


def preprocess_image(image_bytes, is_training, image_size=IMAGE_SIZE,
                     use_bfloat16=False, augment_name=None, seed=None):
  """Turns JPEG bytes into a model input.

  Args:
    image_bytes: scalar string tensor, an encoded JPEG.
    is_training: random crop + flip (+ AutoAugment) if True, else center crop.
    image_size: output height and width.
    use_bfloat16: return bfloat16 (for TPU) instead of float32.
    augment_name: None, or 'autoaugment' for ImageNet policy v0 (training only).
    seed: None, or a shape-[2] integer tensor: crop, flip and AutoAugment
      are then stateless functions of it (deterministic runs, exact resume).

  Returns:
    A [image_size, image_size, 3] tensor of pixels in [0, 255].

  Raises:
    ValueError: unknown augment_name.
  """
  check_augment_name(augment_name)
  if is_training:
    return preprocess_for_train(image_bytes, image_size, use_bfloat16,
                                augment_name, seed)
  return preprocess_for_eval(image_bytes, image_size, use_bfloat16)
