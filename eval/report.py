"""Table 1 and Figures 1-4 of the paper, built from evaluation result files.

    python -m eval.report --results_dir DIR --out OUT [--figure2_rhos 1,2,5]

Reads every `*.json` under DIR (recursively). A JSON object with an
'evaluation' key is a result file (eval.results); other JSON files (e.g. a
trainer's params.json) are skipped. Writes to OUT:

* `table1.md`, `table1.tsv`: Table 1 in the paper's layout, top-1 error in
  percent, one column per ImageNet (architecture, objective) group, each value
  beside the paper's and the difference (ours - paper). A CEB/cCEB column shows
  the run at rho* (`select_rho_star`). PGD rows are the errors under the
  targeted attacks at epsilon = 16 (evaluations `pgd_l2_targeted` and
  `pgd_linf_targeted`). Anything not evaluated is a blank cell, never a zero.
* `figure1.png` .. `figure4.png`: see `figure1`, `figure2` and `figure_imagenet`.
  A figure without data is skipped with a log line.
* `summary.md`: the runs found, their evaluations, what is missing, warnings.

A run is a model_dir; when result files of several checkpoints exist, only the
latest checkpoint's complete files are used (older ones are listed as
superseded). Files marked `complete: false` are warned about and ignored.

ImageNet clean accuracy: `eval.clean` evaluates CIFAR-10 only and the ImageNet
trainer writes no result file, so any 'clean' result file whose summary holds
'accuracy' or 'error' is accepted, whichever tool wrote it.

Invalid JSON, NaN, missing keys, two different files for the same run and
evaluation, or two runs in the same column at the same rho print
`error: <message naming the files>` and exit with status 2; nothing is written,
because every output is built in memory first and then written atomically.
"""
import collections
import dataclasses
import io
import math
import os
import sys
import tempfile
from typing import Optional

# The report runs no TensorFlow op; eval.imagenet_c imports it, so keep its log quiet.
os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '3')

import numpy as np  # pylint: disable=g-import-not-at-top

from eval import clean  # pylint: disable=g-import-not-at-top
from eval import imagenet_c  # pylint: disable=g-import-not-at-top
from resnet_ceb import fileio  # pylint: disable=g-import-not-at-top

_REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PAPER_TABLE = os.path.join(_REPO, os.pardir, 'shared', 'data', 'paper_table1.tsv')

TRAINER_DATASETS = {'resnet_ceb': 'imagenet', 'wrn_cifar': 'cifar10'}
OBJECTIVES = {'xent': 'XEnt', 'ceb': 'CEB', 'cceb': 'cCEB', 'vib': 'VIB'}
PGD_EVALUATIONS = tuple('pgd_%s%s' % (norm, suffix) for norm in ('linf', 'l2')
                        for suffix in ('', '_targeted'))
# What each run of the paper's matrices is expected to have been evaluated on.
EXPECTED_EVALUATIONS = {
    'imagenet': ('clean', 'imagenet_c', 'imagenet_a', 'pgd_l2_targeted',
                 'pgd_linf_targeted'),
    'cifar10': ('clean', 'pgd_linf', 'pgd_l2'),
}

# rho* (section 3.2): within 0.1% (absolute accuracy) of the best, the lowest rho.
RHO_STAR_TOLERANCE = 0.001
_FLOAT_SLACK = 1e-9  # absorbs rounding in accuracies such as 0.809 - 0.808

# Table 1's targeted PGD attack (section 3.2): epsilon 16, 20 steps of size 2.
TABLE_PGD = {'epsilon': 16.0, 'num_steps': 20, 'step_size': 2.0}
TABLE_PGD_ROWS = (('pgd_l2', 'pgd_l2_targeted'), ('pgd_linf', 'pgd_linf_targeted'))
ERROR_ROWS = (('clean', 'mce', 'average_ce') + imagenet_c.CORRUPTIONS
              + ('imagenet_a', 'pgd_l2', 'pgd_linf'))
TABLE_ROWS = ('rho_star',) + ERROR_ROWS
ROW_LABELS = {
    'rho_star': 'ρ*', 'clean': 'Clean', 'mce': 'mCE', 'average_ce': 'Average CE',
    'gaussian_noise': 'Gauss. Noise', 'shot_noise': 'Shot Noise',
    'impulse_noise': 'Impulse Noise', 'defocus_blur': 'Defocus Blur',
    'glass_blur': 'Glass Blur', 'motion_blur': 'Motion Blur', 'zoom_blur': 'Zoom Blur',
    'snow': 'Snow', 'frost': 'Frost', 'fog': 'Fog', 'brightness': 'Brightness',
    'contrast': 'Contrast', 'elastic_transform': 'Elastic Trans.',
    'pixelate': 'Pixelate', 'jpeg_compression': 'JPEG Comp.',
    'imagenet_a': 'ImageNet-A', 'pgd_l2': 'PGD L2', 'pgd_linf': 'PGD L∞',
}
NOT_APPLICABLE = 'NA'

