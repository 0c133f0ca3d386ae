"""The masking checks' ops: a single step, random noise, and APGD at twice the budget.

Carlini et al. 2019 (section 5's sanity tests) ask that an iterative attack
beat a single-step one and that a gradient attack beat random noise; either
failing is a classic sign that the gradient misleads. AutoAttack (its
`checks.py`) and Pintor et al. 2022 add that a randomized model needs
expectation over transformation, and that an attack whose result still
moves with a larger budget had not converged. eval.audit.engine runs these
ops; eval.audit.indicators turns what they find into indicators.

* `fgsm`: one step of size eps along sign(g) (L-inf) or g / |g|_2 (L2) of the
  cross-entropy input gradient at the clean point (Goodfellow et al. 2015).
* `uniform_noise`: `draws` points uniform in the eps-ball (eval.attacks
  threat_model.random_point); an example falls if any of them fools it.
* `doubled`: an APGD spec with twice its steps and restarts.
"""
import dataclasses

import tensorflow as tf

from eval.attacks import threat_model

NOISE_DRAWS = 20
CONVERGENCE_SAMPLE = 100
RANDOMNESS_RUNS = 5
# The APGD losses AutoAttack's standard version runs, re-run by not_converged.
CONVERGENCE_LOSSES = ('ce', 'targeted-dlr')


def _wrong(model, x, labels):
  return tf.not_equal(model.predict(x), labels)


def fgsm(model, x, labels, norm, epsilon):
  """The single-step point for a batch: {'adversarial', 'fooled'}."""
  _, _, gradient, _ = model.loss_and_gradient(
      lambda logits: threat_model.stable_cross_entropy(logits, labels), x)
  if norm == 'linf':
    step = tf.sign(gradient)
  else:
    step = gradient / tf.maximum(threat_model.example_norm(gradient), threat_model.TINY_NORM)
  adversarial = threat_model.project(x + epsilon * step, x, norm, epsilon)
  return {'adversarial': adversarial, 'fooled': _wrong(model, adversarial, labels)}


def uniform_noise(model, x, labels, norm, epsilon, seed, draws=NOISE_DRAWS):
  """`draws` uniform points of the ball, in one while_loop: the first that fools, per example."""
  def body(draw, found, fooled):
    point = threat_model.random_point(
        x, norm, epsilon, tf.random.experimental.stateless_fold_in(seed, draw))
    wrong = tf.logical_and(_wrong(model, point, labels), tf.logical_not(fooled))
    keep = tf.reshape(wrong, [-1] + [1] * (x.shape.rank - 1))
    return draw + 1, tf.where(keep, point, found), tf.logical_or(fooled, wrong)

  _, adversarial, fooled = tf.while_loop(
      lambda draw, *_: draw < draws, body,
      (tf.constant(0), x, tf.zeros(tf.shape(x)[:1], tf.bool)), parallel_iterations=1)
  return {'adversarial': adversarial, 'fooled': fooled}


def doubled(spec):
  """An APGD spec with twice the steps and twice the restarts."""
  return dataclasses.replace(spec, num_steps=2 * spec.num_steps,
                             num_restarts=2 * spec.num_restarts)
