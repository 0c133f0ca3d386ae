"""Finds, reads and checks result files (eval.kit.results) for the report.

Every `*.json` under a folder is read; a JSON object with an 'evaluation' key
is a result file, anything else (a trainer's params.json) is skipped, and so is
a result of a network evaluated in bfloat16 (`--precision`): the report's
numbers are float32 evaluations, one per model, step and evaluation. A result
file's layout and the numbers the report uses are checked, and any fault
raises ReportError naming the file. Each evaluation's numbers are parsed into
`Result.metrics`, the one form the rest of the report reads.
"""
import dataclasses
import math
import os
from typing import Optional

import numpy as np

from eval import corruption_metrics
from resnet_ceb import fileio

TRAINER_DATASETS = {'resnet_ceb': 'imagenet', 'wrn_cifar': 'cifar10'}
OBJECTIVES = {'xent': 'XEnt', 'ceb': 'CEB', 'cceb': 'cCEB', 'vib': 'VIB'}
PGD_EVALUATIONS = ('pgd_linf', 'pgd_linf_targeted', 'pgd_l2', 'pgd_l2_targeted')
AUDIT_EVALUATIONS = ('audit_linf', 'audit_l2')
# model_params' class count: `num_classes`; result files written before the
# trainers shared one key may hold the ImageNet trainer's `num_label_classes`.
CLASS_COUNT_KEYS = ('num_classes', 'num_label_classes')
# The precision of the evaluations reported (resnet_ceb.precision.FLOAT32; that
# module imports TensorFlow, which the report never loads).
EVALUATED_PRECISION = 'float32'


class ReportError(ValueError):
  """Bad input for the report; the message names the file(s) at fault."""


@dataclasses.dataclass
class Result:
  """One parsed result file; `metrics` is None when the file is incomplete."""
  path: str
  data: dict
  metrics: Optional[dict]

  @property
  def evaluation(self):
    """The evaluation's name, e.g. 'pgd_linf'."""
    return self.data['evaluation']

  @property
  def model_dir(self):
    """The evaluated model_dir."""
    return self.data['header']['model_dir']

  @property
  def step(self):
    """The evaluated checkpoint's global step."""
    return self.data['header']['step']

  @property
  def params(self):
    """The trainer's params.json, as the header holds it."""
    return self.data['header']['model_params']

  @property
  def complete(self):
    """Whether every item and the summary were written."""
    return self.data['complete']


def class_count(params):
  """The model's class count from model_params under either key; None when absent."""
  for key in CLASS_COUNT_KEYS:
    if key in params:
      return params[key]
  return None


def find_json_files(results_dir):
  """Every `*.json` under results_dir, in a stable (sorted) order."""
  if not os.path.isdir(results_dir):
    raise ReportError('--results_dir=%s is not a directory' % results_dir)
  paths = []
  for root, dirs, files in os.walk(results_dir):
    dirs.sort()
    paths.extend(os.path.join(root, name) for name in sorted(files)
                 if name.endswith('.json'))
  return paths


def _number(path, where, value, low=0.0, high=1.0):
  """A finite number in [low, high] read from a file, or ReportError naming both."""
  if not fileio.is_finite_number(value) or not low <= value <= high:
    raise ReportError('%s: %s=%r is not a number in [%g, %g]' % (path, where, value, low, high))
  return float(value)


def _require_fields(path, where, mapping, fields):
  """Checks that mapping[key] exists with the given type for each (key, type)."""
  for key, kind in fields:
    value = mapping.get(key)
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
      raise ReportError('%s: %s%s is missing or not a %s' % (path, where, key, kind.__name__))


def _check_class_count(path, params):
  """A class count, under either key, must be a positive integer."""
  count = class_count(params)
  if count is not None and (not isinstance(count, int) or isinstance(count, bool) or count < 1):
    key = next(k for k in CLASS_COUNT_KEYS if k in params)
    raise ReportError('%s: header.model_params.%s=%r is not a positive integer'
                      % (path, key, count))