# Figure 1: the paper names no L2 epsilon; 128 (0.5 in [0, 1] units) is the
# project's choice (wrn_cifar.quickstart). L-inf 8 is the epsilon of section 3.1.
FIGURE1_EPSILONS = {'linf': 8.0, 'l2': 128.0}
# Figure 2: the L2 axis is linear up to this epsilon and logarithmic beyond.
L2_LINEAR_LIMIT = 100.0
# Figures 3-4: the paper's three pairs of networks, lightest to darkest.
FIGURE_IMAGENET_SETS = (('ResNet%d-aa', 'CEB'), ('ResNet%d', 'CEB'), ('ResNet%dx2', 'cCEB'))
BLUES = ('#9ecae1', '#3182bd', '#08306b')
REDS = ('#fc9272', '#de2d26', '#67000d')
SUMMARY_ROWS = ('clean', 'mce', 'average_ce')


class ReportError(ValueError):
  """Bad input for the report; the message names the file(s) at fault."""


# ---------------------------------------------------------------------------
# Reading result files.


@dataclasses.dataclass
class Result:
  """One parsed result file; `metrics` is None when the file is incomplete."""
  path: str
  data: dict
  metrics: Optional[dict]

  @property
  def evaluation(self):
    return self.data['evaluation']

  @property
  def model_dir(self):
    return self.data['header']['model_dir']

  @property
  def step(self):
    return self.data['header']['step']

  @property
  def params(self):
    return self.data['header']['model_params']

  @property
  def complete(self):
    return self.data['complete']


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


def _check_layout(path, data):
  """Checks the result-file layout of eval.results."""
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


def _imagenet_c_metrics(path, data):
  """{'corruption_errors': {corruption: E_c}} over corruptions with all 5 severities."""
  items = data['items']
  errors = {}
  for corruption in imagenet_c.CORRUPTIONS:
    keys = [imagenet_c.item_key(corruption, s) for s in imagenet_c.SEVERITIES]
    if all(key in items for key in keys):
      errors[corruption] = float(np.mean([_item_number(path, items, k, 'error') for k in keys]))
  return {'corruption_errors': errors}


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


def _no_metrics(path, data):
  """Evaluations the report does not use (e.g. cifar10_c) are only listed."""
  del path, data
  return {}


_METRIC_PARSERS = dict({'clean': _top1_metrics, 'imagenet_a': _top1_metrics,
                        'imagenet_c': _imagenet_c_metrics},
                       **{name: _pgd_metrics for name in PGD_EVALUATIONS})


def read_result(path):
  """Parses and checks one file.

  Returns:
    A Result, or None when the file holds no JSON object with an
    'evaluation' key (so it is no result file).

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


# ---------------------------------------------------------------------------
# Runs and their groups (the table's columns).


def column_name(params):
  """The run's Table 1 column, e.g. 'ResNet152x2/cCEB', 'ResNet50-aa/XEnt', 'WRN-28x10/CEB'.

  '-aa' marks training without AutoAugment and 'xK' a K times wider ResNet, as
  in the paper's Table 1.
  """
  if params['trainer'] == 'resnet_ceb':
    width = params['width_multiplier']
    architecture = 'ResNet%d%s' % (params['resnet_depth'], 'x%d' % width if width != 1 else '')
  else:
    architecture = 'WRN-%dx%d' % (params['depth'], params['width'])
  if params['augment_name'] != 'autoaugment':
    architecture += '-aa'
  return '%s/%s' % (architecture, OBJECTIVES[params['loss']])


@dataclasses.dataclass
class Run:
  """A model_dir's complete results at its latest evaluated checkpoint."""
  model_dir: str
  step: int
  params: dict
  results: dict  # evaluation -> Result
  superseded: list  # paths of result files of older checkpoints

  @property
  def dataset(self):
    return TRAINER_DATASETS[self.params['trainer']]

  @property
  def column(self):
    return column_name(self.params)

  @property
  def rho(self):
    """The run's rho; None for XEnt, which has none."""
    return None if self.params['loss'] == 'xent' else float(self.params['rho'])

  def metrics(self, evaluation):
    """The parsed metrics of one evaluation, or None when not evaluated."""
    result = self.results.get(evaluation)
    return result.metrics if result else None

  def any_path(self):
    return sorted(r.path for r in self.results.values())[0]


def build_runs(results):
  """Groups complete results into Runs by model_dir, keeping the latest step.

  Raises:
    ReportError: naming two files of one model_dir and step whose
      model_params differ.
  """
  by_dir = collections.defaultdict(list)
  for result in results:
    by_dir[result.model_dir].append(result)
  runs = []
  for model_dir in sorted(by_dir):
    step = max(r.step for r in by_dir[model_dir])
    latest = [r for r in by_dir[model_dir] if r.step == step]
    for result in latest[1:]:
      if result.params != latest[0].params:
        raise ReportError('%s and %s disagree on the model_params of %s'
                          % (latest[0].path, result.path, model_dir))
    runs.append(Run(model_dir, step, latest[0].params,
                    {r.evaluation: r for r in latest},
                    sorted(r.path for r in by_dir[model_dir] if r.step != step)))
  return runs


