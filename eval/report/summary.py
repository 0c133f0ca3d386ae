"""summary.md and the report's warnings: what was read, what is missing, what differs.

Lists the runs found with their evaluations and what each is still missing,
rho* per column with the clean accuracies it was chosen from, Table 1's
coverage, the audits' verdicts, CIFAR-10-C (eval.report.cifar10c_table), every
warning and what became of each figure.
"""
from eval.report import audit_table
from eval.report import cifar10c_table
from eval.report import runs as runs_lib
from eval.report import table1

# What each run of the paper's matrices is expected to have been evaluated on.
EXPECTED_EVALUATIONS = {
    'imagenet': ('clean', 'imagenet_c', 'imagenet_a', 'pgd_l2_targeted',
                 'pgd_linf_targeted'),
    'cifar10': ('clean', 'pgd_linf', 'pgd_l2', 'pgd_linf_targeted', 'pgd_l2_targeted'),
}


def pgd_setting_warnings(runs):
  """Warnings for Table 1 PGD results attacked otherwise than the paper (n=20, step 2)."""
  setting = table1.TABLE_PGD
  warnings = []
  for run in runs:
    for _, evaluation in table1.TABLE_PGD_ROWS:
      metrics = run.metrics(evaluation)
      if not metrics or setting['epsilon'] not in metrics['curve']:
        continue
      step_size = metrics['step_sizes'][setting['epsilon']]
      if (metrics['num_steps'], step_size) != (setting['num_steps'], setting['step_size']):
        warnings.append('%s: attack at eps=%g used num_steps=%s, step_size=%s; the paper '
                        'uses %d steps of size %g' % (
                            run.results[evaluation].path, setting['epsilon'],
                            metrics['num_steps'], step_size, setting['num_steps'],
                            setting['step_size']))
  return warnings


def _runs_section(runs):
  if not runs:
    return ['## Runs', '', 'No result files found.']
  lines = ['## Runs', '', '| column | ρ | step | classes | evaluations | missing | model_dir |',
           '|---|---|---|---|---|---|---|']
  for run in sorted(runs, key=runs_lib.reading_order):
    missing = [e for e in EXPECTED_EVALUATIONS[run.dataset] if e not in run.results]
    lines.append('| %s | %s | %d | %s | %s | %s | `%s` |' % (
        run.column, '' if run.rho is None else '%g' % run.rho, run.step,
        '' if run.num_classes is None else run.num_classes,
        ', '.join(sorted(run.results)), ', '.join(missing) or '-', run.model_dir))
  return lines


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
    rho, _ = runs_lib.choose_run(slot)
    accuracies = ', '.join('%g: %s' % (r, _clean_text(slot[r])) for r in sorted(slot))
    lines.append('| %s (%s) | %s | %s |' % (column, dataset, accuracies,
                                            '' if rho is None else '%g' % rho))
  return lines


def _coverage_section(cells):
  rows = table1.ERROR_ROWS
  lines = ['## Table 1 coverage (error rows filled per column)', '',
           '| column | filled | missing rows |', '|---|---|---|']
  for column, cell_rows in cells.items():
    missing = [row for row in rows if not cell_rows[row][0]]
    listed = 'all' if len(missing) == len(rows) else ', '.join(missing) or '-'
    lines.append('| %s | %d of %d | %s |' % (column, len(rows) - len(missing), len(rows), listed))
  return lines


def _audit_section(runs):
  """Each audited run's verdict per norm; the numbers are in audit.md."""
  lines = ['## Audit (details in audit.md)', '']
  for run in sorted(runs, key=runs_lib.reading_order):
    for norm, evaluation in audit_table.AUDIT_NORMS:
      metrics = run.metrics(evaluation)
      if metrics:
        lines.append('- %s%s, %s: %s' % (
            run.column, '' if run.rho is None else ' ρ=%g' % run.rho, norm, metrics['verdict']))
  return lines if len(lines) > 2 else ['## Audit', '', 'No audit result files (audit_linf, '
                                       'audit_l2).']


def summary_markdown(results_dir, counts, runs, groups, cells, warnings, log_lines):
  """summary.md: what was read, the runs and their evaluations, rho*, warnings, figures."""
  lines = ['# Report summary', '',
           'Results directory: `%s`: %d JSON files, %d result files, %d other JSON files '
           'ignored.' % (results_dir, counts['json'], counts['results'], counts['ignored']), '']
  lines += _runs_section(runs) + [''] + _rho_star_section(groups) + ['']
  lines += _coverage_section(cells) + [''] + _audit_section(runs) + ['']
  lines += cifar10c_table.cifar10c_section(cifar10c_table.cifar10c_rows(runs)) + ['']
  lines += ['## Warnings', ''] + ['- ' + w for w in warnings or ['none']] + ['']
  lines += ['## Figures', ''] + ['- ' + line for line in log_lines] + ['']
  lines += ['## Notes', '',
            '- Clean accuracy comes from any `clean` result file whose summary has '
            '`accuracy` or `error`, whichever tool wrote it.',
            '- Table 1 PGD rows: error under targeted PGD at ε=%g (`pgd_*_targeted`).'
            % table1.TABLE_PGD['epsilon'],
            '- Figure 1: two panels, targeted PGD (`pgd_linf_targeted`, `pgd_l2_targeted`) '
            'and untargeted PGD (`pgd_linf`, `pgd_l2`): the paper names both modes. Figure 2: '
            'untargeted PGD. Audits (`audit_linf`, `audit_l2`) dashed in the same colour. Grey '
            "lines: the paper's Madry et al. values (87.3% clean, 45.7% under Figure 1's L2 "
            'attack; it gives no L∞ value).']
  return '\n'.join(lines) + '\n'
