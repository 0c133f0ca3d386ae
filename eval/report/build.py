"""The report in memory, then on disk: nothing is written unless every output was built.

OUT receives table1.md and table1.tsv, figure1.png .. figure4.png (those with
data), audit.md and audit.tsv (when audit result files exist) and summary.md.
Every file is written atomically (resnet_ceb.fileio).
"""
import os

from eval.report import audit_table
from eval.report import figures
from eval.report import results_reader
from eval.report import runs as runs_lib
from eval.report import summary
from eval.report import table1
from resnet_ceb import fileio


def _warnings(runs, incomplete):
  """Incomplete and superseded files, and Table 1 attacks unlike the paper's."""
  warnings = ['%s: incomplete (complete: false), ignored' % r.path for r in incomplete]
  warnings += ['%s: superseded by a later checkpoint of the same run, ignored' % path
               for run in runs for path in run.superseded]
  return warnings + summary.pgd_setting_warnings(runs)


def _audit_texts(runs):
  """{'audit.md', 'audit.tsv'}, or {} without any audit result."""
  rows = audit_table.audit_rows(runs)
  if not rows:
    return {}
  return {'audit.md': audit_table.audit_markdown(rows), 'audit.tsv': audit_table.audit_tsv(rows)}


def build_report(args):
  """Everything OUT receives, in memory.

  Args:
    args: the parsed flags: results_dir, paper_table, figure1_linf_eps,
      figure1_l2_eps and figure2_rhos (a set of rho values, or None for all).

  Returns:
    ({file name: bytes}, warnings, log lines).

  Raises:
    ReportError: bad results_dir, bad files, conflicting duplicates.
  """
  paper_columns, paper = table1.load_paper_table(args.paper_table)
  counts, complete, incomplete = results_reader.read_all(args.results_dir)
  runs = runs_lib.build_runs(complete)
  groups = runs_lib.group_runs(runs)
  warnings = _warnings(runs, incomplete)
  log_lines = []
  epsilons = {'linf': args.figure1_linf_eps, 'l2': args.figure1_l2_eps}
  pngs = figures.render_figures(groups, epsilons, args.figure2_rhos, log_lines.append)
  cells = table1.table_cells(table1.table1(groups, paper_columns), paper)
  figure_lines = log_lines + ['%s written' % name for name in pngs]
  texts = {'table1.tsv': table1.table1_tsv(cells), 'table1.md': table1.table1_markdown(cells),
           'summary.md': summary.summary_markdown(args.results_dir, counts, runs, groups, cells,
                                                  warnings, figure_lines)}
  texts.update(_audit_texts(runs))
  files = {name: text.encode('utf-8') for name, text in texts.items()}
  files.update(pngs)
  return files, warnings, log_lines


def write_outputs(out_dir, files):
  """Creates out_dir if needed and writes every file atomically."""
  os.makedirs(out_dir, exist_ok=True)
  for name in sorted(files):
    fileio.atomic_write_bytes(os.path.join(out_dir, name), files[name])