def group_runs(runs):
  """{(dataset, column): {rho: Run}} (rho None for XEnt).

  Raises:
    ReportError: naming both runs, when two model_dirs fall on the same
      column and rho (the report could not tell which one to show).
  """
  groups = collections.defaultdict(dict)
  for run in runs:
    slot = groups[(run.dataset, run.column)]
    other = slot.setdefault(run.rho, run)
    if other is not run:
      raise ReportError('%s and %s are two runs of %s at rho=%s (e.g. %s and %s); '
                        'keep one under --results_dir'
                        % (other.model_dir, run.model_dir, run.column, run.rho,
                           other.any_path(), run.any_path()))
  return dict(groups)


def select_rho_star(accuracy_by_rho):
  """The paper's rho* (section 3.2) from clean accuracies.

  The best clean accuracy wins; every rho within 0.1% (0.001 absolute
  accuracy, boundary included) of the best counts as tied, and the lowest tied
  rho is chosen, because lower rho goes with more robustness.

  Args:
    accuracy_by_rho: {rho: clean accuracy as a fraction}, not empty.

  Returns:
    The selected rho.

  Raises:
    ValueError: accuracy_by_rho is empty.
  """
  if not accuracy_by_rho:
    raise ValueError('no clean accuracy to select rho* from')
  best = max(accuracy_by_rho.values())
  return min(rho for rho, accuracy in accuracy_by_rho.items()
             if best - accuracy <= RHO_STAR_TOLERANCE + _FLOAT_SLACK)


def choose_run(slot):
  """(rho*, run) of one column's {rho: Run}; (None, None) without clean results.

  XEnt has a single run and no rho (NOT_APPLICABLE).
  """
  if None in slot:
    return NOT_APPLICABLE, slot[None]
  accuracy = {rho: run.metrics('clean')['accuracy']
              for rho, run in slot.items() if run.metrics('clean')}
  if not accuracy:
    return None, None
  rho = select_rho_star(accuracy)
  return rho, slot[rho]


def _pgd_table_error(metrics):
  """Error % under Table 1's targeted attack, or None without that epsilon."""
  if not metrics or TABLE_PGD['epsilon'] not in metrics['curve']:
    return None
  return 100.0 * (1.0 - metrics['curve'][TABLE_PGD['epsilon']])


def _imagenet_c_errors(metrics):
  """Per-corruption, mCE and average error %, each None when not evaluated."""
  errors = metrics['corruption_errors'] if metrics else {}
  values = {c: 100.0 * e for c, e in errors.items()}
  if len(errors) == len(imagenet_c.CORRUPTIONS):
    values['mce'] = 100.0 * imagenet_c.mce(errors)
    values['average_ce'] = 100.0 * imagenet_c.average_error(errors)
  return values


def run_errors(run):
  """Table 1's error rows (%) for one run; None where it was not evaluated."""
  values = dict.fromkeys(ERROR_ROWS)
  for row in ('clean', 'imagenet_a'):
    if run.metrics(row):
      values[row] = 100.0 * run.metrics(row)['error']
  values.update(_imagenet_c_errors(run.metrics('imagenet_c')))
  for row, evaluation in TABLE_PGD_ROWS:
    values[row] = _pgd_table_error(run.metrics(evaluation))
  return values


# ---------------------------------------------------------------------------
# Table 1.


def load_paper_table(path):
  """Reads paper_table1.tsv: (columns in order, {column: {row: float or 'NA'}})."""
  try:
    with open(path) as f:
      lines = [line.rstrip('\n') for line in f if line.strip() and not line.startswith('#')]
  except OSError as e:
    raise ReportError('--paper_table=%s: cannot read (%s)' % (path, e)) from e
  columns = lines[0].split('\t')[1:]
  table = {column: {} for column in columns}
  for line in lines[1:]:
    row, *fields = line.split('\t')
    for column, text in zip(columns, fields):
      table[column][row] = text if text == NOT_APPLICABLE else float(text)
  return columns, table


def table1(groups, paper_columns):
  """{column: {row: value}} for the paper's columns, then other ImageNet groups.

  Values are error percentages, rho* a number or 'NA' (XEnt), None when absent.
  """
  extra = sorted(c for dataset, c in groups if dataset == 'imagenet' and c not in paper_columns)
  table = {}
  for column in list(paper_columns) + extra:
    rho, run = choose_run(groups.get(('imagenet', column), {}))
    if column.endswith('/XEnt'):
      rho = NOT_APPLICABLE
    table[column] = dict(run_errors(run) if run else dict.fromkeys(ERROR_ROWS), rho_star=rho)
  return table


