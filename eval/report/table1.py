"""Table 1 of the paper: ImageNet top-1 errors per column at rho*, beside the paper's.

Values are error percentages. A CEB/cCEB column shows its run at rho*; PGD
rows are the errors under the targeted attacks of eval.settings.IMAGENET_PGD
(evaluations `pgd_l2_targeted`, `pgd_linf_targeted`). Anything not evaluated
is a blank cell, never a zero.
"""
import os

from eval import corruption_metrics
from eval import settings
from eval.report import results_reader
from eval.report import runs

_REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PAPER_TABLE = os.path.join(_REPO, os.pardir, 'shared', 'data', 'paper_table1.tsv')

TABLE_PGD = settings.IMAGENET_PGD
TABLE_PGD_ROWS = (('pgd_l2', 'pgd_l2_targeted'), ('pgd_linf', 'pgd_linf_targeted'))
ERROR_ROWS = (('clean', 'mce', 'average_ce') + corruption_metrics.CORRUPTIONS
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


def _pgd_table_error(metrics):
  """Error % under Table 1's targeted attack, or None without that epsilon."""
  if not metrics or TABLE_PGD['epsilon'] not in metrics['curve']:
    return None
  return 100.0 * (1.0 - metrics['curve'][TABLE_PGD['epsilon']])


def _imagenet_c_errors(metrics):
  """Per-corruption, mCE and average error %, each None when not evaluated."""
  errors = metrics['corruption_errors'] if metrics else {}
  values = {c: 100.0 * e for c, e in errors.items()}
  if len(errors) == len(corruption_metrics.CORRUPTIONS):
    values['mce'] = 100.0 * corruption_metrics.mce(errors)
    values['average_ce'] = 100.0 * corruption_metrics.average_error(errors)
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


def load_paper_table(path):
  """Reads paper_table1.tsv: (columns in order, {column: {row: float or 'NA'}})."""
  try:
    with open(path) as f:
      lines = [line.rstrip('\n') for line in f if line.strip() and not line.startswith('#')]
  except OSError as e:
    raise results_reader.ReportError('--paper_table=%s: cannot read (%s)' % (path, e)) from e
  columns = lines[0].split('\t')[1:]
  table = {column: {} for column in columns}
  for line in lines[1:]:
    row, *fields = line.split('\t')
    for column, text in zip(columns, fields):
      table[column][row] = text if text == runs.NOT_APPLICABLE else float(text)
  return columns, table


def table1(groups, paper_columns):
  """{column: {row: value}} for the paper's columns, then other ImageNet groups.

  Values are error percentages, rho* a number or 'NA' (XEnt), None when absent.
  """
  extra = sorted(c for dataset, c in groups if dataset == 'imagenet' and c not in paper_columns)
  table = {}
  for column in list(paper_columns) + extra:
    rho, run = runs.choose_run(groups.get(('imagenet', column), {}))
    if column.endswith('/XEnt'):
      rho = runs.NOT_APPLICABLE
    table[column] = dict(run_errors(run) if run else dict.fromkeys(ERROR_ROWS), rho_star=rho)
  return table


def _format(row, value):
  """A cell's text: blank for None, 'NA', '%g' for rho*, one decimal for errors."""
  if value is None or value == runs.NOT_APPLICABLE:
    return '' if value is None else value
  return '%g' % value if row == 'rho_star' else '%.1f' % value


def _difference(row, ours, paper):
  """The difference ours - paper as signed text, blank unless both are numbers."""
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
           'epsilon = %g. "-aa": trained without AutoAugment; "x2": twice as wide.'
           % TABLE_PGD['epsilon'], '',
           '| | ' + ' | '.join(columns) + ' |', '|---' * (len(columns) + 1) + '|']
  for row in TABLE_ROWS:
    texts = [_markdown_cell(*cells[column][row]).strip() for column in columns]
    lines.append('| %s | %s |' % (ROW_LABELS[row], ' | '.join(texts)))
  return '\n'.join(lines) + '\n'
