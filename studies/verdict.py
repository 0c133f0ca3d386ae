"""The second study's pre-registered gates, paired difference and verdict (issue 23).

Pure numpy on the per-model records of docs/study2/summary.json, so the rules
written in docs/study2/PREREGISTRATION.md are applied by code after the run,
not by hand:

  rho*  the lowest CEB rho whose seed-0 clean test accuracy is >= XEnt's
        seed-0 test accuracy - 1 point.
  G1    XEnt interpolates: its mean train accuracy >= 0.95 and its mean test
        accuracy <= mean train - 0.15.
  G2    rho* exists.
  G3    every final model gained < 1 point of train accuracy over its last
        20% of steps.
  Delta audit robust accuracy of CEB rho* minus XEnt's at L-inf eps=2, paired
        by seed, with a 95% bootstrap CI that resamples seeds and, within each
        drawn pair, test images (the same images for both models of the pair).

Verdict, exactly one of (checked in this order):
  'shows'          gates hold, mean Delta >= +0.05, Delta > 0 in every pair,
                   and the mean audit Delta at L2 eps=64 is > 0 too;
  'pgd-only'       gates hold, PGD-20's mean Delta at L-inf eps=2 >= +0.05,
                   but the audit CI's upper bound < +0.03;
  'does not show'  gates hold and the audit CI's upper bound < +0.03;
  'inconclusive'   anything else; the reason names the gate or the gap.

A value that could not be measured is None; a gate that depends on it is None
(not False), and a verdict that depends on it is 'inconclusive'.
"""
import numpy as np

# Allowance for float rounding in the threshold comparisons: far below one
# test image's share (1/1017), so it never changes which side a measurement is.
ROUNDING = 1e-9
RHO_STAR_TOLERANCE = 0.01
G1_TRAIN = 0.95
G1_GAP = 0.15
G3_GAIN = 0.01
SHOWS_MEAN = 0.05
PGD_ONLY_MEAN = 0.05
CI_UPPER = 0.03
PRIMARY = 'linf_2'
SECOND_NORM = 'l2_64'
BOOTSTRAP_SAMPLES = 10000
BOOTSTRAP_SEED = 0
VERDICTS = ('shows', 'pgd-only', 'does not show', 'inconclusive')


def _find(models, objective, seed, rho=None):
  """The record of (objective, rho, seed), or None."""
  for model in models:
    if (model['objective'] == objective and model['seed'] == seed
        and (objective == 'xent' or model['rho'] == rho)):
      return model
  return None


def _known(*values):
  return all(value is not None for value in values)


def rho_star(models, stage1_seed=0):
  """The lowest CEB rho within 1 point of XEnt's clean test accuracy at stage1_seed.

  Returns:
    The rho (float), or None when no CEB rho qualifies or XEnt's accuracy is
    unknown; CEB models with an unknown accuracy never qualify.
  """
  xent = _find(models, 'xent', stage1_seed)
  if xent is None or xent['test_accuracy'] is None:
    return None
  floor = xent['test_accuracy'] - RHO_STAR_TOLERANCE - ROUNDING
  rhos = sorted(m['rho'] for m in models if m['objective'] == 'ceb' and m['seed'] == stage1_seed
                and m['test_accuracy'] is not None and m['test_accuracy'] >= floor)
  return rhos[0] if rhos else None


def gate_g1(models):
  """XEnt's mean train >= 0.95 and mean test <= mean train - 0.15 (None: unmeasured)."""
  xents = [m for m in models if m['objective'] == 'xent']
  if not xents or not all(_known(m['train_accuracy'], m['test_accuracy']) for m in xents):
    return None
  train = float(np.mean([m['train_accuracy'] for m in xents]))
  test = float(np.mean([m['test_accuracy'] for m in xents]))
  return bool(train >= G1_TRAIN - ROUNDING and test <= train - G1_GAP + ROUNDING)