def _format(row, value):
  """A cell's text: blank for None, 'NA', '%g' for rho*, one decimal for errors."""
  if value is None or value == NOT_APPLICABLE:
    return '' if value is None else value
  return '%g' % value if row == 'rho_star' else '%.1f' % value


def _difference(row, ours, paper):
  """ours - paper as signed text, blank unless both are numbers."""
  if not all(isinstance(v, float) for v in (ours, paper)):
    return ''
  text = ('%+g' if row == 'rho_star' else '%+.1f') % (ours - paper)
  return '+0.0' if text == '-0.0' else text


def table_cells(table, paper):
  """{column: {row: (ours, paper, difference)}} as text."""
  cells = {}
  for column, values in table.items():
    reference = paper.get(column, {})
    cells[column] = {row: (_format(row, values[row]), _format(row, reference.get(row)),
                           _difference(row, values[row], reference.get(row)))
                     for row in TABLE_ROWS}
  return cells


def table1_tsv(cells):
  """Table 1 as TSV: per column three fields, ours, '<column> paper', '<column> diff'."""
  header = ['metric']
  for column in cells:
    header += [column, column + ' paper', column + ' diff']
  lines = ['\t'.join(header)]
  for row in TABLE_ROWS:
    lines.append('\t'.join([row] + [text for column in cells for text in cells[column][row]]))
  return '\n'.join(lines) + '\n'


def _markdown_cell(ours, paper, difference):
  if not paper:
    return ours
  return '%s (%s)' % (ours, paper) if not difference else '%s (%s, %s)' % (ours, paper, difference)


def table1_markdown(cells):
  """Table 1 as Markdown: each cell 'ours (paper, ours - paper)'."""
  columns = list(cells)
  lines = ['# Table 1: ImageNet top-1 error (%)', '',
           'Each cell: ours (paper, ours - paper). Blank: not evaluated. PGD: targeted, '
           'epsilon = 16. "-aa": trained without AutoAugment; "x2": twice as wide.', '',
           '| | ' + ' | '.join(columns) + ' |', '|---' * (len(columns) + 1) + '|']
  for row in TABLE_ROWS:
    texts = [_markdown_cell(*cells[column][row]).strip() for column in columns]
    lines.append('| %s | %s |' % (ROW_LABELS[row], ' | '.join(texts)))
  return '\n'.join(lines) + '\n'


# ---------------------------------------------------------------------------
# Figures.


def _matplotlib():
  """(Figure, FigureCanvasAgg), or None when matplotlib (extra 'plots') is missing."""
  try:
    from matplotlib import figure  # pylint: disable=g-import-not-at-top
    from matplotlib.backends import backend_agg  # pylint: disable=g-import-not-at-top
  except ImportError:
    return None
  return figure.Figure, backend_agg.FigureCanvasAgg


def _png(figure, canvas_class):
  """Lays out a figure and renders it with the Agg canvas into PNG bytes."""
  canvas_class(figure)
  figure.tight_layout()
  buffer = io.BytesIO()
  figure.savefig(buffer, format='png', dpi=100)
  return buffer.getvalue()


def _cifar_groups(groups):
  """The CIFAR columns: ({column: baseline Run}, {column: {rho: Run}})."""
  baselines, series = {}, {}
  for (dataset, column), slot in sorted(groups.items()):
    if dataset != 'cifar10':
      continue
    if None in slot:
      baselines[column] = slot[None]
    else:
      series[column] = slot
  return baselines, series


def _accuracy(run, evaluation, epsilon=None):
  """Accuracy % of a run: clean, or a PGD sweep's at epsilon; None if absent."""
  metrics = run.metrics(evaluation)
  if not metrics:
    return None
  value = metrics['accuracy'] if evaluation == 'clean' else metrics['curve'].get(epsilon)
  return None if value is None else 100.0 * value