def _check_params(path, params):
  """Checks the model_params fields the report groups runs by."""
  trainer, loss = params.get('trainer'), params.get('loss')
  if trainer not in TRAINER_DATASETS:
    raise ReportError('%s: header.model_params.trainer=%r is not one of %s'
                      % (path, trainer, ', '.join(TRAINER_DATASETS)))
  if loss not in OBJECTIVES:
    raise ReportError('%s: header.model_params.loss=%r is not one of %s'
                      % (path, loss, ', '.join(OBJECTIVES)))
  shape = ('resnet_depth', 'width_multiplier') if trainer == 'resnet_ceb' else ('depth', 'width')
  _require_fields(path, 'header.model_params.', params, [(key, int) for key in shape])
  if 'augment_name' not in params:
    raise ReportError('%s: header.model_params.augment_name is missing' % path)
  if loss != 'xent':
    _number(path, 'header.model_params.rho', params.get('rho'), -math.inf, math.inf)
  _check_class_count(path, params)


def _check_layout(path, data):
  """Checks the result-file layout of eval.kit.results."""
  _require_fields(path, '', data, [('evaluation', str), ('header', dict), ('items', dict),
                                   ('summary', dict), ('complete', bool)])
  _require_fields(path, 'header.', data['header'],
                  [('model_dir', str), ('step', int), ('model_params', dict)])
  _check_params(path, data['header']['model_params'])


def _item_number(path, items, key, field, high=1.0):
  """items[key][field] as a checked number."""
  item = items[key]
  if not isinstance(item, dict) or field not in item:
    raise ReportError('%s: item %r has no %r' % (path, key, field))
  return _number(path, 'items[%r].%s' % (key, field), item[field], high=high)


def _strings(path, where, value):
  """A list of strings read from a file (an audit's flags)."""
  if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
    raise ReportError('%s: %s=%r is not a list of strings' % (path, where, value))
  return list(value)


def _top1_metrics(path, data):
  """{'accuracy', 'error'} from a summary holding either or both."""
  summary = data['summary']
  found = {key: _number(path, 'summary.' + key, summary[key])
           for key in ('accuracy', 'error') if key in summary}
  if not found:
    raise ReportError('%s: a %s result needs summary.accuracy or summary.error'
                      % (path, data['evaluation']))
  accuracy = found['accuracy'] if 'accuracy' in found else 1.0 - found['error']
  error = found['error'] if 'error' in found else 1.0 - found['accuracy']
  return {'accuracy': accuracy, 'error': error}


def _corruption_errors(path, items, corruptions):
  """{corruption: E_c} over those of `corruptions` whose 5 severities the items all hold."""
  errors = {}
  for corruption in corruptions:
    keys = [corruption_metrics.item_key(corruption, s) for s in corruption_metrics.SEVERITIES]
    if all(key in items for key in keys):
      errors[corruption] = float(np.mean([_item_number(path, items, k, 'error') for k in keys]))
  return errors


def _imagenet_c_metrics(path, data):
  """{'corruption_errors': {corruption: E_c}} over corruptions with all 5 severities."""
  return {'corruption_errors': _corruption_errors(path, data['items'],
                                                  corruption_metrics.CORRUPTIONS)}


def _cifar10_c_metrics(path, data):
  """The 15 benchmark corruptions' E_c and, apart, the 4 extras' (all 5 severities each)."""
  items = data['items']
  return {'corruption_errors': _corruption_errors(path, items, corruption_metrics.CORRUPTIONS),
          'extra_errors': _corruption_errors(path, items, corruption_metrics.EXTRA_CORRUPTIONS)}


