"""train_utils' stop at a non-finite loss wins over the Estimator's own NaN check."""
import numpy as np
import pytest
import tensorflow as tf

from resnet_ceb import train_utils

tf1 = tf.compat.v1


def _train(model_dir, shown_loss):
  """One Estimator step whose raw loss is NaN; the spec gets `shown_loss(raw)`."""
  def model_fn(features, labels, mode):
    del features, labels
    weight = tf1.get_variable('w', [], initializer=tf1.zeros_initializer())
    raw = weight * np.float32(np.nan) + 1.0
    step = tf1.train.get_or_create_global_step()
    hooks = [train_utils.NonFiniteLossHook({'loss': raw, 'hyz': weight + 2.0})]
    return tf.estimator.EstimatorSpec(mode, loss=shown_loss(raw),
                                      train_op=tf1.assign_add(step, 1),
                                      training_hooks=hooks)

  def input_fn():
    return tf.data.Dataset.from_tensors(({'x': [0.0]}, [0])).repeat()

  tf1.estimator.Estimator(model_fn, model_dir=model_dir).train(input_fn, max_steps=3)


def test_nan_loss_is_named_with_its_step_and_terms(tmp_path):
  with pytest.raises(train_utils.NonFiniteLossError,
                     match=r'non-finite loss at step 1 \(hyz=2.0, loss=nan\)'):
    _train(str(tmp_path / 'shown_inf'), train_utils.nan_as_inf)


def test_without_nan_as_inf_the_estimator_stops_first_with_a_bare_message(tmp_path):
  # Why the trainers give the Estimator nan_as_inf(loss): its NanTensorHook runs first.
  with pytest.raises(tf1.train.NanLossDuringTrainingError):
    _train(str(tmp_path / 'raw'), lambda raw: raw)


def test_nan_as_inf_changes_nan_only():
  values = tf.constant([np.nan, np.inf, -np.inf, 1.5])
  np.testing.assert_array_equal(train_utils.nan_as_inf(values).numpy(),
                                [np.inf, np.inf, -np.inf, 1.5])