def figure1(groups, epsilons, mpl, log):
  """Figure 1: CIFAR-10 accuracy vs rho, clean and under untargeted PGD L2 and L-inf.

  One line per metric and CEB-like column over rho; the deterministic
  baseline's (XEnt) values are horizontal dashed lines of the same colours.

  Returns:
    PNG bytes, or None (logged) when no CIFAR run has any of these values.
  """
  metrics = (('clean', 'clean', None, 'black'),
             ('PGD L2 ε=%g' % epsilons['l2'], 'pgd_l2', epsilons['l2'], 'tab:blue'),
             ('PGD L∞ ε=%g' % epsilons['linf'], 'pgd_linf', epsilons['linf'], 'tab:red'))
  baselines, series = _cifar_groups(groups)
  figure = mpl[0](figsize=(7, 4.5))
  axes = figure.add_subplot()
  drawn = False
  for name, evaluation, epsilon, color in metrics:
    for column, run in baselines.items():
      value = _accuracy(run, evaluation, epsilon)
      if value is not None:
        axes.axhline(value, color=color, linestyle='--', label='%s (Det.): %s' % (column, name))
        drawn = True
    for column, slot in series.items():
      points = [(rho, _accuracy(slot[rho], evaluation, epsilon)) for rho in sorted(slot)]
      points = [p for p in points if p[1] is not None]
      if points:
        axes.plot(*zip(*points), marker='o', color=color, label='%s: %s' % (column, name))
        drawn = True
  if not drawn:
    log('figure1.png skipped: no CIFAR-10 clean or PGD (L2 eps=%g, L-inf eps=%g) results'
        % (epsilons['l2'], epsilons['linf']))
    return None
  axes.set(xlabel='ρ', ylabel='accuracy (%)', title='CIFAR-10: accuracy vs ρ (untargeted PGD)')
  axes.legend(fontsize='small')
  return _png(figure, mpl[1])


def l2_axis_forward(epsilon):
  """Figure 2's L2 axis: linear up to L2_LINEAR_LIMIT, logarithmic beyond.

  x -> L*(1 + ln(x/L)) above L is continuous with the same slope at L, so the
  two parts join smoothly.
  """
  epsilon = np.asarray(epsilon, dtype=float)
  above = L2_LINEAR_LIMIT * (1.0 + np.log(np.maximum(epsilon, L2_LINEAR_LIMIT) / L2_LINEAR_LIMIT))
  return np.where(epsilon <= L2_LINEAR_LIMIT, epsilon, above)


def l2_axis_inverse(position):
  """The inverse of `l2_axis_forward` (the exponent is capped against overflow)."""
  position = np.asarray(position, dtype=float)
  exponent = np.minimum(position / L2_LINEAR_LIMIT - 1.0, 700.0)
  return np.where(position <= L2_LINEAR_LIMIT, position, L2_LINEAR_LIMIT * np.exp(exponent))


def _l2_ticks(largest):
  """Ticks of the L2 axis: every 50 up to the joint, then 2-5-10 steps."""
  ticks = [0.0, L2_LINEAR_LIMIT / 2, L2_LINEAR_LIMIT]
  decade = L2_LINEAR_LIMIT
  while decade * 2 <= largest:
    ticks += [t for t in (decade * 2, decade * 5, decade * 10) if t <= largest]
    decade *= 10
  return ticks


def _figure2_curves(groups, rhos, log):
  """[(label, run)] of Figure 2: the baselines, then CEB-like runs at `rhos` (None: all)."""
  baselines, series = _cifar_groups(groups)
  curves = [('%s (Det.)' % column, run) for column, run in baselines.items()]
  for column, slot in series.items():
    curves += [('%s ρ=%g' % (column, rho), slot[rho]) for rho in sorted(slot)
               if rhos is None or rho in rhos]
  found = {rho for slot in series.values() for rho in slot}
  for rho in sorted(set(rhos or ()) - found):
    log('figure2.png: no CIFAR-10 run at rho=%g (--figure2_rhos)' % rho)
  return curves


def _plot_curves(axes, curves, evaluation):
  """Plots each run's accuracy-vs-epsilon curve; returns the largest epsilon drawn."""
  largest = None
  for label, run in curves:
    metrics = run.metrics(evaluation)
    if metrics and metrics['curve']:
      epsilons = sorted(metrics['curve'])
      axes.plot(epsilons, [100.0 * metrics['curve'][e] for e in epsilons], marker='.',
                label=label)
      largest = max(largest or 0.0, epsilons[-1])
  return largest


def figure2(groups, rhos, mpl, log):
  """Figure 2: CIFAR-10 accuracy vs epsilon of untargeted PGD, L-inf left, L2 right.

  The L2 axis uses matplotlib's 'function' scale with `l2_axis_forward`:
  linear up to epsilon 100, logarithmic beyond (the paper's switch), marked by a
  dotted line.

  Returns:
    PNG bytes, or None (logged) without any CIFAR PGD sweep.
  """
  curves = _figure2_curves(groups, rhos, log)
  figure = mpl[0](figsize=(11, 4.5))
  linf_axes, l2_axes = figure.subplots(1, 2)
  linf_largest = _plot_curves(linf_axes, curves, 'pgd_linf')
  l2_largest = _plot_curves(l2_axes, curves, 'pgd_l2')
  if linf_largest is None and l2_largest is None:
    log('figure2.png skipped: no untargeted CIFAR-10 PGD results (pgd_linf, pgd_l2)')
    return None
  linf_axes.set(xlabel='L∞ ε (pixels, 0-255)', ylabel='accuracy (%)', title='PGD L∞')
  l2_axes.set_xscale('function', functions=(l2_axis_forward, l2_axis_inverse))
  l2_axes.set_xticks(_l2_ticks(l2_largest or L2_LINEAR_LIMIT))
  l2_axes.axvline(L2_LINEAR_LIMIT, color='grey', linestyle=':', linewidth=1)
  l2_axes.set(xlabel='L2 ε (pixels; log scale beyond 100)', ylabel='accuracy (%)',
              title='PGD L2')
  for axes in (linf_axes, l2_axes):
    axes.legend(fontsize='small')
  return _png(figure, mpl[1])


