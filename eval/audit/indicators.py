"""Indicators that an evaluation was fooled by gradient masking or a failed attack.

After Carlini et al. 2019 ("On Evaluating Adversarial Robustness", section 5's
checklist) and Pintor et al. 2022 ("Indicators of Attack Failure"). Each
indicator is a number, most of them a share of all the audited examples; one
fires when it passes its threshold:

* unbounded_accuracy: accuracy at a radius holding the whole pixel cube;
  must be 0 (an attack that cannot win there is not attacking).
* pgd20_accuracy_rise: how far PGD-20's accuracy lies above its accuracy at
  a smaller radius of the sweep (or, for one radius, at the unbounded one);
  accuracy must not rise with the radius.
* pgd20_audit_gap: PGD-20 accuracy minus the audit's; large means the paper's
  attack overstates robustness.
* gradient_free_only: examples only the gradient-free attack (Square) broke.
* gradient_none, gradient_nonfinite, gradient_zero: examples whose clean
  cross-entropy input gradient is missing, NaN/infinite, or exactly zero (a
  float32-saturated softmax gives exact zeros).
* gradient_broken_in_attack: examples where an attack met a missing or
  non-finite gradient along its path.
* never_raised_loss: per attack, examples it failed on without ever raising
  its own loss above its start (Pintor et al.'s silent failure).
* transfer_only: examples that adversarial examples made on another model
  fooled but no white-box attack did.
* rejected_witnesses: a count of attack claims the witness check refused.
* randomized_logits: the largest L2 distance between the norm-1 logits of
  five runs of one batch (AutoAttack's randomness check); a randomized model
  needs expectation over transformation (APGD's eot_samples).
* not_converged: the accuracy points APGD-CE and APGD-T with twice the
  steps and restarts take off, estimated on a seeded sample of the survivors.
* zero_gradient: the share of the examples a DLR-loss APGD (APGD-T)
  attacked whose DLR input gradient was exactly zero at some iterate.
* single_step_beats_iterative, noise_beats_gradient: how far FGSM at eps, or
  the best of 20 uniform draws in the eps-ball, lies below PGD-20's accuracy.

docs/AUDIT.md tabulates every threshold with its source. The verdict is "no
sign of gradient masking" when nothing fired, else it names the indicators
that did.
"""
import numpy as np

# A share of the examples at or below this is not a finding (one example in 100).
TOLERANCE = 0.01
# AutoAttack lowers PGD accuracy by a point or two even on sound defenses.
GAP_TOLERANCE = 0.03
# AutoAttack's checks.py (check_square_sr) warns when Square takes more than
# this off the accuracy the gradient attacks left.
GRADIENT_FREE_TOLERANCE = 0.002
NO_SIGN = 'no sign of gradient masking'
# AutoAttack's checks.py: normalized logits of repeated runs may differ by this much.
RANDOMNESS_TOLERANCE = 1e-4
EOT_ADVICE = ('the model is randomized: its numbers need expectation over transformation '
              '(--eot_samples)')

# (indicator, threshold, what it means when it fires).
_RULES = (
    ('unbounded_accuracy', 0.0, 'accuracy %.3f at an unbounded radius (must be 0)'),
    ('pgd20_accuracy_rise', TOLERANCE, 'PGD-20 accuracy rises by %.3f with the radius'),
    ('pgd20_audit_gap', GAP_TOLERANCE, 'the audit lowers PGD-20 accuracy by %.3f'),
    ('gradient_free_only', GRADIENT_FREE_TOLERANCE,
     '%.3f of the examples fell only to the gradient-free attack'),
    ('gradient_none', TOLERANCE, '%.3f of the examples have no input gradient (None)'),
    ('gradient_nonfinite', TOLERANCE,
     '%.3f of the examples have a non-finite input gradient'),
    ('gradient_zero', TOLERANCE, '%.3f of the examples have an exactly zero cross-entropy '
     'input gradient (e.g. a saturated softmax)'),
    ('gradient_broken_in_attack', TOLERANCE,
     '%.3f of the examples met a None or non-finite gradient during an attack'),
    ('transfer_only', TOLERANCE,
     '%.3f of the examples fell to transferred examples but to no white-box attack'),
    ('rejected_witnesses', 0, '%d attack claims failed the witness check'),
    ('randomized_logits', RANDOMNESS_TOLERANCE, 'the same batch run 5 times gives logits up '
     'to %.3g apart (norm-1 logits): ' + EOT_ADVICE),
    ('not_converged', TOLERANCE, 'APGD-CE and APGD-T with twice the steps and restarts take '
     '%.3f more off the accuracy (sampled survivors): the budget was too small'),
    ('zero_gradient', 0.0, '%.3f of the survivors met an exactly zero DLR input gradient '
     'during the attacks'),
    ('single_step_beats_iterative', 0.0, 'FGSM at eps lowers accuracy %.3f below PGD-20'),
    ('noise_beats_gradient', 0.0, 'uniform noise in the eps-ball (20 draws) lowers accuracy '
     '%.3f below PGD-20'),
)


