"""ImageNet-C (Hendrycks & Dietterich 2019): corruption errors, mCE and their evaluation.

    python -m eval.imagenet_c --model_dir DIR --data_dir IMAGENET_C_ROOT

reads the released layout `<root>/<corruption>/<severity>/<wnid>/*.JPEG`
(images already 224x224, so they are only decoded, never resized; the label is
the wnid's index among the 1000 sorted ImageNet wnids) and writes one result
file item per (corruption, severity), e.g. `gaussian_noise/3`, then a summary:
E_c = mean_s E_cs per corruption, avg = mean_c E_c and
mCE = mean_c (sum_s E_cs / sum_s E^AlexNet_cs) (Table 1's `mCE` and `avg`).

Everything in the requested part of the tree is checked before the result file
is created. A file that does not decode or has the wrong size is found when its
(corruption, severity) is evaluated, and the error names it; the result file
then holds only the items finished before, and re-running resumes after them.
This module also holds the image-folder pieces eval.imagenet_a reuses.
"""
import functools
import os
import re

import numpy as np
import tensorflow as tf

from eval import clean
from eval import results
from eval import runner
from resnet_ceb import train_utils

EVALUATION = 'imagenet_c'
NUM_CLASSES = 1000

CORRUPTIONS = (
    'gaussian_noise', 'shot_noise', 'impulse_noise', 'defocus_blur', 'glass_blur',
    'motion_blur', 'zoom_blur', 'snow', 'frost', 'fog', 'brightness', 'contrast',
    'elastic_transform', 'pixelate', 'jpeg_compression')
# The release's four extra corruptions (no AlexNet baseline, not in mCE): folders
# of these names may sit in the root and are left alone.
EXTRA_CORRUPTIONS = ('speckle_noise', 'gaussian_blur', 'spatter', 'saturate')
SEVERITIES = (1, 2, 3, 4, 5)

# AlexNet's error on each corruption, averaged over the five severities; mCE's
# normalizers (Hendrycks & Dietterich 2019).
ALEXNET_ERRORS = {
    'gaussian_noise': 0.886428, 'shot_noise': 0.894468, 'impulse_noise': 0.922640,
    'defocus_blur': 0.819880, 'glass_blur': 0.826268, 'motion_blur': 0.785948,
    'zoom_blur': 0.798360, 'snow': 0.866816, 'frost': 0.826572, 'fog': 0.819324,
    'brightness': 0.564592, 'contrast': 0.853204, 'elastic_transform': 0.646056,
    'pixelate': 0.717840, 'jpeg_compression': 0.606500,
}

IMAGE_EXTENSIONS = ('.jpeg', '.jpg')
_WNIDS_FILE = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'data',
                           'imagenet_wnids_sorted.txt')


class DataError(ValueError):
  """A data set on disk does not have the expected layout or contents."""


def _fraction(corruption, value):
  """Checks one error is a finite fraction in [0, 1]; returns it as a float."""
  if isinstance(value, bool) or not isinstance(value, (int, float, np.number)):
    raise ValueError('%s: error %r is not a number' % (corruption, value))
  if not np.isfinite(value) or not 0.0 <= value <= 1.0:
    raise ValueError('%s: error %r is not a finite fraction in [0, 1]'
                     % (corruption, value))
  return float(value)


def corruption_error(corruption, value):
  """One corruption's error averaged over severities, from a number or a list of 5.

  Raises:
    ValueError: naming the corruption, for a list not of 5 values or a value
      that is not a finite fraction.
  """
  if isinstance(value, (list, tuple, np.ndarray)):
    if len(value) != len(SEVERITIES):
      raise ValueError('%s: expected %d per-severity errors, got %d'
                       % (corruption, len(SEVERITIES), len(value)))
    return float(np.mean([_fraction(corruption, v) for v in value]))
  return _fraction(corruption, value)


def corruption_errors(errors, corruptions):
  """Checks `errors` covers exactly `corruptions`; returns {corruption: E_c}."""
  if not hasattr(errors, 'keys'):
    raise ValueError('errors must map corruption names to errors, got %r' % (errors,))
  unknown = sorted(set(errors) - set(corruptions))
  if unknown:
    raise ValueError('unknown corruption %s (expected: %s)'
                     % (', '.join(map(str, unknown)), ', '.join(corruptions)))
  missing = [c for c in corruptions if c not in errors]
  if missing:
    raise ValueError('missing corruption %s' % ', '.join(missing))
  return {c: corruption_error(c, errors[c]) for c in corruptions}


