"""The CIFAR rho jump-start and learning-rate schedule (appendix A.1)."""
import numpy as np
import pytest
import tensorflow as tf

from resnet_ceb import ceb
from wrn_cifar import schedules

tf1 = tf.compat.v1
SPE = 100  # steps per epoch


def test_first_phase_falls_from_100_to_10_over_two_epochs():
  assert schedules.cifar_rho(0, SPE, 3.0, None) == 100.0
  assert schedules.cifar_rho(SPE, SPE, 3.0, None) == pytest.approx(55.0)
  assert schedules.cifar_rho(2 * SPE, SPE, 3.0, None) == pytest.approx(10.0)
  # Without a 20% crossing rho waits at 10, however long.
  assert schedules.cifar_rho(50 * SPE, SPE, 3.0, None) == pytest.approx(10.0)


def test_second_phase_falls_to_target_over_one_epoch_after_crossing():
  crossed = 250
  assert schedules.cifar_rho(crossed, SPE, -1.0, crossed) == pytest.approx(10.0)
  assert schedules.cifar_rho(crossed + SPE // 2, SPE, -1.0, crossed) == pytest.approx(4.5)
  assert schedules.cifar_rho(crossed + SPE, SPE, -1.0, crossed) == pytest.approx(-1.0)
  assert schedules.cifar_rho(crossed + 40 * SPE, SPE, 5.0, crossed) == pytest.approx(5.0)


def _appendix_rho(step, target, threshold):
  """Appendix A.1's rho in float64, written out independently of the code."""
  if threshold is None:
    return 100.0 - 90.0 * min(1.0, step / (2 * SPE))
  return 10.0 + (target - 10.0) * min(1.0, max(0.0, (step - threshold) / SPE))


def test_graph_form_is_the_plain_form_and_the_appendix_at_corners():
  cases = [(s, t) for s in (0, 1, 99, 100, 199, 200, 250, 300, 349, 350, 10_000)
           for t in (None, 200, 250)]
  with tf.Graph().as_default(), tf1.Session() as sess:
    step = tf1.placeholder(tf.int64, [])
    threshold = tf1.placeholder(tf.int64, [])
    rho = schedules.cifar_rho_tensor(step, SPE, 2.5, threshold)
    for s, t in cases:
      value = sess.run(rho, {step: s, threshold: -1 if t is None else t})
      # The plain number is the trainer's float32 value, exactly.
      assert schedules.cifar_rho(s, SPE, 2.5, t) == value
      assert value == pytest.approx(_appendix_rho(s, 2.5, t), abs=1e-5)


def test_ramps_are_linear_in_rho():
  # Halfway through each phase rho is the mean of its ends (in gamma it would not be).
  assert schedules.cifar_rho(SPE, SPE, 3.0, None) == (ceb.JUMP_START_RHO + 10.0) / 2
  assert schedules.cifar_rho(250 + SPE // 2, SPE, 4.0, 250) == 7.0


def test_learning_rate_drops_by_0_3_at_scaled_boundaries():
  assert schedules.lr_boundaries(1500, 10) == [5000, 10000, 12500]
  assert schedules.lr_boundaries(15, 10) == [50, 100, 125]
  with tf.Graph().as_default(), tf1.Session() as sess:
    step = tf1.placeholder(tf.int64, [])
    lr = schedules.learning_rate(step, 1e-3, 15, 10)
    values = [sess.run(lr, {step: s}) for s in (0, 50, 51, 100, 101, 125, 126, 150)]
  np.testing.assert_allclose(
      values, [1e-3, 1e-3, 3e-4, 3e-4, 9e-5, 9e-5, 2.7e-5, 2.7e-5], rtol=1e-5)


def _gamma_reading_rho(step, target, threshold):
  """The gamma-linear reading by hand, in float64: rho = -log(lerp of e^-rho)."""
  if threshold is None:
    start, end, fraction = 100.0, 10.0, min(1.0, step / (2 * SPE))
  else:
    start, end, fraction = 10.0, target, min(1.0, max(0.0, (step - threshold) / SPE))
  return -np.log((1 - fraction) * np.exp(-start) + fraction * np.exp(-end))


@pytest.mark.parametrize('step, threshold', [(0, None), (2 * SPE, None), (50 * SPE, None),
                                             (250, 250), (250 + SPE, 250), (9_999, 250)])
def test_both_ramp_readings_have_the_same_ends(step, threshold):
  assert (schedules.cifar_rho(step, SPE, -1.0, threshold, ramp='gamma')
          == schedules.cifar_rho(step, SPE, -1.0, threshold))


def test_gamma_ramp_is_linear_in_gamma_between_the_ends():
  # Halfway through the first phase gamma is (e^-100 + e^-10) / 2: rho = 10 + log 2.
  halfway = schedules.cifar_rho(SPE, SPE, 3.0, None, ramp='gamma')
  assert halfway == pytest.approx(10.0 + np.log(2.0), abs=1e-5)
  assert halfway != pytest.approx(schedules.cifar_rho(SPE, SPE, 3.0, None), abs=1.0)
  # Halfway through the second, to rho = -1: -log((e^-10 + e^1) / 2), about -0.307.
  second = schedules.cifar_rho(250 + SPE // 2, SPE, -1.0, 250, ramp='gamma')
  assert second == pytest.approx(-1.0 + np.log(2.0) - np.log1p(np.exp(-11.0)), abs=1e-5)
  for s, t in ((1, None), (37, None), (199, None), (251, 250), (320, 250)):
    value = schedules.cifar_rho(s, SPE, -1.0, t, ramp='gamma')
    assert value == pytest.approx(_gamma_reading_rho(s, -1.0, t), abs=1e-4)


def test_an_unknown_ramp_is_refused_naming_the_flag():
  with pytest.raises(ValueError, match='--jump_start_ramp'):
    schedules.cifar_rho(0, SPE, 3.0, None, ramp='beta')
