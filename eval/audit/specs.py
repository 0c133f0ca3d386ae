"""The audit's attacks: what each one is, its budget, and the ops it builds.

The standard sequence is exactly AutoAttack's standard version (Croce & Hein
2020) after the paper's own attack: PGD-20 (section 2.4), APGD-CE, APGD-T
(targeted DLR), FAB-T (targeted FAB) and the Square Attack. An attack is
named by a string ('pgd20', 'apgd-ce', 'apgd-dlr', 'apgd-t', 'fab-t',
'square') or given as a spec with its own budget, e.g.
`Apgd('ce', num_steps=20)`, `Fab(num_steps=10)` or `Square(num_queries=500)`,
so tests and quick looks can run small. APGD and Square take `schedule`:
'autoattack' (the default: the official code's checkpoints and window
schedule) or 'stretched' (spread over a small budget); APGD takes
`eot_samples` (gradients averaged over that many passes, for randomized
models).

Every spec builds, on a batch, the same dict of tensors: 'adversarial' (the
point to check), 'fooled' (the attack's own claim, which the audit re-checks),
'raised' (the attack's loss rose above its start), optionally 'broken' (a
None or non-finite input gradient was met) and 'zero_gradient' (an exactly
zero one), and the per-example
'gradient_passes' and 'forward_passes' it spent. `gradient_budget()` is what
it spends on an example it never fools (benchmarks.audit_cost's floor).
"""
import dataclasses
from typing import ClassVar

import tensorflow as tf

from eval import pgd
from eval import settings
from eval.attacks import apgd
from eval.attacks import fab
from eval.attacks import square
from eval.attacks import threat_model


def _predicted(logits):
  return tf.argmax(logits, -1, output_type=tf.int32)


@dataclasses.dataclass(frozen=True)
class Pgd:
  """The paper's attack: untargeted CE, n = 20 steps of 4/3 eps / n, no random start."""
  name: ClassVar[str] = 'pgd20'
  gradient_free: ClassVar[bool] = False

  def validate(self):
    """Nothing to check: the paper fixes every setting."""

  def gradient_budget(self):
    """Gradient passes spent on an example never fooled: every step."""
    return settings.PGD_NUM_STEPS

  def build(self, logits_fn, x, labels, norm, epsilon, seed):
    """The attack's ops on a batch (see the module docstring)."""
    del seed  # Deterministic: no random start.
    model = threat_model.ModelUnderAttack(logits_fn, x)
    adversarial = pgd.pgd_attack(logits_fn, x, labels, norm=norm, epsilon=epsilon,
                                 num_steps=settings.PGD_NUM_STEPS)
    logits = model.logits(adversarial)
    batch = tf.shape(x)[0]
    return {'adversarial': adversarial,
            'fooled': tf.not_equal(_predicted(logits), labels),
            'raised': (threat_model.stable_cross_entropy(logits, labels)
                       > threat_model.stable_cross_entropy(model.clean_logits, labels)),
            'gradient_passes': settings.PGD_NUM_STEPS * batch,
            'forward_passes': 2 * batch}


@dataclasses.dataclass(frozen=True)
class Apgd:
  """APGD (eval.attacks.apgd) with one loss and its budget; AutoAttack's defaults."""
  loss: str = 'ce'
  num_steps: int = 100
  num_restarts: int = 1
  num_targets: int = 9
  schedule: str = 'autoattack'
  eot_samples: int = 1
  gradient_free: ClassVar[bool] = False

  @property
  def name(self):
    """'apgd-ce', 'apgd-dlr' or 'apgd-t' (targeted DLR)."""
    return {'ce': 'apgd-ce', 'dlr': 'apgd-dlr', 'targeted-dlr': 'apgd-t'}[self.loss]

  def validate(self):
    """Raises ValueError naming the first bad field."""
    threat_model.require(self.loss in apgd.LOSSES, 'Apgd loss=%r is not one of %s'
                         % (self.loss, ', '.join(apgd.LOSSES)))
    threat_model.check_num_steps(self.num_steps, 'Apgd num_steps')
    threat_model.check_num_steps(self.num_restarts, 'Apgd num_restarts')
    threat_model.check_num_steps(self.num_targets, 'Apgd num_targets')
    threat_model.check_num_steps(self.eot_samples, 'Apgd eot_samples')
    threat_model.require(self.schedule in apgd.SCHEDULES, 'Apgd schedule=%r is not one of %s'
                         % (self.schedule, ', '.join(apgd.SCHEDULES)))

  def gradient_budget(self):
    """Gradient passes spent on an example never fooled: every step of every run.

    A run counts its starting point's gradient too; a targeted attack makes
    num_restarts runs per target; each gradient takes eot_samples passes.
    """
    runs = self.num_restarts * (self.num_targets if self.loss == 'targeted-dlr' else 1)
    return runs * (self.num_steps + 1) * self.eot_samples

  def build(self, logits_fn, x, labels, norm, epsilon, seed):
    """The attack's ops on a batch (see the module docstring)."""
    ops = apgd.apgd_attack(logits_fn, x, labels, norm=norm, epsilon=epsilon, loss=self.loss,
                           num_steps=self.num_steps, num_restarts=self.num_restarts,
                           num_targets=self.num_targets, seed=seed, schedule=self.schedule,
                           eot_samples=self.eot_samples)
    return dict(ops, forward_passes=tf.shape(x)[0])


