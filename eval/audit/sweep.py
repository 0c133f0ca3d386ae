"""The audit over ascending radii, resumable, into a result file.

Radii go in ascending order. An example fooled at one radius is fooled at
every larger one (its witness lies in the larger ball too), so each radius
attacks only the survivors of the radii before it and the accuracy curve
cannot rise. After the last radius the survivors face the unbounded radius
(eval.engine.UNBOUNDED_EPSILON), where accuracy must be 0.

Each radius becomes one item of a resumable `eval.kit.results.ResultFile`, keyed
by `eval.kit.cli.epsilon_key`. The smallest radius at which each example fell
('fooled_at', inf if none) lives beside it in a sidecar `<result>.carry.npz`,
written atomically before each item; a resumed sweep keeps only the radii
whose items were written, so it carries exactly the examples an uninterrupted
sweep would and writes the same file.
"""
import io
import os

import numpy as np

from eval.attacks import threat_model
from eval.audit import engine
from eval.audit import indicators as indicators_lib
from eval.kit import cli
from eval.kit import results
from resnet_ceb import fileio


def _share(mask):
  return float(np.mean(mask))


def ascending(auditor, clean, epsilons, fooled_at, smaller_pgd20=(), transfer_fn=None):
  """Audits each radius in ascending order, carrying fooled examples upwards.

  Args:
    auditor: an eval.engine.Auditor.
    clean: its Clean examples.
    epsilons: radii, audited in ascending order.
    fooled_at: float [N], the smallest radius each example fell at (inf:
      none); updated in place.
    smaller_pgd20: PGD-20 accuracies at radii audited before (for the
      pgd20_accuracy_rise indicator).
    transfer_fn: `transfer_fn(epsilon)` -> candidate images made on another
      model, or None.

  Yields:
    (epsilon, RadiusOutcome, indicators) per radius.
  """
  smaller_pgd20 = list(smaller_pgd20)
  for epsilon in sorted(epsilons):
    transfer = None if transfer_fn is None else transfer_fn(epsilon)
    outcome = auditor.audit(clean, epsilon, fooled_at < epsilon, transfer)
    fooled_at[clean.correct & ~outcome.robust & np.isinf(fooled_at)] = epsilon
    indicators = indicators_lib.radius_indicators(outcome, clean, smaller_pgd20)
    if outcome.pgd20_robust is not None:
      smaller_pgd20.append(_share(outcome.pgd20_robust))
    yield epsilon, outcome, indicators


def unbounded(auditor, clean, fooled, pgd20_accuracies, last=None):
  """The unbounded-radius indicators, attacking only examples not yet fooled.

  Args:
    auditor: an eval.engine.Auditor.
    clean: its Clean examples.
    fooled: bool [N], examples fooled at a smaller radius.
    pgd20_accuracies: PGD-20 accuracies at the smaller radii.
    last: the RadiusOutcome of the largest radius, reused when that radius is
      already unbounded.

  Returns:
    ({'unbounded_accuracy'[, 'pgd20_accuracy_rise']}, the RadiusOutcome).
  """
  radius = engine.UNBOUNDED_EPSILON[auditor.norm]
  if last is not None and last.epsilon >= radius:
    outcome = last
  else:
    outcome = auditor.audit(clean, radius, fooled, with_checks=False)
  found = {'unbounded_accuracy': _share(outcome.robust)}
  if outcome.pgd20_robust is not None and len(pgd20_accuracies):
    found['pgd20_accuracy_rise'] = _share(outcome.pgd20_robust) - min(pgd20_accuracies)
  return found, outcome


def carry_path(result_path):
  """The sidecar of a result file: `<result>.carry.npz`."""
  stem = result_path[:-len('.json')] if result_path.endswith('.json') else result_path
  return stem + '.carry.npz'


def _save_carry(path, fooled_at, labels):
  buffer = io.BytesIO()
  np.savez(buffer, fooled_at=fooled_at, labels=labels)
  fileio.atomic_write_bytes(path, buffer.getvalue())


