"""Corruption-robustness arithmetic (Hendrycks & Dietterich 2019), numpy only.

Shared by ImageNet-C, CIFAR-10-C and the report: E_c = mean_s E_cs per
corruption, avg = mean_c E_c over the 15 benchmark corruptions, and
mCE = mean_c (sum_s E_cs / sum_s B_cs) against a baseline model's errors
(AlexNet's for ImageNet-C). Fractions in, fractions out.

It also holds what both corruption evaluations name the same way: a result
item per (corruption, severity), e.g. `fog/3`, and the --corruptions and
--severities selections.
"""
import numpy as np

# The 15 benchmark corruptions; averages and mCE are over exactly these.
CORRUPTIONS = (
    'gaussian_noise', 'shot_noise', 'impulse_noise', 'defocus_blur', 'glass_blur',
    'motion_blur', 'zoom_blur', 'snow', 'frost', 'fog', 'brightness', 'contrast',
    'elastic_transform', 'pixelate', 'jpeg_compression')
# The release's four extra corruptions: reported on their own, never averaged in.
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
  return float(np.mean(list(relative_errors(errors, baseline).values())))


def relative_errors(errors, baseline=None):
  """Each corruption's corruption error CE_c = E_c / B_c; `mce` is their mean.

  Args:
    errors: as for `mce`.
    baseline: as for `mce`.

  Returns:
    {corruption: CE_c} in the baseline's order.

  Raises:
    ValueError: as `mce`.
  """
  baseline = ALEXNET_ERRORS if baseline is None else baseline
  normalizers = corruption_errors(baseline, tuple(baseline))
  for corruption, value in normalizers.items():
    if value <= 0.0:
      raise ValueError('%s: baseline error must be positive, got %r' % (corruption, value))
  observed = corruption_errors(errors, tuple(baseline))
  return {c: observed[c] / normalizers[c] for c in baseline}


def average_error(errors, corruptions=CORRUPTIONS):
  """Unnormalized average error: mean_c E_c, E_c the mean over severities.

  Args:
    errors: as for `mce`, covering exactly `corruptions`.
    corruptions: the corruptions averaged; default the 15 benchmark ones.

  Raises:
    ValueError: as `mce`.
  """
  return float(np.mean(list(corruption_errors(errors, corruptions).values())))


def item_key(corruption, severity):
  """The result-file key of one (corruption, severity), e.g. 'gaussian_noise/3'."""
  return '%s/%d' % (corruption, severity)


def severity_errors(items, corruptions, severities):
  """{corruption: [error at each severity]} from result items keyed by `item_key`."""
  return {c: [items[item_key(c, s)]['error'] for s in severities] for c in corruptions}


def check_severities(severities):
  """Sorted severities, or ValueError unless they are distinct values among 1-5."""
  severities = list(severities)
  if (not severities or len(set(severities)) != len(severities)
      or any(s not in SEVERITIES for s in severities)):
    raise ValueError('severities %r must be distinct values among 1-5' % (severities,))
  return sorted(severities)


def parse_names(flag, text, known):
  """Splits the comma-separated --flag into names, each one of `known`, none twice."""
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
  """Parses --severities, e.g. '1,2,3', into sorted ints among 1-5."""
  names = parse_names('severities', text, [str(s) for s in SEVERITIES])
  return sorted(int(name) for name in names)
