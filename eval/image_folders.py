"""Image data sets stored as class folders: `<folder>/<wnid>/*.JPEG`.

ImageNet-C (each severity folder) and ImageNet-A are released this way. This
module lists such a folder with each image's class, feeds the files to
`runner.predict` through a preprocessing function, and counts top-1 hits
(eval.top1). A file that fails to decode or has the wrong size surfaces as a
TensorFlow op error deep inside prediction; it is found again eagerly and
reported by name as an ImageFolderError.
"""
import os
import re

import tensorflow as tf

from eval import top1

IMAGE_EXTENSIONS = ('.jpeg', '.jpg')


class ImageFolderError(ValueError):
  """A folder of images does not have the expected layout or contents."""


def subdirs(folder):
  """Sorted names of the visible subdirectories of a folder."""
  return sorted(name for name in os.listdir(folder)
                if not name.startswith('.') and os.path.isdir(os.path.join(folder, name)))


def _image_files(folder):
  """Sorted paths of the JPEG files in a folder."""
  return [os.path.join(folder, name) for name in sorted(os.listdir(folder))
          if os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS
          and os.path.isfile(os.path.join(folder, name))]


def class_folder_images(folder, class_of_wnid, dataset):
  """Lists `folder/<wnid>/*.jpg|*.JPEG` with each image's class.

  Args:
    folder: holds one subfolder per wnid.
    class_of_wnid: {wnid: class index} of the wnids allowed here.
    dataset: the data set's name, for messages.

  Returns:
    (paths, labels): lists in sorted wnid, then file name, order.

  Raises:
    ImageFolderError: naming a subfolder that is not an allowed wnid, or the
      folder when it holds no images.
  """
  paths, labels = [], []
  for wnid in subdirs(folder):
    if wnid not in class_of_wnid:
      raise ImageFolderError('%s is not one of the %d %s class (wnid) folders'
                             % (os.path.join(folder, wnid), len(class_of_wnid), dataset))
    images = _image_files(os.path.join(folder, wnid))
    paths.extend(images)
    labels.extend([class_of_wnid[wnid]] * len(images))
  if not paths:
    raise ImageFolderError('%s holds no images (expected <wnid>/*.JPEG)' % folder)
  return paths, labels


def decode_image(path):
  """Reads and decodes one image file into uint8 [H, W, 3]."""
  return tf.io.decode_image(tf.io.read_file(path), channels=3, expand_animations=False)


def exact_size_preprocess(image_size):
  """Decodes an image as float pixels, failing unless it is image_size square."""
  def preprocess(path):
    image = decode_image(path)
    right_size = tf.reduce_all(tf.equal(tf.shape(image)[:2], [image_size, image_size]))
    check = tf.debugging.Assert(right_size, ['image of the wrong size:', path])
    with tf.control_dependencies([check]):
      image = tf.identity(image)
    return tf.cast(tf.ensure_shape(image, [image_size, image_size, 3]), tf.float32)
  return preprocess


def files_input_fn(paths, labels, preprocess, batch_size):
  """A `runner.predict` input_fn over image files, in order."""
  def input_fn(params):
    del params
    dataset = tf.data.Dataset.from_tensor_slices(
        (tf.constant(paths, tf.string), tf.constant(labels, tf.int32)))
    dataset = dataset.map(lambda path, label: {'image': preprocess(path), 'label': label},
                          num_parallel_calls=tf.data.AUTOTUNE)
    return dataset.batch(batch_size).prefetch(tf.data.AUTOTUNE)
  return input_fn


def op_message(error):
  """A TensorFlow op error's message without its function and op decorations."""
  message = re.sub(r'\{\{[^}]*\}\}', '', error.message)
  return re.sub(r'\[Op:\w+\].*', '', message, flags=re.S).strip()


def find_bad_image(paths, image_size=None):
  """Decodes each file eagerly; describes the first unreadable or wrong-sized one.

  Returns:
    A message naming the file, or None if every file is fine.
  """
  for path in paths:
    try:
      shape = decode_image(path).shape
    except tf.errors.OpError as e:
      return '%s: cannot read or decode the image (%s)' % (path, op_message(e))
    if image_size is not None and tuple(shape[:2]) != (image_size, image_size):
      return '%s: image is %dx%d, expected %dx%d' % (
          path, shape[0], shape[1], image_size, image_size)
  return None


def evaluate_files(model, paths, labels, preprocess, batch_size, *,
                   image_size=None, class_indices=None):
  """Top-1 (num_correct, num_examples) of a model on image files.

  Raises:
    ImageFolderError: naming the file, when one fails to decode or (given
      image_size) is not image_size x image_size.
  """
  input_fn = files_input_fn(paths, labels, preprocess, batch_size)
  try:
    return top1.count_correct(model, input_fn, class_indices)
  except tf.errors.OpError as e:
    problem = find_bad_image(paths, image_size)
    if problem is None:
      raise
    raise ImageFolderError(problem) from e