def _load_carry(path, labels, done):
  """The sidecar's fooled_at, keeping only the radii whose items were written."""
  fooled_at = np.full(len(labels), np.inf)
  if not done:
    return fooled_at
  if not os.path.exists(path):
    raise results.ResultFileError('the result file beside %s holds audited radii but this '
                                  'sidecar is missing; remove the result file to start '
                                  'over' % path)
  with np.load(path) as saved:
    saved_fooled_at, saved_labels = saved['fooled_at'], saved['labels']
  if not np.array_equal(saved_labels, labels):
    raise results.ResultFileError('%s was written for other examples; remove it and its '
                                  'result file to start over' % path)
  return np.where(saved_fooled_at <= max(done), saved_fooled_at, fooled_at)


def _item(outcome, clean, indicators):
  """The result item of one radius."""
  return {
      'epsilon': outcome.epsilon, 'num_examples': len(clean.labels),
      'clean_accuracy': _share(clean.correct),
      'pgd20_accuracy': (None if outcome.pgd20_robust is None
                         else _share(outcome.pgd20_robust)),
      'accuracy': _share(outcome.robust), 'per_attack': outcome.per_attack,
      'indicators': indicators, 'flags': indicators_lib.flags(indicators),
      'passes': {r.name: {'gradient': r.gradient_passes, 'forward': r.forward_passes}
                 for r in outcome.records},
      # Wall seconds of each attack and of the checks: what each costs on this model.
      'seconds': dict({r.name: r.seconds for r in outcome.records},
                      **({'checks': outcome.checks['seconds']} if outcome.checks else {}))}


def _done_radii(result_file, epsilons):
  """The radii already in the file: they must be the smallest ones."""
  done = [e for e in epsilons if result_file.done(cli.epsilon_key(e))]
  threat_model.require(done == epsilons[:len(done)], '%s holds radii %s but not all smaller ones '
                       'of %s; remove it to start over' % (result_file.path, done, epsilons))
  return done


def run_sweep(auditor, clean, epsilons, result_file, transfer_fn=None):
  """Audits every radius not yet in `result_file`, then the unbounded one.

  Returns:
    The summary written: epsilons, accuracy, pgd20_accuracy, clean_accuracy,
    unbounded_epsilon, indicators, flags and verdict.
  """
  epsilons = sorted(float(e) for e in epsilons)
  done = _done_radii(result_file, epsilons)
  if result_file.complete and len(done) == len(epsilons):
    return fileio.read_json(result_file.path)['summary']
  path = carry_path(result_file.path)
  fooled_at = _load_carry(path, clean.labels, done)
  pgd20 = [result_file.items[cli.epsilon_key(e)]['pgd20_accuracy'] for e in done]
  last = None
  for epsilon, last, indicators in ascending(auditor, clean, epsilons[len(done):], fooled_at,
                                             pgd20, transfer_fn):
    _save_carry(path, fooled_at, clean.labels)
    result_file.add(cli.epsilon_key(epsilon), _item(last, clean, indicators))
  items = [result_file.items[cli.epsilon_key(e)] for e in epsilons]
  pgd20 = [item['pgd20_accuracy'] for item in items if item['pgd20_accuracy'] is not None]
  found, _ = unbounded(auditor, clean, np.isfinite(fooled_at), pgd20, last)
  return result_file.finish(summarize(items, found, auditor.norm))['summary']


def summarize(items, unbounded_indicators, norm):
  """The sweep's summary from its items (ascending) and the unbounded indicators."""
  labelled = [(cli.epsilon_key(item['epsilon']), item['flags']) for item in items]
  labelled.append(('unbounded', indicators_lib.flags(unbounded_indicators)))
  combined = indicators_lib.combine(labelled)
  return {'epsilons': [item['epsilon'] for item in items],
          'accuracy': [item['accuracy'] for item in items],
          'pgd20_accuracy': [item['pgd20_accuracy'] for item in items],
          'clean_accuracy': items[0]['clean_accuracy'] if items else None,
          'unbounded_epsilon': engine.UNBOUNDED_EPSILON[norm],
          'indicators': unbounded_indicators, 'flags': combined,
          'verdict': indicators_lib.verdict(map(indicators_lib.flag_name, combined))}