def _share(mask):
  return float(np.mean(mask))


def radius_indicators(outcome, clean, smaller_pgd20=(), unbounded_accuracy=None):
  """The indicators of one radius of the audit.

  Args:
    outcome: the eval.audit.engine.RadiusOutcome.
    clean: the eval.audit.engine.Clean examples.
    smaller_pgd20: PGD-20 accuracies at the smaller radii audited before.
    unbounded_accuracy: the accuracy at the unbounded radius, when known.

  Returns:
    A dict of numbers (never_raised_loss: a dict attack -> share).
  """
  records = outcome.records
  indicators = {'gradient_' + key: _share(mask) for key, mask in clean.gradient.items()}
  indicators['randomized_logits'] = clean.randomness
  indicators.update(_check_indicators(outcome, clean))
  indicators['gradient_broken_in_attack'] = _share(np.any([r.broken for r in records], 0))
  indicators['never_raised_loss'] = {r.name: _share(r.never_raised) for r in records}
  indicators['rejected_witnesses'] = int(sum(r.rejected for r in records))
  if any(r.gradient_free for r in records):
    indicators['gradient_free_only'] = _share(
        np.any([r.fooled for r in records if r.gradient_free], 0))
  if outcome.pgd20_robust is not None:
    pgd20 = _share(outcome.pgd20_robust)
    indicators['pgd20_audit_gap'] = pgd20 - _share(outcome.robust)
    if len(smaller_pgd20):
      indicators['pgd20_accuracy_rise'] = pgd20 - min(smaller_pgd20)
  if outcome.transfer is not None:
    white_box = np.any([r.fooled for r in records if not r.gradient_free]
                       + [np.zeros_like(outcome.robust)], 0)
    indicators['transfer_only'] = _share(outcome.transfer.fooled & ~white_box & ~outcome.carried)
  if unbounded_accuracy is not None:
    indicators['unbounded_accuracy'] = float(unbounded_accuracy)
  return indicators


def _check_indicators(outcome, clean):
  """zero_gradient from the DLR attacks' records; the rest from outcome.checks."""
  found = {}
  dlr = [r for r in outcome.records if r.zero_gradient is not None
         and r.name in ('apgd-t', 'apgd-dlr') and r.attacked.any()]
  if dlr:
    attacked = np.any([r.attacked for r in dlr], 0)
    zero = np.any([r.zero_gradient for r in dlr], 0)
    found['zero_gradient'] = float(zero.sum() / attacked.sum())
  checks = outcome.checks
  if checks.get('not_converged') is not None:
    found['not_converged'] = checks['not_converged']
  if outcome.pgd20_robust is not None:
    pgd20 = _share(outcome.pgd20_robust)
    for name, check in (('single_step_beats_iterative', 'fgsm'),
                        ('noise_beats_gradient', 'noise')):
      if check in checks:
        found[name] = pgd20 - _share(clean.correct & ~checks[check])
  return found


def fired(indicators):
  """[(indicator, text)] for every indicator past its threshold."""
  found = [(name, text % indicators[name]) for name, threshold, text in _RULES
           if indicators.get(name) is not None and indicators[name] > threshold]
  return found + _never_raised(indicators.get('never_raised_loss', {}))


def _never_raised(shares):
  failed = {attack: share for attack, share in shares.items() if share > TOLERANCE}
  if not failed:
    return []
  return [('never_raised_loss', 'examples an attack failed on without ever raising its '
           'loss: ' + ', '.join('%s %.3f' % item for item in failed.items()))]


def flags(indicators):
  """One 'indicator: what it found' string per indicator that fired."""
  return ['%s: %s' % item for item in fired(indicators)]


def verdict(names):
  """'no sign of gradient masking', or the names of the indicators that fired."""
  names = list(dict.fromkeys(names))
  if not names:
    return NO_SIGN
  advice = '; ' + EOT_ADVICE if 'randomized_logits' in names else ''
  return 'indicators fired: ' + ', '.join(names) + advice


def combine(labelled):
  """One flag per indicator from flag lists of several radii: 'name (where): first text'.

  Args:
    labelled: [(label, flags)], e.g. [('eps=2', [...]), ('unbounded', [...])].
  """
  where, text = {}, {}
  for label, found in labelled:
    for flag in found:
      name, _, detail = flag.partition(': ')
      where.setdefault(name, []).append(label)
      text.setdefault(name, detail)
  return ['%s (%s): %s' % (name, ', '.join(where[name]), text[name]) for name in where]


def flag_name(flag):
  """The indicator a flag string (of `flags` or `combine`) is about."""
  return flag.split(':', 1)[0].split(' ', 1)[0]
