"""Table 1, Figures 1-4 and the audit table of the paper from evaluation result files.

Run `python -m eval.report --help` (eval.report.cli). One module per job:
results_reader (reading and checking result files), runs (runs, columns,
rho*), table1, figures_cifar (Figures 1-2), figures_imagenet (Figures 3-4),
audit_table, cifar10c_table (CIFAR-10-C, mCE against the run's own XEnt),
summary, build (the report in memory, then on disk) and cli.
The report runs no TensorFlow op and imports nothing that imports TensorFlow.
"""
from eval.report.build import build_report
from eval.report.cli import main
from eval.report.cli import run
from eval.report.figures_cifar import l2_axis_forward
from eval.report.figures_cifar import l2_axis_inverse
from eval.report.results_reader import ReportError
from eval.report.runs import column_name
from eval.report.runs import select_rho_star
from eval.report.table1 import TABLE_ROWS

__all__ = ['build_report', 'main', 'run', 'l2_axis_forward', 'l2_axis_inverse', 'ReportError',
           'column_name', 'select_rho_star', 'TABLE_ROWS']
