"""ImageNet-C (Hendrycks & Dietterich 2019): corruption errors and mCE of a checkpoint.

    python -m eval.imagenet_c --model_dir DIR --data_dir IMAGENET_C_ROOT

reads the released layout `<root>/<corruption>/<severity>/<wnid>/*.JPEG`
(images already 224x224, so they are only decoded, never resized; the label is
the wnid's index among the 1000 sorted ImageNet wnids) and writes one result
file item per (corruption, severity), e.g. `gaussian_noise/3`, then a summary:
E_c = mean_s E_cs per corruption, avg = mean_c E_c and
mCE = mean_c (sum_s E_cs / sum_s E^AlexNet_cs) (Table 1's `mCE` and `avg`),
computed by eval.corruption_metrics.

Everything in the requested part of the tree is checked before the result file
is created. A file that does not decode or has the wrong size is found when its
(corruption, severity) is evaluated, and the error names it; the result file
then holds only the items finished before, and re-running resumes after them.
"""
import os

import numpy as np

from eval import corruption_metrics
from eval import image_folders
from eval import top1
from eval.kit import cli
from eval.kit import results
from eval.kit import runner
from resnet_ceb import imagenet_classes
from resnet_ceb import train_utils

EVALUATION = 'imagenet_c'

# SPEC section 7: outside checks call these from this module; they live in
# eval.corruption_metrics, shared with CIFAR-10-C and the report.
ALEXNET_ERRORS = corruption_metrics.ALEXNET_ERRORS
mce = corruption_metrics.mce
average_error = corruption_metrics.average_error


def _check_folder(path, what):
  """Raises ImageFolderError naming `path` unless it is a folder."""
  if not os.path.isdir(path):
    raise image_folders.ImageFolderError('%s: %s folder not found' % (path, what))


def _check_root(root, corruptions, severities):
  """Checks the corruption and severity folders of the requested part of the tree."""
  if not os.path.isdir(root):
    raise image_folders.ImageFolderError(
        '--data_dir=%s: ImageNet-C root folder not found' % root)
  # The release's four extra corruptions (not in mCE) may sit beside the 15.
  known = corruption_metrics.CORRUPTIONS + corruption_metrics.EXTRA_CORRUPTIONS
  for name in image_folders.subdirs(root):
    if name not in known:
      raise image_folders.ImageFolderError(
          '%s: unknown corruption folder (expected: %s)'
          % (os.path.join(root, name), ', '.join(corruption_metrics.CORRUPTIONS)))
  allowed = [str(s) for s in corruption_metrics.SEVERITIES]
  for corruption in corruptions:
    folder = os.path.join(root, corruption)
    _check_folder(folder, 'corruption')
    for name in image_folders.subdirs(folder):
      if name not in allowed:
        raise image_folders.ImageFolderError(
            '%s: unknown severity folder (expected 1-5)' % os.path.join(folder, name))
    for severity in severities:
      _check_folder(os.path.join(folder, str(severity)), 'severity')


def item_images(root, corruption, severity):
  """(paths, labels) of one (corruption, severity) of the tree."""
  return image_folders.class_folder_images(
      os.path.join(root, corruption, str(severity)), imagenet_classes.class_index(),
      'ImageNet')


def check_data(root, corruptions, severities):
  """Checks the requested part of the tree before anything is written.

  Raises:
    image_folders.ImageFolderError: naming the root, a missing or unknown
      corruption or severity folder, a folder that is not an ImageNet wnid, or
      a folder with no images.
  """
  _check_root(root, corruptions, severities)
  for corruption in corruptions:
    for severity in severities:
      item_images(root, corruption, severity)


def _canonical(corruptions, severities):
  """Corruptions in CORRUPTIONS' order and sorted severities, or ValueError."""
  unknown = [c for c in corruptions if c not in corruption_metrics.CORRUPTIONS]
  if unknown or not corruptions:
    raise ValueError('corruptions %s must be among the %d of ImageNet-C (unknown: %s)'
                     % (list(corruptions), len(corruption_metrics.CORRUPTIONS), unknown))
  return ([c for c in corruption_metrics.CORRUPTIONS if c in corruptions],
          corruption_metrics.check_severities(severities))