def _figure_sets(groups, depth):
  """Figures 3-4's network pairs: [(name, {rho: CEB Run}, XEnt Run or None)]."""
  sets = []
  for pattern, objective in FIGURE_IMAGENET_SETS:
    architecture = pattern % depth
    ceb = groups.get(('imagenet', '%s/%s' % (architecture, objective)), {})
    xent = groups.get(('imagenet', architecture + '/XEnt'), {}).get(None)
    sets.append(('%s %s' % (architecture, objective), ceb, xent))
  return sets


def _rho_position(row, rho, rho_range):
  """Vertical position of a rho inside a row's band: highest rho on top."""
  low, high = rho_range
  fraction = 0.5 if high == low else (high - rho) / (high - low)
  return row - 0.4 + 0.8 * fraction


def _draw_set(axes, index, ceb, xent, rho_range):
  """Draws one network pair on every row; returns whether anything was drawn."""
  rho_star, _ = choose_run(ceb) if ceb else (None, None)
  ceb_errors = {rho: run_errors(run) for rho, run in ceb.items()}
  xent_errors = run_errors(xent) if xent else {}
  drawn = False
  for row, name in enumerate(ERROR_ROWS):
    color = (REDS if name in SUMMARY_ROWS else BLUES)[index]
    if xent_errors.get(name) is not None:
      axes.vlines(xent_errors[name], row - 0.45, row + 0.45, color=color, linewidth=1.5)
      drawn = True
    points = [(ceb_errors[rho][name], _rho_position(row, rho, rho_range))
              for rho in sorted(ceb) if ceb_errors[rho][name] is not None]
    if points:
      axes.plot(*zip(*points), color=color, linewidth=1, marker='.', markersize=3)
      drawn = True
    if rho_star in ceb_errors and ceb_errors[rho_star][name] is not None:
      axes.plot(ceb_errors[rho_star][name], _rho_position(row, rho_star, rho_range),
                'o', color=color, markersize=6)
  return drawn


def figure_imagenet(groups, depth, mpl, log, name):
  """Figures 3 (ResNet50) and 4 (ResNet152): errors of every row of Table 1 across rho.

  As in the paper: one band per row (clean, mCE, avg in red at the top; the
  15 corruptions, ImageNet-A, PGD L2 and L-inf in blue); three network pairs
  in light (no AutoAugment, CEB), medium (AutoAugment, CEB) and dark (twice as
  wide, AutoAugment, cCEB) shades; the XEnt baseline as a vertical line; the
  CEB errors as a line over rho, highest rho at the top of the band; a dot at rho*.

  Returns:
    PNG bytes, or None (logged) without results of any of these networks.
  """
  sets = _figure_sets(groups, depth)
  rhos = [rho for _, ceb, _ in sets for rho in ceb]
  rho_range = (min(rhos), max(rhos)) if rhos else (0.0, 0.0)
  figure = mpl[0](figsize=(8, 12))
  axes = figure.add_subplot()
  drawn = [_draw_set(axes, i, ceb, xent, rho_range) for i, (_, ceb, xent) in enumerate(sets)]
  if not any(drawn):
    log('%s skipped: no ImageNet ResNet%d results' % (name, depth))
    return None
  axes.set_yticks(range(len(ERROR_ROWS)), [ROW_LABELS[row] for row in ERROR_ROWS])
  axes.set_ylim(len(ERROR_ROWS) - 0.5, -0.5)
  for row in range(len(ERROR_ROWS) - 1):
    axes.axhline(row + 0.5, color='0.9', linewidth=0.5)
  handles = [axes.plot([], [], color=BLUES[i], label='%s (line: XEnt; dot: ρ*)' % label)[0]
             for i, (label, _, _) in enumerate(sets)]
  axes.legend(handles=handles, fontsize='small', loc='lower left')
  axes.set(xlabel='top-1 error (%)', title='ResNet%d: errors across ρ (top of each band: '
           'ρ=%g, bottom: ρ=%g)' % (depth, rho_range[1], rho_range[0]))
  return _png(figure, mpl[1])