def mce(errors, baseline=None):
  """Mean corruption error: mean_c (sum_s E_cs / sum_s B_cs).

  With equal-sized severities sum_s E_cs / sum_s B_cs = E_c / B_c, so a
  corruption may be given by its mean error or by its 5 per-severity errors.

  Args:
    errors: {corruption: error or list of 5 errors}, fractions, covering
      exactly the baseline's corruptions.
    baseline: {corruption: error} of the normalizing model; default AlexNet's
      ALEXNET_ERRORS (the 15 ImageNet-C corruptions).

  Returns:
    mCE as a fraction (1.0 = as bad as the baseline).

  Raises:
    ValueError: naming a missing or unknown corruption, a list not of 5
      values, or a value that is not a finite fraction.
  """
  baseline = ALEXNET_ERRORS if baseline is None else baseline
  normalizers = corruption_errors(baseline, tuple(baseline))
  for corruption, value in normalizers.items():
    if value <= 0.0:
      raise ValueError('%s: baseline error must be positive, got %r' % (corruption, value))
  observed = corruption_errors(errors, tuple(baseline))
  return float(np.mean([observed[c] / normalizers[c] for c in baseline]))


def average_error(errors, corruptions=CORRUPTIONS):
  """Unnormalized average error: mean_c E_c, E_c the mean over severities.

  Args:
    errors: as for `mce`, covering exactly `corruptions`.
    corruptions: the corruptions averaged; default the 15 of ImageNet-C.

  Raises:
    ValueError: as `mce`.
  """
  return float(np.mean(list(corruption_errors(errors, corruptions).values())))


@functools.lru_cache(maxsize=None)
def imagenet_wnids():
  """The 1000 ImageNet-1k wnids in sorted order: class i is the i-th."""
  with open(_WNIDS_FILE) as f:
    return tuple(f.read().split())


def _subdirs(folder):
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
    DataError: naming a subfolder that is not an allowed wnid, or the folder
      when it holds no images.
  """
  paths, labels = [], []
  for wnid in _subdirs(folder):
    if wnid not in class_of_wnid:
      raise DataError('%s is not one of the %d %s class (wnid) folders'
                      % (os.path.join(folder, wnid), len(class_of_wnid), dataset))
    images = _image_files(os.path.join(folder, wnid))
    paths.extend(images)
    labels.extend([class_of_wnid[wnid]] * len(images))
  if not paths:
    raise DataError('%s holds no images (expected <wnid>/*.JPEG)' % folder)
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
    DataError: naming the file, when one fails to decode or (given
      image_size) is not image_size x image_size.
  """
  input_fn = files_input_fn(paths, labels, preprocess, batch_size)
  try:
    return clean.count_correct(model, input_fn, class_indices)
  except tf.errors.OpError as e:
    problem = find_bad_image(paths, image_size)
    if problem is None:
      raise
    raise DataError(problem) from e


def item_key(corruption, severity):
  """The result-file key of one (corruption, severity), e.g. 'gaussian_noise/3'."""
  return '%s/%d' % (corruption, severity)


def _check_folder(path, what):
  if not os.path.isdir(path):
    raise DataError('%s: %s folder not found' % (path, what))


def _check_root(root, corruptions, severities):
  """Checks the corruption and severity folders of the requested part of the tree."""
  if not os.path.isdir(root):
    raise DataError('--data_dir=%s: ImageNet-C root folder not found' % root)
  for name in _subdirs(root):
    if name not in CORRUPTIONS + EXTRA_CORRUPTIONS:
      raise DataError('%s: unknown corruption folder (expected: %s)'
                      % (os.path.join(root, name), ', '.join(CORRUPTIONS)))
  allowed = [str(s) for s in SEVERITIES]
  for corruption in corruptions:
    folder = os.path.join(root, corruption)
    _check_folder(folder, 'corruption')
    for name in _subdirs(folder):
      if name not in allowed:
        raise DataError('%s: unknown severity folder (expected 1-5)'
                        % os.path.join(folder, name))
    for severity in severities:
      _check_folder(os.path.join(folder, str(severity)), 'severity')


def item_images(root, corruption, severity):
  """(paths, labels) of one (corruption, severity) of the tree."""
  class_of_wnid = {wnid: i for i, wnid in enumerate(imagenet_wnids())}
  return class_folder_images(os.path.join(root, corruption, str(severity)),
                             class_of_wnid, 'ImageNet')


def check_data(root, corruptions, severities):
  """Checks the requested part of the tree before anything is written.

  Raises:
    DataError: naming the root, a missing or unknown corruption or severity
      folder, a folder that is not an ImageNet wnid, or a folder with no images.
  """
  _check_root(root, corruptions, severities)
  for corruption in corruptions:
    for severity in severities:
      item_images(root, corruption, severity)


def _canonical(corruptions, severities):
  """Corruptions in CORRUPTIONS' order and sorted severities, or ValueError."""
  unknown = [c for c in corruptions if c not in CORRUPTIONS]
  unknown += [s for s in severities if s not in SEVERITIES]
  if unknown or not corruptions or not severities:
    raise ValueError('bad corruptions %s or severities %s (unknown: %s)'
                     % (list(corruptions), list(severities), unknown))
  return [c for c in CORRUPTIONS if c in corruptions], sorted(set(severities))