def summarize(items, corruptions, severities):
  """Per-corruption E_c, and avg and mCE when all 15 x 5 were evaluated (else None)."""
  errors = corruption_metrics.severity_errors(items, corruptions, severities)
  complete = (tuple(corruptions) == corruption_metrics.CORRUPTIONS
              and tuple(severities) == corruption_metrics.SEVERITIES)
  return {
      'corruption_errors': {c: float(np.mean(e)) for c, e in errors.items()},
      'average_error': corruption_metrics.average_error(errors) if complete else None,
      'mce': corruption_metrics.mce(errors) if complete else None,
      'num_examples': sum(items[corruption_metrics.item_key(c, s)]['num_examples']
                          for c in corruptions for s in severities),
  }


def evaluate(model, data_dir, *, output, corruptions=corruption_metrics.CORRUPTIONS,
             severities=corruption_metrics.SEVERITIES, batch_size=100, image_size=224):
  """Evaluates a checkpoint on ImageNet-C into a resumable result file.

  Args:
    model: a LoadedModel of a 1000-class ImageNet model.
    data_dir: the ImageNet-C root.
    output: the result file; items it already holds are skipped.
    corruptions: corruption names, among the 15 (kept in CORRUPTIONS' order).
    severities: severities, a subset of 1-5 (sorted).
    batch_size: prediction batch.
    image_size: the images' height and width (224 in the release).

  Returns:
    The result file's contents.

  Raises:
    image_folders.ImageFolderError: see `check_data` and
      `image_folders.evaluate_files`.
    results.ResultFileError: output holds another evaluation.
  """
  corruptions, severities = _canonical(corruptions, severities)
  check_data(data_dir, corruptions, severities)
  top1.require_classes(model, imagenet_classes.NUM_CLASSES, 'ImageNet-C')
  flags = {'data_dir': data_dir, 'corruptions': corruptions,
           'severities': severities, 'image_size': image_size}
  result = results.ResultFile(output, EVALUATION,
                              results.header_for(model, flags, 'imagenet_c'))
  preprocess = image_folders.exact_size_preprocess(image_size)
  for corruption in corruptions:
    for severity in severities:
      key = corruption_metrics.item_key(corruption, severity)
      if result.done(key):
        continue
      paths, labels = item_images(data_dir, corruption, severity)
      counts = image_folders.evaluate_files(model, paths, labels, preprocess, batch_size,
                                            image_size=image_size)
      result.add(key, top1.item_value(*counts))
      print('%s: error %.4f on %d images' % (key, result.items[key]['error'], counts[1]))
  return result.finish(summarize(result.items, corruptions, severities))


def run(args):
  """The CLI: validates the flags, loads the model, evaluates."""
  corruptions = corruption_metrics.parse_names('corruptions', args.corruptions,
                                               corruption_metrics.CORRUPTIONS)
  severities = corruption_metrics.parse_severities(args.severities)
  train_utils.require_positive('batch_size', args.batch_size)
  train_utils.require_positive('image_size', args.image_size)
  model = runner.load_model(args.model_dir, args.checkpoint, args.precision)
  data = evaluate(model, args.data_dir, output=cli.output_path(args, model, EVALUATION),
                  corruptions=corruptions, severities=severities,
                  batch_size=args.batch_size, image_size=args.image_size)
  summary = data['summary']
  if summary['mce'] is not None:
    print('mCE %.4f, average error %.4f' % (summary['mce'], summary['average_error']))
  return data


def build_parser():
  """The command-line flags of `python -m eval.imagenet_c`."""
  parser = cli.ArgumentParser(
      prog='python -m eval.imagenet_c', description='ImageNet-C errors and mCE.')
  cli.add_model_flags(parser)
  cli.add_precision_flag(parser)
  parser.add_argument('--data_dir', required=True,
                      help='ImageNet-C root: <corruption>/<severity>/<wnid>/*.JPEG.')
  parser.add_argument('--corruptions', default=','.join(corruption_metrics.CORRUPTIONS),
                      help='Comma-separated corruptions; default all 15.')
  parser.add_argument('--severities', default='1,2,3,4,5',
                      help='Comma-separated severities; default 1-5.')
  parser.add_argument('--batch_size', type=int, default=100)
  parser.add_argument('--image_size', type=int, default=224,
                      help='Height and width of every image (not resized).')
  cli.add_output_flag(parser)
  return parser


def main(argv=None):
  """`python -m eval.imagenet_c`: bad input exits 2 with `error: ...`; returns the result."""
  return cli.run_cli(build_parser(), run, argv)


if __name__ == '__main__':
  main()
