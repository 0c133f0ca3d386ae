"""The CIFAR-10 schedules of appendix A.1: the rho jump-start and the learning rate.

Jump-start: rho starts at 100 and falls linearly to 10 over the first 2 epochs;
once the running training accuracy exceeds 20% (a crossing counted only after
those 2 epochs, as the appendix's "and then" reads), rho falls linearly from 10
to the target over one epoch. The crossing step is training state: the trainer
keeps it in a checkpointed variable and passes it here.

`cifar_rho` is the plain-number form; `cifar_rho_tensor` is the same formula on
tensors, which the training graph uses. Both go through `_jump_start_rho` so
there is one definition.
"""
import numpy as np
import tensorflow as tf

START_RHO = 100.0
PLATEAU_RHO = 10.0
FIRST_ANNEAL_EPOCHS = 2
SECOND_ANNEAL_EPOCHS = 1
ACCURACY_THRESHOLD = 0.2

# Appendix A.1: lr x0.3 after epochs 500, 1000 and 1250 of 1500.
PAPER_EPOCHS = 1500
PAPER_LR_DROP_EPOCHS = (500, 1000, 1250)
LR_DROP_FACTOR = 0.3


def _ramp(ops, step, start, length):
  """Fraction of the way through [start, start + length], clamped to [0, 1]."""
  return ops.minimum(1.0, ops.maximum(0.0, (step - start) / length))


def _jump_start_rho(ops, step, steps_per_epoch, target_rho, threshold_step):
  """The jump-start rho; threshold_step < 0 means 20% has not been crossed."""
  first_length = FIRST_ANNEAL_EPOCHS * steps_per_epoch
  rho = START_RHO + (PLATEAU_RHO - START_RHO) * _ramp(ops, step, 0.0, first_length)
  second = _ramp(ops, step, threshold_step, SECOND_ANNEAL_EPOCHS * steps_per_epoch)
  annealed = PLATEAU_RHO + (target_rho - PLATEAU_RHO) * second
  return ops.where(threshold_step >= 0, annealed, rho)


def cifar_rho(step, steps_per_epoch, target_rho, threshold_step):
  """The jump-start rho at `step`, as a plain number.

  Args:
    step: global step.
    steps_per_epoch: training steps per epoch (> 0).
    target_rho: the run's rho.
    threshold_step: the step at which running train accuracy crossed 20%, or
      None if it has not yet.

  Returns:
    rho as a float.
  """
  threshold = -1.0 if threshold_step is None else float(threshold_step)
  return float(_jump_start_rho(np, float(step), float(steps_per_epoch),
                               float(target_rho), threshold))


class _TensorOps:
  minimum = staticmethod(tf.minimum)
  maximum = staticmethod(tf.maximum)
  where = staticmethod(tf.where)


def cifar_rho_tensor(step, steps_per_epoch, target_rho, threshold_step):
  """`cifar_rho` on tensors: `step` and `threshold_step` (-1 for None) are int tensors."""
  return _jump_start_rho(_TensorOps, tf.cast(step, tf.float32),
                         float(steps_per_epoch), float(target_rho),
                         tf.cast(threshold_step, tf.float32))


def lr_boundaries(train_epochs, steps_per_epoch):
  """Steps of the three lr drops, scaled from the paper's 1500 epochs to train_epochs."""
  return [int(round(e * train_epochs / PAPER_EPOCHS * steps_per_epoch))
          for e in PAPER_LR_DROP_EPOCHS]


def learning_rate(step, base_lr, train_epochs, steps_per_epoch):
  """Adam's learning rate at `step` (a tensor): base_lr x0.3 at each boundary."""
  values = [base_lr * LR_DROP_FACTOR ** i for i in range(len(PAPER_LR_DROP_EPOCHS) + 1)]
  boundaries = lr_boundaries(train_epochs, steps_per_epoch)
  return tf.compat.v1.train.piecewise_constant(
      tf.cast(step, tf.int64), [np.int64(b) for b in boundaries], values)