@dataclasses.dataclass(frozen=True)
class Fab:
  """Targeted FAB (eval.attacks.fab) with its budget; AutoAttack's standard FAB-T."""
  num_targets: int = 9
  num_steps: int = 100
  num_restarts: int = 1
  name: ClassVar[str] = 'fab-t'
  gradient_free: ClassVar[bool] = False

  def validate(self):
    """Raises ValueError naming the first bad field."""
    threat_model.check_num_steps(self.num_targets, 'Fab num_targets')
    threat_model.check_num_steps(self.num_steps, 'Fab num_steps')
    threat_model.check_num_steps(self.num_restarts, 'Fab num_restarts')

  def gradient_budget(self):
    """Gradient passes spent on an example never fooled, at least: every iteration of every run.

    A run counts its start's pass too. Each iteration whose point crossed the
    boundary outside the ball costs one pass more (the backward step's).
    """
    return self.num_targets * self.num_restarts * (self.num_steps + 1)

  def build(self, logits_fn, x, labels, norm, epsilon, seed):
    """The attack's ops on a batch (see the module docstring)."""
    ops = fab.fab_attack(logits_fn, x, labels, norm=norm, epsilon=epsilon,
                         num_steps=self.num_steps, num_restarts=self.num_restarts,
                         num_targets=self.num_targets, seed=seed)
    return dict(ops, forward_passes=tf.shape(x)[0])


@dataclasses.dataclass(frozen=True)
class Square:
  """The Square Attack (eval.attacks.square) with its query budget."""
  num_queries: int = 5000
  p_init: float = square.P_INIT
  schedule: str = 'autoattack'
  name: ClassVar[str] = 'square'
  gradient_free: ClassVar[bool] = True

  def validate(self):
    """Raises ValueError naming the first bad field."""
    threat_model.check_num_steps(self.num_queries, 'Square num_queries')
    threat_model.require(threat_model.is_finite_real(self.p_init) and 0 < self.p_init <= 1,
                         'Square p_init=%r must be a number in (0, 1]' % (self.p_init,))
    threat_model.require(self.schedule in square.SCHEDULES, 'Square schedule=%r is not one of %s'
                         % (self.schedule, ', '.join(square.SCHEDULES)))

  def gradient_budget(self):
    """Gradient-free: none."""
    return 0

  def build(self, logits_fn, x, labels, norm, epsilon, seed):
    """The attack's ops on a batch (see the module docstring)."""
    ops = square.square_attack(logits_fn, x, labels, norm=norm, epsilon=epsilon,
                               num_queries=self.num_queries, p_init=self.p_init, seed=seed,
                               schedule=self.schedule)
    return dict(ops, gradient_passes=tf.constant(0))


STANDARD = (Pgd(), Apgd('ce'), Apgd('targeted-dlr'), Fab(), Square())
BY_NAME = {spec.name: spec for spec in (Pgd(), Apgd('ce'), Apgd('dlr'),
                                        Apgd('targeted-dlr'), Fab(), Square())}
SPECS = (Pgd, Apgd, Fab, Square)


def resolve(attacks):
  """The attack specs of `attacks`: None (the standard sequence), names or specs.

  Raises:
    ValueError: an unknown name, a bad budget, an attack listed twice, or none.
  """
  if attacks is None:
    return STANDARD
  threat_model.require(not isinstance(attacks, str) and hasattr(attacks, '__iter__'),
                       'attacks=%r must be a list of attack names or specs, e.g. %r'
                       % (attacks, list(BY_NAME)))
  specs = []
  for attack in attacks:
    if isinstance(attack, str):
      threat_model.require(attack in BY_NAME, 'unknown attack %r: choose from %s'
                           % (attack, ', '.join(BY_NAME)))
      attack = BY_NAME[attack]
    threat_model.require(isinstance(attack, SPECS), 'attack %r is neither a name nor one of %s'
                         % (attack, ', '.join(spec.__name__ for spec in SPECS)))
    attack.validate()
    specs.append(attack)
  names = [spec.name for spec in specs]
  threat_model.require(names, 'attacks=%r lists no attack' % (attacks,))
  threat_model.require(len(set(names)) == len(names), 'attacks=%r lists an attack twice' % (names,))
  return tuple(specs)
