"""CIFAR-10-C in summary.md: the 15-corruption average, the 4 extras apart, mCE vs own XEnt.

The paper normalizes its CIFAR-10-C mCE by "the baseline model from Yin et al.
(2019)" (footnote 2), whose per-corruption errors are not shipped here
(docs/FIDELITY.md section 2). The report normalizes instead by the run's own
XEnt model: the XEnt run of the same architecture (column) among the results,
when it has a CIFAR-10-C result. mCE = mean_c E_c / B_c over the benchmark
corruptions the run has (all 5 severities each), so 100% is as
corruption-robust as that XEnt model; it is not comparable with the paper's
numbers. The average error needs no baseline. The release's 4 extra
corruptions get their own average and never enter the other two.
"""
import numpy as np

from eval import corruption_metrics
from eval.report import runs as runs_lib

EVALUATION = 'cifar10_c'


def _architecture(run):
  """The column without its objective, e.g. 'WRN-28x10' (or 'WRN-28x10-aa')."""
  return run.column.split('/')[0]


def _baseline_run(run, cifar_runs):
  """The XEnt run of run's architecture among `cifar_runs`, or None."""
  for other in cifar_runs:
    if other.rho is None and _architecture(other) == _architecture(run):
      return other
  return None


def _mce(errors, baseline):
  """The mCE of `errors` against the baseline run's; None without one covering them."""
  if baseline is None or not errors:
    return None
  normalizers = baseline.metrics(EVALUATION)['corruption_errors']
  if any(normalizers.get(c, 0.0) <= 0.0 for c in errors):
    return None
  return corruption_metrics.mce(errors, {c: normalizers[c] for c in errors})


def _mean(errors):
  return float(np.mean(list(errors.values()))) if errors else None


def cifar10c_rows(runs):
  """One dict per CIFAR-10 run with a complete cifar10_c result, in reading order.

  Each has column, rho, num_corruptions (benchmark ones with all 5
  severities), average (their mean error), mce (against the baseline, or
  None), baseline (its model_dir, or None) and extra_average (None without
  extras).
  """
  cifar_runs = sorted((r for r in runs if r.dataset == 'cifar10' and r.metrics(EVALUATION)),
                      key=runs_lib.reading_order)
  rows = []
  for run in cifar_runs:
    metrics = run.metrics(EVALUATION)
    baseline = _baseline_run(run, cifar_runs)
    rows.append({'column': run.column, 'rho': run.rho,
                 'num_corruptions': len(metrics['corruption_errors']),
                 'average': _mean(metrics['corruption_errors']),
                 'mce': _mce(metrics['corruption_errors'], baseline),
                 'baseline': baseline.model_dir if baseline else None,
                 'extra_average': _mean(metrics['extra_errors'])})
  return rows


def _percent(value):
  return '' if value is None else '%.1f' % (100.0 * value)


def cifar10c_section(rows):
  """The summary's CIFAR-10-C section (markdown lines)."""
  if not rows:
    return ['## CIFAR-10-C', '', 'No CIFAR-10-C result files (cifar10_c).']
  total = len(corruption_metrics.CORRUPTIONS)
  lines = ['## CIFAR-10-C', '',
           'Average error and mCE over the %d benchmark corruptions x 5 severities; the 4 '
           'extra corruptions (%s) on their own. mCE is relative to the run\'s own XEnt model '
           '(same architecture), not to the paper\'s baseline of Yin et al. (2019), which is '
           'not shipped: it is not comparable with the paper\'s mCE.'
           % (total, ', '.join(corruption_metrics.EXTRA_CORRUPTIONS)), '',
           '| column | ρ | benchmark corruptions | average error % | mCE % vs own XEnt | '
           'extras: average error % | XEnt baseline |', '|---|---|---|---|---|---|---|']
  for row in rows:
    lines.append('| %s | %s | %d of %d | %s | %s | %s | %s |' % (
        row['column'], '' if row['rho'] is None else '%g' % row['rho'],
        row['num_corruptions'], total, _percent(row['average']), _percent(row['mce']),
        _percent(row['extra_average']),
        '`%s`' % row['baseline'] if row['baseline'] else 'none found'))
  return lines
