"""The audit's library entry point: `run_audit` at one radius (SPEC section 7).

The paper measures robustness with 20-step PGD on the cross-entropy alone. A
model can look robust to that by masking its gradients (saturated softmax,
non-differentiable or noisy layers) without being robust. The audit runs the
field's standard answer in the model's own TF1 graph: the paper's PGD-20,
then exactly AutoAttack's standard sequence (eval.audit.specs: APGD-CE,
APGD-T, FAB-T, Square), each on the examples still
robust, counting an example fooled only through a checked witness
(eval.audit.engine), and it reports the indicators of Carlini et al. 2019 and
Pintor et al. 2022 (eval.audit.indicators) with a verdict::

    result = run_audit(logits_fn, images, labels, norm='linf', epsilon=8)
    result.robust, result.adversarial, result.per_attack, result.indicators, result.flags
"""
import dataclasses
from typing import Optional

import numpy as np

from eval.attacks import threat_model
from eval.audit import engine
from eval.audit import indicators as indicators_lib
from eval.audit import specs as specs_lib
from eval.audit import sweep


@dataclasses.dataclass
class AuditResult:
  """What `run_audit` found at one radius (numpy arrays over the N examples)."""
  robust: np.ndarray
  adversarial: np.ndarray
  per_attack: dict
  indicators: dict
  flags: list
  epsilon: float
  clean_accuracy: float
  pgd20_accuracy: Optional[float]
  accuracy: float
  verdict: str
  passes: dict  # attack -> {'gradient': n, 'forward': n}, per-example passes.


def check_examples(images, labels):
  """Images as float32 pixels [N, H, W, C] in [0, 255] and labels as int32 [N].

  Raises:
    ValueError: wrong shapes or types, pixels outside [0, 255], negative labels.
  """
  images, labels = np.asarray(images), np.asarray(labels)
  threat_model.require(images.ndim == 4 and len(images) >= 1 and images.dtype.kind in 'uif',
                       'images must be a non-empty numeric array [N, H, W, C], got %s of shape %s'
                       % (images.dtype, images.shape))
  images = images.astype(np.float32)
  threat_model.require(np.isfinite(images).all() and images.min() >= threat_model.PIXEL_MIN
                       and images.max() <= threat_model.PIXEL_MAX,
                       'images must be pixels in [0, 255], found values in [%g, %g]'
                       % (images.min(), images.max()))
  threat_model.require(labels.shape == (len(images),) and labels.dtype.kind in 'iu',
                       'labels must be integers of shape [N] = [%d], got %s of shape %s'
                       % (len(images), labels.dtype, labels.shape))
  threat_model.require(labels.min() >= 0, 'labels must be >= 0, got %d' % labels.min())
  return images, labels.astype(np.int32)


def _check_settings(logits_fn, norm, epsilon, seed, batch_size, restore_fn):
  threat_model.require(callable(logits_fn), 'logits_fn=%r is not callable' % (logits_fn,))
  threat_model.check_norm(norm)
  threat_model.check_epsilon(epsilon)
  threat_model.check_seed(seed)
  threat_model.require(threat_model.is_int(batch_size) and batch_size >= 1,
                       'batch_size=%r must be an integer >= 1' % (batch_size,))
  threat_model.require(restore_fn is None or callable(restore_fn),
                       'restore_fn=%r must be callable or None' % (restore_fn,))


def _share(mask):
  return float(np.mean(mask))


def run_audit(logits_fn, images, labels, *, norm, epsilon, attacks=None, seed=0,
              batch_size=256, restore_fn=None):
  """Audits a model's robustness at one radius; see the module docstring.

  Builds its own tf.Graph and Session: calls `logits_fn(x)` there,
  initializes the variables, then runs `restore_fn(session)` if given. A
  model whose input gradient is None or NaN is audited, not a crash. After
  the radius, the examples still robust are attacked at the unbounded radius
  too (the unbounded_accuracy indicator).

  Args:
    logits_fn: `logits_fn(images)` building logits for float pixels in [0, 255];
      later calls must reuse the variables of the first.
    images: [N, H, W, C] pixels in [0, 255].
    labels: [N] int labels.
    norm: 'linf' or 'l2'.
    epsilon: the radius in pixel units, >= 0.
    attacks: None for the standard sequence ('pgd20', 'apgd-ce', 'apgd-t',
      'fab-t', 'square'), or a list of names and eval.audit.specs specs.
    seed: seeds every random start and draw.
    batch_size: examples per session.run.
    restore_fn: `restore_fn(session)`, e.g. restoring a checkpoint, or None.

  Returns:
    An AuditResult: `robust` (bool [N]), `adversarial` (float32 [N, H, W, C]:
    the checked witness where fooled, else the clean image), `per_attack`
    ('clean', then each attack: robust accuracy after it and all before it),
    `indicators`, `flags` (one string per indicator that fired), `verdict`.

  Raises:
    ValueError: bad input (shapes, pixel range, labels, radius, attacks).
  """
  images, labels = check_examples(images, labels)
  _check_settings(logits_fn, norm, epsilon, seed, batch_size, restore_fn)
  specs = specs_lib.resolve(attacks)
  radii = [epsilon, engine.UNBOUNDED_EPSILON[norm]]
  with engine.Auditor(logits_fn, images.shape[1:], norm=norm, epsilons=radii,
                      attacks=specs, seed=seed, batch_size=batch_size,
                      restore_fn=restore_fn) as auditor:
    clean = auditor.clean(images, labels)
    outcome = auditor.audit(clean, epsilon)
    pgd20 = [] if outcome.pgd20_robust is None else [_share(outcome.pgd20_robust)]
    found, _ = sweep.unbounded(auditor, clean, ~outcome.robust, pgd20, outcome)
  indicators = dict(indicators_lib.radius_indicators(outcome, clean), **found)
  flags = indicators_lib.flags(indicators)
  return AuditResult(
      robust=outcome.robust, adversarial=outcome.adversarial, per_attack=outcome.per_attack,
      indicators=indicators, flags=flags, epsilon=float(epsilon),
      clean_accuracy=_share(clean.correct), pgd20_accuracy=pgd20[0] if pgd20 else None,
      accuracy=_share(outcome.robust),
      verdict=indicators_lib.verdict(map(indicators_lib.flag_name, flags)),
      passes={r.name: {'gradient': r.gradient_passes, 'forward': r.forward_passes}
              for r in outcome.records})
