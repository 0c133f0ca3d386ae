"""PGD (sections 2.4, 3.2): the graph attack and the accuracy-vs-epsilon sweep.

* `eval.pgd.attack`: the attack itself, on any `logits_fn`, in one while_loop.
* `eval.pgd.sweep`: attacking a test set at each epsilon through the
  Estimator, into a resumable result file.
* `eval.pgd.space`: where epsilon is measured (pixels or the model's
  normalized inputs) and each model's per-channel scale.
* `python -m eval.pgd` (`eval/pgd/__main__.py`): the command line.

The names callers use are importable from `eval.pgd` itself.
"""
from eval.attacks.threat_model import NORMS
from eval.kit.cli import epsilon_key
from eval.pgd.attack import pgd_attack
from eval.pgd.attack import pgd_worst_case
from eval.pgd.space import PGD_SPACES
from eval.pgd.space import channel_scale
from eval.pgd.sweep import PgdConfig
from eval.pgd.sweep import evaluate_epsilon
from eval.pgd.sweep import evaluate_pgd
from eval.pgd.sweep import random_target_labels
from eval.pgd.sweep import summarize
from eval.settings import pgd_step_size as default_step_size

__all__ = [
    'NORMS', 'PGD_SPACES', 'PgdConfig', 'channel_scale', 'default_step_size', 'epsilon_key',
    'evaluate_epsilon', 'evaluate_pgd', 'pgd_attack', 'pgd_worst_case',
    'random_target_labels', 'summarize',
]