def _pgd_metrics(path, data):
  """The accuracy-vs-epsilon curve and the attack settings of a PGD sweep."""
  items, flags = data['items'], data['header'].get('flags')
  curve, step_sizes = {}, {}
  for key, item in items.items():
    epsilon = _item_number(path, items, key, 'epsilon', high=math.inf)
    curve[epsilon] = _item_number(path, items, key, 'accuracy')
    step_sizes[epsilon] = item.get('step_size')
  num_steps = flags.get('num_steps') if isinstance(flags, dict) else None
  return {'curve': curve, 'step_sizes': step_sizes, 'num_steps': num_steps}


def _audit_metrics(path, data):
  """An audit's curves per epsilon (clean, PGD-20, after every attack), verdict, flags."""
  items, summary = data['items'], data['summary']
  metrics = {'curve': {}, 'pgd20': {}, 'clean': {}, 'item_flags': {}}
  for key, item in items.items():
    epsilon = _item_number(path, items, key, 'epsilon', high=math.inf)
    metrics['curve'][epsilon] = _item_number(path, items, key, 'accuracy')
    metrics['pgd20'][epsilon] = _item_number(path, items, key, 'pgd20_accuracy')
    metrics['clean'][epsilon] = _item_number(path, items, key, 'clean_accuracy')
    metrics['item_flags'][epsilon] = _strings(path, 'items[%r].flags' % key,
                                              item.get('flags', []))
  _require_fields(path, 'summary.', summary, [('verdict', str)])
  metrics['verdict'] = summary['verdict']
  metrics['flags'] = _strings(path, 'summary.flags', summary.get('flags', []))
  return metrics


def _no_metrics(path, data):
  """Evaluations the report does not use (e.g. pgd_linf_normalized) are only listed."""
  del path, data
  return {}


_METRIC_PARSERS = dict({'clean': _top1_metrics, 'imagenet_a': _top1_metrics,
                        'imagenet_c': _imagenet_c_metrics, 'cifar10_c': _cifar10_c_metrics},
                       **{name: _pgd_metrics for name in PGD_EVALUATIONS},
                       **{name: _audit_metrics for name in AUDIT_EVALUATIONS})


def read_result(path):
  """Parses and checks one file.

  Returns:
    A Result, or None when the file holds no JSON object with an
    'evaluation' key (so it is no result file) or holds an evaluation in
    another precision than float32.

  Raises:
    ReportError: naming the file, when it is not valid JSON (NaN included) or
      a result file with missing or malformed fields.
  """
  try:
    data = fileio.read_json(path)
  except OSError as e:
    raise ReportError('%s: cannot read (%s)' % (path, e)) from e
  except ValueError as e:
    raise ReportError(str(e)) from e
  if not isinstance(data, dict) or 'evaluation' not in data:
    return None
  _check_layout(path, data)
  if data['header'].get('precision', EVALUATED_PRECISION) != EVALUATED_PRECISION:
    return None
  parser = _METRIC_PARSERS.get(data['evaluation'], _no_metrics)
  return Result(path, data, parser(path, data) if data['complete'] else None)


def deduplicate(results):
  """One Result per (model_dir, step, evaluation); identical copies are fine.

  Raises:
    ReportError: naming both files, when two copies differ.
  """
  kept = {}
  for result in results:
    key = (result.model_dir, result.step, result.evaluation)
    other = kept.setdefault(key, result)
    if other.data != result.data:
      raise ReportError('%s and %s disagree: both hold %s of %s at step %d'
                        % (other.path, result.path, key[2], key[0], key[1]))
  return list(kept.values())


def read_all(results_dir):
  """Reads a results folder.

  Returns:
    (counts {'json', 'results', 'ignored'}, complete Results deduplicated,
    incomplete Results).
  """
  paths = find_json_files(results_dir)
  results = [r for r in (read_result(p) for p in paths) if r is not None]
  counts = {'json': len(paths), 'results': len(results), 'ignored': len(paths) - len(results)}
  complete = deduplicate([r for r in results if r.complete])
  return counts, complete, [r for r in results if not r.complete]