def render_figures(groups, args, log):
  """{file name: PNG bytes} of the figures that have data."""
  mpl = _matplotlib()
  if mpl is None:
    log('figures skipped: matplotlib is not installed (pip install .[plots])')
    return {}
  epsilons = {'linf': args.figure1_linf_eps, 'l2': args.figure1_l2_eps}
  figures = {
      'figure1.png': figure1(groups, epsilons, mpl, log),
      'figure2.png': figure2(groups, args.figure2_rhos, mpl, log),
      'figure3.png': figure_imagenet(groups, 50, mpl, log, 'figure3.png'),
      'figure4.png': figure_imagenet(groups, 152, mpl, log, 'figure4.png'),
  }
  return {name: png for name, png in figures.items() if png is not None}


# ---------------------------------------------------------------------------
# Summary and warnings.


def pgd_setting_warnings(runs):
  """Warnings for Table 1 PGD results attacked otherwise than the paper (n=20, step 2)."""
  warnings = []
  for run in runs:
    for _, evaluation in TABLE_PGD_ROWS:
      metrics = run.metrics(evaluation)
      if not metrics or TABLE_PGD['epsilon'] not in metrics['curve']:
        continue
      step_size = metrics['step_sizes'][TABLE_PGD['epsilon']]
      if (metrics['num_steps'], step_size) != (TABLE_PGD['num_steps'], TABLE_PGD['step_size']):
        warnings.append('%s: attack at eps=16 used num_steps=%s, step_size=%s; the paper '
                        'uses 20 steps of size 2' % (run.results[evaluation].path,
                                                      metrics['num_steps'], step_size))
  return warnings


def _runs_section(runs):
  lines = ['## Runs', '', '| column | ρ | step | evaluations | missing | model_dir |',
           '|---|---|---|---|---|---|']
  for run in sorted(runs, key=lambda r: (r.dataset, r.column, r.rho or 0.0)):
    missing = [e for e in EXPECTED_EVALUATIONS[run.dataset] if e not in run.results]
    lines.append('| %s | %s | %d | %s | %s | `%s` |' % (
        run.column, '' if run.rho is None else '%g' % run.rho, run.step,
        ', '.join(sorted(run.results)), ', '.join(missing) or '-', run.model_dir))
  return lines if runs else ['## Runs', '', 'No result files found.']


def _clean_text(run):
  """A run's clean accuracy % as text, or 'missing'."""
  metrics = run.metrics('clean')
  return '%.2f' % (100.0 * metrics['accuracy']) if metrics else 'missing'


def _rho_star_section(groups):
  lines = ['## ρ* per column (best clean accuracy; within 0.1% the lowest ρ)', '',
           '| column | clean accuracy % by ρ | ρ* |', '|---|---|---|']
  for (dataset, column), slot in sorted(groups.items()):
    if None in slot:
      continue
    rho, _ = choose_run(slot)
    accuracies = ', '.join('%g: %s' % (r, _clean_text(slot[r])) for r in sorted(slot))
    lines.append('| %s (%s) | %s | %s |' % (column, dataset, accuracies,
                                            '' if rho is None else '%g' % rho))
  return lines


def _coverage_section(cells):
  lines = ['## Table 1 coverage (error rows filled per column)', '',
           '| column | filled | missing rows |', '|---|---|---|']
  for column, rows in cells.items():
    missing = [row for row in ERROR_ROWS if not rows[row][0]]
    listed = 'all' if len(missing) == len(ERROR_ROWS) else ', '.join(missing) or '-'
    lines.append('| %s | %d of %d | %s |' % (column, len(ERROR_ROWS) - len(missing),
                                             len(ERROR_ROWS), listed))
  return lines


def summary_markdown(results_dir, counts, runs, groups, cells, warnings, log_lines):
  """summary.md: what was read, the runs and their evaluations, rho*, warnings, figures."""
  lines = ['# Report summary', '',
           'Results directory: `%s`: %d JSON files, %d result files, %d other JSON files '
           'ignored.' % (results_dir, counts['json'], counts['results'], counts['ignored']), '']
  lines += _runs_section(runs) + [''] + _rho_star_section(groups) + ['']
  lines += _coverage_section(cells) + ['']
  lines += ['## Warnings', ''] + ['- ' + w for w in warnings or ['none']] + ['']
  lines += ['## Figures', ''] + ['- ' + line for line in log_lines] + ['']
  lines += ['## Notes', '',
            '- ImageNet clean accuracy comes from any `clean` result file whose summary has '
            '`accuracy` or `error` (eval.clean evaluates CIFAR-10 only).',
            '- Table 1 PGD rows: error under targeted PGD at ε=16 (`pgd_*_targeted`).',
            '- Figures 1-2: untargeted PGD (`pgd_linf`, `pgd_l2`).']
  return '\n'.join(lines) + '\n'


# ---------------------------------------------------------------------------
# The report, in memory, then on disk.


def _read_all(results_dir):
  """(counts, complete Results deduplicated, incomplete Results)."""
  paths = find_json_files(results_dir)
  results = [r for r in (read_result(p) for p in paths) if r is not None]
  counts = {'json': len(paths), 'results': len(results), 'ignored': len(paths) - len(results)}
  complete = deduplicate([r for r in results if r.complete])
  return counts, complete, [r for r in results if not r.complete]


