"""The command line of the report.

    python -m eval.report --results_dir DIR --out OUT [--figure2_rhos 1,2,5]

Reads every `*.json` under DIR (recursively): a JSON object with an
'evaluation' key is a result file (eval.kit.results); other JSON files (e.g. a
trainer's params.json) are skipped. Writes to OUT (eval.report.build):

* `table1.md`, `table1.tsv`: Table 1 in the paper's layout (eval.report.table1).
* `figure1.png` .. `figure4.png`: Figures 1-4 (eval.report.figures_cifar,
  eval.report.figures_imagenet). A figure without data is skipped with a log line.
* `audit.md`, `audit.tsv`: the robustness audits, when any (eval.report.audit_table).
* `summary.md`: the runs found, their evaluations, what is missing, warnings.

A run is a model_dir; when result files of several checkpoints exist, only the
latest checkpoint's complete files are used (older ones are listed as
superseded). Files marked `complete: false` are warned about and ignored.

Invalid JSON, NaN, missing keys, two different files for the same run and
evaluation, or two runs in the same column at the same rho print
`error: <message naming the files>` and exit with status 2; nothing is written,
because every output is built in memory first and then written atomically.
"""
import math
import os
import sys

from eval import settings
from eval.kit import checks
from eval.kit import cli
from eval.report import build
from eval.report import results_reader
from eval.report import table1


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
  """Checks the flags, builds the report in memory, then writes it; returns 0."""
  args.figure2_rhos = parse_rhos(args.figure2_rhos)
  for flag in ('figure1_linf_eps', 'figure1_l2_eps'):
    checks.check_epsilon(getattr(args, flag), '--' + flag)
  if os.path.exists(args.out) and not os.path.isdir(args.out):
    raise results_reader.ReportError('--out=%s exists and is not a directory' % args.out)
  files, warnings, log_lines = build.build_report(args)
  for warning in warnings:
    print('warning: %s' % warning, file=sys.stderr)
  for line in log_lines:
    print('report: %s' % line)
  build.write_outputs(args.out, files)
  print('report: wrote %s to %s' % (', '.join(sorted(files)), args.out))
  return 0


def build_parser():
  """The command-line flags of `python -m eval.report`."""
  parser = cli.ArgumentParser(
      prog='python -m eval.report', description='Table 1 and Figures 1-4 from result files.')
  parser.add_argument('--results_dir', required=True,
                      help='Folder searched recursively for result files (*.json).')
  parser.add_argument('--out', required=True, help='Output folder (created if needed).')
  parser.add_argument('--paper_table', default=table1.PAPER_TABLE,
                      help='The paper\'s Table 1 as TSV (shared/data/paper_table1.tsv).')
  parser.add_argument('--figure1_linf_eps', type=float,
                      default=settings.FIGURE1_EPSILONS['linf'],
                      help='Figure 1\'s L-inf epsilon, pixel units.')
  parser.add_argument('--figure1_l2_eps', type=float, default=settings.FIGURE1_EPSILONS['l2'],
                      help='Figure 1\'s L2 epsilon, pixel units (the paper names none).')
  parser.add_argument('--figure2_rhos',
                      help='Comma-separated rho values drawn in Figure 2; default all.')
  return parser


def main(argv=None):
  """Runs the report on argv; bad input exits 2 with `error: <message>`."""
  return cli.run_cli(build_parser(), run, argv)