def summarize(items, corruptions, severities):
  """Per-corruption E_c, and avg and mCE when all 15 x 5 were evaluated (else None)."""
  per_severity = {c: [items[item_key(c, s)]['error'] for s in severities]
                  for c in corruptions}
  complete = (tuple(corruptions) == CORRUPTIONS and tuple(severities) == SEVERITIES)
  return {
      'corruption_errors': {c: float(np.mean(e)) for c, e in per_severity.items()},
      'average_error': average_error(per_severity) if complete else None,
      'mce': mce(per_severity) if complete else None,
      'num_examples': sum(items[item_key(c, s)]['num_examples']
                          for c in corruptions for s in severities),
  }


def evaluate(model, data_dir, *, output, corruptions=CORRUPTIONS,
             severities=SEVERITIES, batch_size=100, image_size=224):
  """Evaluates a checkpoint on ImageNet-C into a resumable result file.

  Args:
    model: a LoadedModel of a 1000-class ImageNet model.
    data_dir: the ImageNet-C root.
    output: the result file; items it already holds are skipped.
    corruptions: corruption names, a subset of CORRUPTIONS (kept in its order).
    severities: severities, a subset of 1-5 (sorted).
    batch_size: prediction batch.
    image_size: the images' height and width (224 in the release).

  Returns:
    The result file's contents.

  Raises:
    DataError: see `check_data` and `evaluate_files`.
    results.ResultFileError: output holds another evaluation.
  """
  corruptions, severities = _canonical(corruptions, severities)
  check_data(data_dir, corruptions, severities)
  clean.require_classes(model, NUM_CLASSES, 'ImageNet-C')
  flags = {'data_dir': os.path.abspath(data_dir), 'corruptions': corruptions,
           'severities': severities, 'image_size': image_size}
  result = results.ResultFile(output, EVALUATION,
                              results.header_for(model, flags, 'imagenet_c'))
  preprocess = exact_size_preprocess(image_size)
  for corruption in corruptions:
    for severity in severities:
      key = item_key(corruption, severity)
      if result.done(key):
        continue
      paths, labels = item_images(data_dir, corruption, severity)
      counts = evaluate_files(model, paths, labels, preprocess, batch_size,
                              image_size=image_size)
      result.add(key, clean.item_value(*counts))
      print('%s: error %.4f on %d images' % (key, result.items[key]['error'], counts[1]))
  return result.finish(summarize(result.items, corruptions, severities))


def parse_names(flag, text, known):
  """Splits a comma-separated flag into names, each one of `known`."""
  names = [name.strip() for name in text.split(',') if name.strip()]
  if not names:
    raise ValueError('--%s is empty' % flag)
  for name in names:
    if name not in known:
      raise ValueError('--%s: unknown name %r (expected: %s)'
                       % (flag, name, ', '.join(known)))
  if len(set(names)) != len(names):
    raise ValueError('--%s=%s names one twice' % (flag, text))
  return names


def parse_severities(text):
  """Parses --severities, e.g. '1,2,3', into sorted ints in 1-5."""
  names = parse_names('severities', text, [str(s) for s in SEVERITIES])
  return sorted(int(name) for name in names)


def run(args):
  """The CLI: validates the flags, loads the model, evaluates."""
  corruptions = parse_names('corruptions', args.corruptions, CORRUPTIONS)
  severities = parse_severities(args.severities)
  train_utils.require_positive('batch_size', args.batch_size)
  train_utils.require_positive('image_size', args.image_size)
  model = runner.load_model(args.model_dir, args.checkpoint)
  data = evaluate(model, args.data_dir, output=clean.output_path(args, model, EVALUATION),
                  corruptions=corruptions, severities=severities,
                  batch_size=args.batch_size, image_size=args.image_size)
  summary = data['summary']
  if summary['mce'] is not None:
    print('mCE %.4f, average error %.4f' % (summary['mce'], summary['average_error']))
  return data


def build_parser():
  """The command-line flags of `python -m eval.imagenet_c`."""
  parser = clean.ArgumentParser(
      prog='python -m eval.imagenet_c', description='ImageNet-C errors and mCE.')
  clean.add_model_flags(parser)
  parser.add_argument('--data_dir', required=True,
                      help='ImageNet-C root: <corruption>/<severity>/<wnid>/*.JPEG.')
  parser.add_argument('--corruptions', default=','.join(CORRUPTIONS),
                      help='Comma-separated corruptions; default all 15.')
  parser.add_argument('--severities', default='1,2,3,4,5',
                      help='Comma-separated severities; default 1-5.')
  parser.add_argument('--batch_size', type=int, default=100)
  parser.add_argument('--image_size', type=int, default=224,
                      help='Height and width of every image (not resized).')
  parser.add_argument('--output', help='Result file; default under model_dir/results.')
  return parser


def main(argv=None):
  return clean.run_cli(build_parser(), run, argv)


if __name__ == '__main__':
  main()