def gate_g2(models, stage1_seed=0):
  """rho* exists (None: XEnt's seed-0 test accuracy is unknown)."""
  xent = _find(models, 'xent', stage1_seed)
  if xent is None or xent['test_accuracy'] is None:
    return None
  return rho_star(models, stage1_seed) is not None


def gate_g3(models):
  """Every model gained < 1 point of train accuracy over its last 20% (None: unmeasured)."""
  gains = [m['train_gain_last_20pct'] for m in models]
  if not gains or not _known(*gains):
    return None
  return bool(all(gain < G3_GAIN - ROUNDING for gain in gains))


def _bits(text):
  """'0110' -> int8 [0, 1, 1, 0]; ValueError on anything but 0/1."""
  if not text or set(text) - {'0', '1'}:
    raise ValueError('a robust bit string must be non-empty 0/1 characters, got %r'
                     % (text[:20] if text else text,))
  return np.frombuffer(text.encode('ascii'), np.uint8).astype(np.int8) - ord('0')


def paired_differences(models, rho, seeds):
  """Per-example CEB-minus-XEnt robust bits at L-inf eps=2, one row per seed.

  Returns:
    int8 [pairs, N] of -1/0/1, or None if a model or its bit string is missing.

  Raises:
    ValueError: bit strings of different lengths (different test images).
  """
  rows = []
  for seed in seeds:
    xent, ceb = _find(models, 'xent', seed), _find(models, 'ceb', seed, rho)
    if xent is None or ceb is None or not _known(xent['audit_robust_linf_2'],
                                                 ceb['audit_robust_linf_2']):
      return None
    a, b = _bits(xent['audit_robust_linf_2']), _bits(ceb['audit_robust_linf_2'])
    if len(a) != len(b) or (rows and len(a) != rows[0].shape[0]):
      raise ValueError('seed %d: robust bit strings of different lengths (%d, %d): the '
                       'models were audited on different images' % (seed, len(a), len(b)))
    rows.append(b - a)
  return np.stack(rows) if rows else None


def bootstrap_ci(differences, num_samples=BOOTSTRAP_SAMPLES, seed=BOOTSTRAP_SEED, chunk=500):
  """95% percentile CI of the mean paired difference, resampling pairs then images.

  Each bootstrap draw picks len(pairs) pairs with replacement and, for each
  pick, N image indices with replacement (shared by the pair's two models,
  so the example pairing is kept); the statistic is the mean over the picks
  of the mean difference over the drawn images.

  Args:
    differences: int [pairs, N] of CEB-minus-XEnt robust bits.
    num_samples: bootstrap draws.
    seed: numpy seed, so the CI repeats.
    chunk: draws vectorized at once (memory: chunk * pairs * N).

  Returns:
    [lower, upper] as floats.
  """
  differences = np.asarray(differences, np.float64)
  pairs, count = differences.shape
  rng = np.random.default_rng(seed)
  statistics = []
  for start in range(0, num_samples, chunk):
    size = min(chunk, num_samples - start)
    picked = rng.integers(0, pairs, size=(size, pairs))
    images = rng.integers(0, count, size=(size, pairs, count))
    drawn = differences[picked[:, :, None], images]
    statistics.append(drawn.mean(axis=2).mean(axis=1))
  lower, upper = np.percentile(np.concatenate(statistics), [2.5, 97.5])
  return [float(lower), float(upper)]


def _mean_delta(models, rho, seeds, family, key):
  """Mean over seeds of CEB's minus XEnt's `family` ('audit'/'pgd20') accuracy at key."""
  deltas = []
  for seed in seeds:
    xent, ceb = _find(models, 'xent', seed), _find(models, 'ceb', seed, rho)
    values = [(m[family] or {}).get(key) for m in (xent, ceb) if m is not None]
    if len(values) < 2 or not _known(*values):
      return None
    deltas.append(values[1] - values[0])
  return float(np.mean(deltas)) if deltas else None