def build_report(args):
  """Everything OUT receives, in memory.

  Returns:
    ({file name: bytes}, warnings, log lines).

  Raises:
    ReportError: bad results_dir, bad files, conflicting duplicates.
  """
  paper_columns, paper = load_paper_table(args.paper_table)
  counts, complete, incomplete = _read_all(args.results_dir)
  runs = build_runs(complete)
  groups = group_runs(runs)
  warnings = ['%s: incomplete (complete: false), ignored' % r.path for r in incomplete]
  warnings += ['%s: superseded by a later checkpoint of the same run, ignored' % path
               for run in runs for path in run.superseded]
  warnings += pgd_setting_warnings(runs)
  log_lines = []
  figures = render_figures(groups, args, log_lines.append)
  cells = table_cells(table1(groups, paper_columns), paper)
  figure_lines = log_lines + ['%s written' % name for name in figures]
  texts = {'table1.tsv': table1_tsv(cells), 'table1.md': table1_markdown(cells),
           'summary.md': summary_markdown(args.results_dir, counts, runs, groups, cells,
                                          warnings, figure_lines)}
  files = {name: text.encode('utf-8') for name, text in texts.items()}
  files.update(figures)
  return files, warnings, log_lines


def _file_mode():
  """The mode a plain open() would give a new file (mkstemp's is 0600)."""
  umask = os.umask(0)
  os.umask(umask)
  return 0o666 & ~umask


def _atomic_write(path, content, mode):
  """Writes bytes through a temp file in the same folder and a rename."""
  fd, temp = tempfile.mkstemp(prefix='.' + os.path.basename(path) + '.',
                              dir=os.path.dirname(path))
  try:
    with os.fdopen(fd, 'wb') as f:
      f.write(content)
    os.chmod(temp, mode)
    os.replace(temp, path)
  except BaseException:
    if os.path.exists(temp):
      os.remove(temp)
    raise


def write_outputs(out_dir, files):
  """Creates out_dir if needed and writes every file atomically."""
  os.makedirs(out_dir, exist_ok=True)
  mode = _file_mode()
  for name in sorted(files):
    _atomic_write(os.path.join(out_dir, name), files[name], mode)


# ---------------------------------------------------------------------------
# Command line.


def parse_rhos(text):
  """'--figure2_rhos 0,2.5,-1' -> {0.0, 2.5, -1.0}; None when unset."""
  if text is None:
    return None
  try:
    rhos = {float(part) for part in text.split(',')}
  except ValueError:
    raise ValueError('--figure2_rhos=%s is not a comma-separated list of numbers' % text) from None
  if not all(math.isfinite(rho) for rho in rhos):
    raise ValueError('--figure2_rhos=%s holds a non-finite number' % text)
  return rhos


def run(args):
  """The CLI: checks the flags, builds the report in memory, then writes it."""
  args.figure2_rhos = parse_rhos(args.figure2_rhos)
  for flag in ('figure1_linf_eps', 'figure1_l2_eps'):
    value = getattr(args, flag)
    if not math.isfinite(value) or value < 0:
      raise ValueError('--%s=%r must be a finite number >= 0' % (flag, value))
  if os.path.exists(args.out) and not os.path.isdir(args.out):
    raise ReportError('--out=%s exists and is not a directory' % args.out)
  files, warnings, log_lines = build_report(args)
  for warning in warnings:
    print('warning: %s' % warning, file=sys.stderr)
  for line in log_lines:
    print('report: %s' % line)
  write_outputs(args.out, files)
  print('report: wrote %s to %s' % (', '.join(sorted(files)), args.out))
  return 0


def build_parser():
  """The command-line flags of `python -m eval.report`."""
  parser = clean.ArgumentParser(
      prog='python -m eval.report', description='Table 1 and Figures 1-4 from result files.')
  parser.add_argument('--results_dir', required=True,
                      help='Folder searched recursively for result files (*.json).')
  parser.add_argument('--out', required=True, help='Output folder (created if needed).')
  parser.add_argument('--paper_table', default=PAPER_TABLE,
                      help='The paper\'s Table 1 as TSV (shared/data/paper_table1.tsv).')
  parser.add_argument('--figure1_linf_eps', type=float, default=FIGURE1_EPSILONS['linf'],
                      help='Figure 1\'s L-inf epsilon, pixel units.')
  parser.add_argument('--figure1_l2_eps', type=float, default=FIGURE1_EPSILONS['l2'],
                      help='Figure 1\'s L2 epsilon, pixel units (the paper names none).')
  parser.add_argument('--figure2_rhos',
                      help='Comma-separated rho values drawn in Figure 2; default all.')
  return parser


def main(argv=None):
  return clean.run_cli(build_parser(), run, argv)


if __name__ == '__main__':
  main()
