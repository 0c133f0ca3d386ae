"""CIFAR-10-C (Hendrycks & Dietterich 2019): per-corruption and per-severity errors.

    python -m eval.cifar10_c --model_dir DIR --data_dir CIFAR-10-C [--baseline_errors F]

reads the released format: `<corruption>.npy`, uint8 [N, 32, 32, 3] holding the
five severities one after the other (rows [(s-1)*n, s*n) are severity s, with
n = N / 5; the release has n = 10000, any N divisible by 5 is accepted), and
`labels.npy`, the N labels in the same row order. It evaluates every corruption
file present, or those named by --corruptions, writing one result file item per
(corruption, severity), e.g. `fog/2`.

The summary follows the benchmark: each of the 15 benchmark corruptions' mean
error, each severity's mean over them and their average. The release's 4
extra corruptions (speckle noise, Gaussian blur, spatter, saturate) are held
out of all of these and summarized on their own under `extra_corruptions`
when their files are evaluated. Given --baseline_errors, a JSON file mapping
corruption -> error of a baseline model (or a cifar10_c result file of it),
it also reports each benchmark corruption's CE_c = E_c / B_c and mCE = mean_c
CE_c: the paper's footnote 2 normalizes by the baseline's errors instead of
AlexNet's. The arithmetic is eval.corruption_metrics', shared with ImageNet-C.
"""
import os

import numpy as np

from eval import clean
from eval import corruption_metrics
from eval import top1
from eval.kit import cli
from eval.kit import results
from eval.kit import runner
from resnet_ceb import fileio
from resnet_ceb import train_utils
from wrn_cifar import cifar_input

EVALUATION = 'cifar10_c'
# CIFAR-10-C releases 19 corruptions: each is evaluated, but only the 15
# benchmark ones (corruption_metrics.CORRUPTIONS) enter the average and mCE.
CORRUPTIONS = corruption_metrics.CORRUPTIONS + corruption_metrics.EXTRA_CORRUPTIONS
LABELS_FILE = 'labels.npy'
IMAGE_SHAPE = (cifar_input.IMAGE_SIZE, cifar_input.IMAGE_SIZE, cifar_input.NUM_CHANNELS)


class DataError(ValueError):
  """A CIFAR-10-C folder does not have the released layout or contents."""


def _load_npy(path):
  """Memory-maps a .npy file, or raises DataError naming it."""
  try:
    return np.load(path, mmap_mode='r', allow_pickle=False)
  except (OSError, ValueError) as e:
    raise DataError('%s: not a readable .npy array (%s)' % (path, e)) from e


def load_labels(data_dir, num_classes):
  """Reads labels.npy: a non-empty 1-D integer array of classes < num_classes."""
  path = os.path.join(data_dir, LABELS_FILE)
  if not os.path.isfile(path):
    raise DataError('%s not found: CIFAR-10-C needs the labels file' % path)
  labels = _load_npy(path)
  if labels.ndim != 1 or not labels.size or labels.dtype.kind not in 'iu':
    raise DataError('%s: expected a 1-D integer array, got shape %s dtype %s'
                    % (path, labels.shape, labels.dtype))
  if labels.min() < 0 or labels.max() >= num_classes:
    raise DataError('%s: labels must be in 0..%d, found %d..%d'
                    % (path, num_classes - 1, labels.min(), labels.max()))
  return np.asarray(labels, np.int32)


def find_corruptions(data_dir, names=None):
  """The corruptions to evaluate: `names`, or every `<corruption>.npy` present.

  Raises:
    DataError: data_dir missing, a named file missing, a .npy file that is
      not a CIFAR-10-C corruption (named), or no corruption file at all.
  """
  if not os.path.isdir(data_dir):
    raise DataError('--data_dir=%s: CIFAR-10-C folder not found' % data_dir)
  if names:
    for name in names:
      path = os.path.join(data_dir, name + '.npy')
      if not os.path.isfile(path):
        raise DataError('%s not found (named by --corruptions)' % path)
    return [c for c in CORRUPTIONS if c in names]
  present = [f[:-len('.npy')] for f in os.listdir(data_dir)
             if f.endswith('.npy') and f != LABELS_FILE]
  for name in present:
    if name not in CORRUPTIONS:
      raise DataError('%s: unknown corruption (expected one of: %s)'
                      % (os.path.join(data_dir, name + '.npy'), ', '.join(CORRUPTIONS)))
  if not present:
    raise DataError('%s holds no <corruption>.npy file' % data_dir)
  return [c for c in CORRUPTIONS if c in present]