def delta(models, rho, seeds, num_samples=BOOTSTRAP_SAMPLES):
  """The pre-registered Delta: pairs, mean, CI, plus the two numbers the verdict also reads.

  Returns:
    {'seeds', 'pairs' (per-seed Delta, seed order), 'mean', 'ci95',
     'pgd20_linf_2_mean', 'audit_l2_64_mean'}; unmeasurable values None.
  """
  empty = {'seeds': list(seeds), 'pairs': None, 'mean': None, 'ci95': None,
           'pgd20_linf_2_mean': None, 'audit_l2_64_mean': None}
  if rho is None or not seeds:
    return empty
  differences = paired_differences(models, rho, seeds)
  found = dict(empty, pgd20_linf_2_mean=_mean_delta(models, rho, seeds, 'pgd20', PRIMARY),
               audit_l2_64_mean=_mean_delta(models, rho, seeds, 'audit', SECOND_NORM))
  if differences is None:
    return found
  pairs = [float(row.mean()) for row in differences]
  return dict(found, pairs=pairs, mean=float(np.mean(pairs)),
              ci95=bootstrap_ci(differences, num_samples))


def _failed_gates(gates):
  return ['%s %s' % (name, 'not measured' if gates.get(name) is None else 'failed')
          for name in ('G1', 'G2', 'G3') if gates.get(name) is not True]


def verdict(gates, found):
  """(one of VERDICTS, the reason) from the gates and delta()'s result."""
  failed = _failed_gates(gates)
  if failed:
    return 'inconclusive', 'gate ' + ', '.join(failed)
  if found['mean'] is None or found['ci95'] is None:
    return 'inconclusive', 'the audit Delta at L-inf eps=2 was not measured for every pair'
  mean, upper, l2 = found['mean'], found['ci95'][1], found['audit_l2_64_mean']
  if (mean >= SHOWS_MEAN - ROUNDING and all(p > 0 for p in found['pairs'])
      and l2 is not None and l2 > 0):
    return 'shows', ('mean Delta %+.3f, positive in all %d pairs, L2 eps=64 mean %+.3f'
                     % (mean, len(found['pairs']), l2))
  if upper < CI_UPPER - ROUNDING:
    pgd = found['pgd20_linf_2_mean']
    if pgd is None:
      return 'inconclusive', ('the audit CI upper bound %+.3f < +0.03 but PGD-20 Delta was '
                              'not measured, so pgd-only cannot be told apart' % upper)
    if pgd >= PGD_ONLY_MEAN - ROUNDING:
      return 'pgd-only', 'PGD-20 mean Delta %+.3f but audit CI upper bound %+.3f' % (pgd, upper)
    return 'does not show', 'audit CI upper bound %+.3f < +0.03 (PGD-20 Delta %+.3f)' % (
        upper, pgd)
  if mean >= SHOWS_MEAN - ROUNDING and l2 is None:
    return 'inconclusive', 'the audit at L2 eps=64 was not measured for every pair'
  return 'inconclusive', ('mean Delta %+.3f with CI [%+.3f, %+.3f]: neither shows (mean '
                          '>= +0.05, every pair > 0, L2 eps=64 > 0) nor upper bound < +0.03'
                          % (mean, found['ci95'][0], upper))


def judge(models, seeds, stage1_seed=0, num_samples=BOOTSTRAP_SAMPLES):
  """rho*, gates, delta, verdict and its reason: the summary's computed part."""
  rho = rho_star(models, stage1_seed)
  gates = {'G1': gate_g1(models), 'G2': gate_g2(models, stage1_seed), 'G3': gate_g3(models)}
  found = delta(models, rho, seeds, num_samples)
  name, reason = verdict(gates, found)
  return {'rho_star': rho, 'gates': gates, 'delta': found, 'verdict': name,
          'verdict_reason': reason}
