"""The CIFAR-10 schedules of appendix A.1: the rho jump-start and the learning rate.

Jump-start: rho starts at 100 and falls linearly to 10 over the first 2 epochs;
once the running training accuracy exceeds 20% (a crossing counted only after
those 2 epochs, as the appendix's "and then" reads), rho falls linearly from 10
to the target over one epoch. The crossing step is training state: the trainer
keeps it in a checkpointed variable and passes it here.

Both phases ramp with Listing 3's `ceb.lerp`: linear in rho by default
(`ramp='rho'`), or linear in gamma = e^-rho (`ramp='gamma'`), as the ImageNet
jump-start is; the trainer's --jump_start_ramp. The ends of each phase are the
same in both readings. `cifar_rho_tensor` is the schedule the training graph
uses; `cifar_rho` is the same tensor's value as a plain number.
"""
import numpy as np
import tensorflow as tf

from resnet_ceb import ceb

tf1 = tf.compat.v1

PLATEAU_RHO = 10.0
FIRST_ANNEAL_EPOCHS = 2
SECOND_ANNEAL_EPOCHS = 1
# The --jump_start_ramp values, the default first: what each phase is linear in.
RAMPS = ('rho', 'gamma')
ACCURACY_THRESHOLD = 0.2

# Appendix A.1: lr x0.3 after epochs 500, 1000 and 1250 of 1500.
PAPER_EPOCHS = 1500
PAPER_LR_DROP_EPOCHS = (500, 1000, 1250)
LR_DROP_FACTOR = 0.3


def _ramp(steps_in, num_steps, start_rho, end_rho):
  """Rho falling linearly from start_rho to end_rho over the first num_steps steps.

  `steps_in` counts the steps since the ramp began. Written as start_rho plus
  the lerp of the change, over a constant step count, so the float32 values
  are bit for bit those of start_rho + (end_rho - start_rho) * fraction.
  """
  return start_rho + ceb.lerp(steps_in, 0.0, num_steps, 0.0, end_rho - start_rho)


def _gamma_ramp(steps_in, num_steps, start_rho, end_rho):
  """Rho whose gamma = e^-rho goes linearly from e^-start_rho to e^-end_rho.

  Listing 3's lerp on gamma, with both ends scaled by e^c, c the mean of the
  two rhos: e^-100 itself is below float32's normal range and would flush to
  zero (rho = inf), while e^(c - rho) keeps both ends normal for any
  |start_rho - end_rho| up to about 170. rho = c - log(lerp).
  """
  offset = (start_rho + end_rho) / 2.0
  scaled_gamma = ceb.lerp(steps_in, 0.0, num_steps, ceb.rho_to_gamma(start_rho - offset),
                          ceb.rho_to_gamma(end_rho - offset))
  return offset - tf.math.log(scaled_gamma)


def check_ramp(ramp):
  """Raises ValueError naming --jump_start_ramp unless it is one of RAMPS."""
  if ramp not in RAMPS:
    raise ValueError('--jump_start_ramp=%r must be one of %s' % (ramp, ', '.join(RAMPS)))


def cifar_rho_tensor(step, steps_per_epoch, target_rho, threshold_step, ramp='rho'):
  """The jump-start rho at `step` as a float32 tensor.

  Args:
    step: the global step, an integer tensor.
    steps_per_epoch: training steps per epoch (> 0).
    target_rho: the run's rho.
    threshold_step: integer tensor, the step at which running train accuracy
      crossed 20%, or -1 if it has not yet.
    ramp: 'rho' (each phase linear in rho) or 'gamma' (linear in e^-rho).

  Returns:
    rho, a scalar float32 tensor.
  """
  check_ramp(ramp)
  ramp_fn = _ramp if ramp == 'rho' else _gamma_ramp
  step = tf.cast(step, tf.float32)
  threshold_step = tf.cast(threshold_step, tf.float32)
  first = ramp_fn(step, FIRST_ANNEAL_EPOCHS * float(steps_per_epoch),
                  ceb.JUMP_START_RHO, PLATEAU_RHO)
  second = ramp_fn(step - threshold_step, SECOND_ANNEAL_EPOCHS * float(steps_per_epoch),
                   PLATEAU_RHO, float(target_rho))
  return tf.where(threshold_step >= 0, second, first)


def cifar_rho(step, steps_per_epoch, target_rho, threshold_step, ramp='rho'):
  """The jump-start rho at `step`, as a plain number: the trainer's float32 value.

  Args:
    step: global step.
    steps_per_epoch: training steps per epoch (> 0).
    target_rho: the run's rho.
    threshold_step: the step at which running train accuracy crossed 20%, or
      None if it has not yet.
    ramp: 'rho' (the default) or 'gamma': what each phase is linear in.

  Returns:
    rho as a float.
  """
  threshold = -1 if threshold_step is None else threshold_step
  # A graph of its own, so the value is the same from eager or graph code. The
  # steps are fed, not constants: constant folding would round differently.
  with tf.Graph().as_default():
    step_in = tf1.placeholder(tf.float32, [])
    threshold_in = tf1.placeholder(tf.float32, [])
    rho = cifar_rho_tensor(step_in, steps_per_epoch, target_rho, threshold_in, ramp)
    with tf1.Session() as session:
      return float(session.run(rho, {step_in: step, threshold_in: threshold}))


def lr_boundaries(train_epochs, steps_per_epoch):
  """Steps of the three lr drops, scaled from the paper's 1500 epochs to train_epochs."""
  return [int(round(e * train_epochs / PAPER_EPOCHS * steps_per_epoch))
          for e in PAPER_LR_DROP_EPOCHS]


def learning_rate(step, base_lr, train_epochs, steps_per_epoch):
  """Adam's learning rate at `step` (a tensor): base_lr x0.3 at each boundary."""
  values = [base_lr * LR_DROP_FACTOR ** i for i in range(len(PAPER_LR_DROP_EPOCHS) + 1)]
  boundaries = lr_boundaries(train_epochs, steps_per_epoch)
  return tf1.train.piecewise_constant(
      tf.cast(step, tf.int64), [np.int64(b) for b in boundaries], values)