def load_corruption(data_dir, corruption, num_labels):
  """Memory-maps `<corruption>.npy` after checking its shape and dtype.

  Returns:
    uint8 [N, 32, 32, 3] with N = num_labels, divisible by 5.
  """
  path = os.path.join(data_dir, corruption + '.npy')
  images = _load_npy(path)
  if images.dtype != np.uint8 or images.ndim != 4 or images.shape[1:] != IMAGE_SHAPE:
    raise DataError('%s: expected uint8 [N, 32, 32, 3], got %s %s'
                    % (path, images.dtype, images.shape))
  if not images.shape[0] or images.shape[0] % len(corruption_metrics.SEVERITIES):
    raise DataError('%s: %d images is not a positive multiple of %d severities'
                    % (path, images.shape[0], len(corruption_metrics.SEVERITIES)))
  if images.shape[0] != num_labels:
    raise DataError('%s holds %d images but %s holds %d labels'
                    % (path, images.shape[0], LABELS_FILE, num_labels))
  return images


def severity_rows(num_images, severity):
  """The rows of one severity: [(s-1)*n, s*n) with n = num_images / 5."""
  per_severity = num_images // len(corruption_metrics.SEVERITIES)
  return slice((severity - 1) * per_severity, severity * per_severity)


def _baseline_errors(data, corruptions):
  """{corruption: positive mean error} from a parsed baseline file, or ValueError."""
  if isinstance(data, dict) and data.get('evaluation') == EVALUATION:
    data = data.get('summary', {}).get('corruption_errors')
  if not isinstance(data, dict):
    raise ValueError('expected a JSON object mapping corruption -> error')
  unknown = sorted(set(data) - set(CORRUPTIONS))
  if unknown:
    raise ValueError('unknown corruption %s' % ', '.join(unknown))
  missing = [c for c in corruptions if c not in data]
  if missing:
    raise ValueError('no error for the evaluated corruption %s' % ', '.join(missing))
  baseline = {c: corruption_metrics.corruption_error(c, data[c]) for c in corruptions}
  for corruption, value in baseline.items():
    if value <= 0.0:
      raise ValueError('%s: baseline error must be positive' % corruption)
  return baseline


def load_baseline(path, corruptions):
  """Reads a baseline's per-corruption errors for the evaluated benchmark corruptions.

  Args:
    path: JSON {corruption: error (fraction) or list of 5}, or a complete
      cifar10_c result file (its summary's corruption_errors are used).
    corruptions: the benchmark corruptions being evaluated; all must be in
      the file (errors it gives for others are ignored).

  Returns:
    {corruption: mean error} for `corruptions`.

  Raises:
    ValueError: naming the file: missing, bad JSON, unknown or missing
      corruptions, or errors that are not positive fractions.
  """
  if not os.path.isfile(path):
    raise ValueError('--baseline_errors=%s: file not found' % path)
  try:
    return _baseline_errors(fileio.read_json(path), corruptions)
  except ValueError as e:
    raise ValueError('--baseline_errors=%s: %s' % (path, e)) from e


def split_corruptions(corruptions):
  """(benchmark, extra): the given corruptions among the 15 and among the 4 extras."""
  benchmark = [c for c in corruptions if c in corruption_metrics.CORRUPTIONS]
  return benchmark, [c for c in corruptions if c not in benchmark]


def _error_summary(errors, corruptions, severities):
  """Mean error per corruption, per severity (over `corruptions`) and their average.

  The average is None when `corruptions` is empty.
  """
  corruption_errors = {c: float(np.mean(errors[c])) for c in corruptions}
  return {
      'corruption_errors': corruption_errors,
      'severity_errors': {str(s): float(np.mean([errors[c][i] for c in corruptions]))
                          for i, s in enumerate(severities)} if corruptions else {},
      'average_error': (corruption_metrics.average_error(corruption_errors, corruptions)
                        if corruptions else None),
  }


def summarize(items, corruptions, severities, baseline=None, baseline_path=None):
  """The benchmark summary (errors, average, CE / mCE) and the extras' on their own.

  Only the benchmark corruptions among `corruptions` enter corruption_errors,
  severity_errors, average_error and mCE; the extras evaluated get the same
  errors under `extra_corruptions` (absent when none was). CE and mCE need
  all five severities and a benchmark corruption (else they are None).
  """
  errors = corruption_metrics.severity_errors(items, corruptions, severities)
  benchmark, extra = split_corruptions(corruptions)
  summary = _error_summary(errors, benchmark, severities)
  if extra:
    summary['extra_corruptions'] = _error_summary(errors, extra, severities)
  if baseline is not None:
    complete = tuple(severities) == corruption_metrics.SEVERITIES and bool(benchmark)
    errors = {c: errors[c] for c in benchmark}
    summary.update(
        baseline_errors=baseline, baseline_file=os.path.abspath(baseline_path),
        corruption_ce=(corruption_metrics.relative_errors(errors, baseline)
                       if complete else None),
        mce=corruption_metrics.mce(errors, baseline) if complete else None)
  return summary


