"""The robustness audit per model: PGD-20 beside the audit's stronger attacks.

An audit result file (`audit_linf`, `audit_l2`, written by eval.audit) holds
per epsilon the clean accuracy, the accuracy under PGD-20 and the accuracy
left after every attack of the audit. Audit accuracy well below PGD-20's
means PGD-20 overestimated the model's robustness (e.g. gradient masking);
the verdict and flags are the audit's own and are shown as written.
"""
from eval.report import runs as runs_lib

AUDIT_NORMS = (('L∞', 'audit_linf'), ('L2', 'audit_l2'))
HEADER = ('column', 'ρ', 'norm', 'ε', 'clean %', 'PGD-20 %', 'audit %', 'audit - PGD-20',
          'verdict', 'flags', 'model_dir')


def _percent(fraction):
  return '%.2f' % (100.0 * fraction)


def _epsilon_rows(run, norm, metrics):
  """One row of texts per audited epsilon of one run and norm."""
  rows = []
  for epsilon in sorted(metrics['curve']):
    audit, pgd20 = metrics['curve'][epsilon], metrics['pgd20'][epsilon]
    flags = metrics['flags'] + metrics['item_flags'][epsilon]
    rows.append((run.column, '' if run.rho is None else '%g' % run.rho, norm, '%g' % epsilon,
                 _percent(metrics['clean'][epsilon]), _percent(pgd20), _percent(audit),
                 '%+.2f' % (100.0 * (audit - pgd20)), metrics['verdict'],
                 ', '.join(flags) or '-', run.model_dir))
  return rows


def audit_rows(runs):
  """The audit table: a tuple of texts (HEADER's fields) per run, norm and epsilon."""
  rows = []
  for run in sorted(runs, key=runs_lib.reading_order):
    for norm, evaluation in AUDIT_NORMS:
      metrics = run.metrics(evaluation)
      if metrics:
        rows.extend(_epsilon_rows(run, norm, metrics))
  return rows


def audit_tsv(rows):
  """The audit table as TSV, one line per row."""
  return '\n'.join('\t'.join(fields) for fields in [HEADER] + rows) + '\n'


def audit_markdown(rows):
  """The audit table as Markdown, with what its columns mean."""
  lines = ['# Robustness audit: PGD-20 against stronger attacks', '',
           'Accuracies on the audit\'s examples. "audit": accuracy left after every attack '
           'of the audit (PGD-20 included); a value well below PGD-20\'s means PGD-20 '
           'overestimates robustness. Verdict and flags as eval.audit wrote them.', '',
           '| ' + ' | '.join(HEADER) + ' |', '|---' * len(HEADER) + '|']
  for fields in rows:
    lines.append('| %s | `%s` |' % (' | '.join(fields[:-1]), fields[-1]))
  return '\n'.join(lines) + '\n'