def format_summary(summary):
  """The summary's lines for a terminal: the benchmark's, then the extras' if any."""
  lines = []
  if summary['average_error'] is not None:
    mce = summary.get('mce')
    lines.append('benchmark corruptions (%d of %d): average error %.4f%s' % (
        len(summary['corruption_errors']), len(corruption_metrics.CORRUPTIONS),
        summary['average_error'], ', mCE %.4f' % mce if mce is not None else ''))
  extra = summary.get('extra_corruptions')
  if extra:
    lines.append('extra corruptions (%s; not in the average or mCE): average error %.4f'
                 % (', '.join(extra['corruption_errors']), extra['average_error']))
  return lines


def check_data(data_dir, corruptions, num_classes):
  """Checks labels.npy and every corruption file; returns (labels, {name: images})."""
  labels = load_labels(data_dir, num_classes)
  return labels, {c: load_corruption(data_dir, c, len(labels)) for c in corruptions}


def evaluate(model, data_dir, *, output, corruptions=None,
             severities=corruption_metrics.SEVERITIES, baseline_errors=None, batch_size=500):
  """Evaluates a CIFAR-10 checkpoint on CIFAR-10-C into a resumable result file.

  Args:
    model: a LoadedModel of a 10-class model.
    data_dir: folder of `<corruption>.npy` and `labels.npy`.
    output: the result file; items it already holds are skipped.
    corruptions: names to evaluate; None: every corruption file present.
    severities: severities to evaluate, a subset of 1-5.
    baseline_errors: path of the baseline's errors, for CE and mCE.
    batch_size: prediction batch.

  Returns:
    The result file's contents.

  Raises:
    DataError, ValueError: bad data or flags, before anything is written.
    results.ResultFileError: output holds another evaluation.
  """
  severities = corruption_metrics.check_severities(severities)
  corruptions = find_corruptions(data_dir, corruptions)
  top1.require_classes(model, cifar_input.NUM_CLASSES, 'CIFAR-10-C')
  labels, arrays = check_data(data_dir, corruptions, cifar_input.NUM_CLASSES)
  baseline = (load_baseline(baseline_errors, split_corruptions(corruptions)[0])
              if baseline_errors else None)
  flags = {'data_dir': data_dir, 'corruptions': corruptions,
           'severities': severities}
  result = results.ResultFile(output, EVALUATION,
                              results.header_for(model, flags, 'cifar10_c'))
  for corruption in corruptions:
    for severity in severities:
      key = corruption_metrics.item_key(corruption, severity)
      if result.done(key):
        continue
      rows = severity_rows(len(labels), severity)
      input_fn = clean.array_input_fn(np.asarray(arrays[corruption][rows]),
                                      labels[rows], batch_size)
      result.add(key, top1.item_value(*top1.count_correct(model, input_fn)))
      print('%s: error %.4f' % (key, result.items[key]['error']))
  return result.finish(summarize(result.items, corruptions, severities, baseline,
                                 baseline_errors))


def run(args):
  """The CLI: validates the flags, loads the model, evaluates."""
  corruptions = (corruption_metrics.parse_names('corruptions', args.corruptions,
                                                CORRUPTIONS)
                 if args.corruptions else None)
  severities = corruption_metrics.parse_severities(args.severities)
  train_utils.require_positive('batch_size', args.batch_size)
  model = runner.load_model(args.model_dir, args.checkpoint, args.precision)
  data = evaluate(model, args.data_dir, output=cli.output_path(args, model, EVALUATION),
                  corruptions=corruptions, severities=severities,
                  baseline_errors=args.baseline_errors, batch_size=args.batch_size)
  print('\n'.join(format_summary(data['summary'])))
  return data


def build_parser():
  """The command-line flags of `python -m eval.cifar10_c`."""
  parser = cli.ArgumentParser(
      prog='python -m eval.cifar10_c', description='CIFAR-10-C errors and mCE.')
  cli.add_model_flags(parser)
  cli.add_precision_flag(parser)
  parser.add_argument('--data_dir', required=True,
                      help='CIFAR-10-C folder: <corruption>.npy and labels.npy.')
  parser.add_argument('--corruptions',
                      help='Comma-separated corruptions; default: every file present.')
  parser.add_argument('--severities', default='1,2,3,4,5',
                      help='Comma-separated severities; default 1-5.')
  parser.add_argument('--baseline_errors',
                      help='JSON corruption -> error of the baseline, for CE and mCE.')
  parser.add_argument('--batch_size', type=int, default=500)
  cli.add_output_flag(parser)
  return parser


def main(argv=None):
  """`python -m eval.cifar10_c`: bad input exits 2 with `error: ...`; returns the result."""
  return cli.run_cli(build_parser(), run, argv)


if __name__ == '__main__':
  main()
