"""Restores a trained model for evaluation and runs it through an Estimator.

Every evaluation (clean, PGD, ImageNet-C, ImageNet-A, CIFAR-10-C) goes through
`load_model`, which rebuilds the eval-mode network a trainer recorded in
`model_dir/params.json` (CEB: z = f(x), the encoder's mean) in float32, whatever
precision trained it, unless asked for bfloat16; checks it against the
checkpoint; and `predict`, which wraps it in an eval model_fn and runs
`Estimator.predict` restoring exactly that checkpoint.
"""
import collections
import os

import numpy as np
import tensorflow as tf

from resnet_ceb import precision as precision_lib
from resnet_ceb import resnet_main
from resnet_ceb import train_utils
from wrn_cifar import wrn_main

tf1 = tf.compat.v1

# `precision`: what the evaluation network computes in (float32 unless asked).
LoadedModel = collections.namedtuple(
    'LoadedModel', ['model_dir', 'params', 'checkpoint_path', 'step', 'logits_fn',
                    'precision'], defaults=[precision_lib.FLOAT32])


def _logits_fn_builder(params, precision):
  """The trainer's eval-mode `logits_fn(images)` for a params dict, in `precision`."""
  trainer = params.get('trainer')
  if trainer == 'wrn_cifar':
    return wrn_main.eval_logits_fn(params, precision)
  if trainer == 'resnet_ceb':
    return resnet_main.eval_logits_fn(params, precision)
  raise ValueError('params.json names an unknown trainer %r' % (trainer,))


def resolve_checkpoint(model_dir, checkpoint=None):
  """The checkpoint to evaluate: `checkpoint` if given, else model_dir's latest."""
  if checkpoint:
    if not tf1.train.checkpoint_exists(checkpoint):
      raise FileNotFoundError('--checkpoint=%s does not exist' % checkpoint)
    return checkpoint
  latest = tf1.train.latest_checkpoint(model_dir) if os.path.isdir(model_dir) else None
  if not latest:
    raise FileNotFoundError('--model_dir=%s holds no checkpoint' % model_dir)
  return latest


def load_model(model_dir, checkpoint=None, precision=precision_lib.FLOAT32):
  """Rebuilds a trained model's eval-mode logits function.

  Args:
    model_dir: a directory a trainer wrote (holding params.json).
    checkpoint: a checkpoint path prefix; default the latest in model_dir.
    precision: what the network computes in: float32 (the default, whatever
      params.json's `precision`), or bfloat16 (the variables, checkpoint and
      logits stay float32).

  Returns:
    A LoadedModel whose `logits_fn(images)` builds, in the current graph,
    logits for float pixels in [0, 255]; every call reuses the same variables.

  Raises:
    FileNotFoundError: no params.json or no checkpoint.
    train_utils.ModelDirError: the checkpoint is of another architecture.
  """
  precision_lib.check(precision)
  params = train_utils.read_params(model_dir)
  checkpoint_path = resolve_checkpoint(model_dir, checkpoint)
  logits_fn = _logits_fn_builder(params, precision)
  size = params.get('image_size', 32)
  train_utils.check_checkpoint_shapes(
      model_dir, checkpoint_path,
      lambda: logits_fn(tf1.placeholder(tf.float32, [None, size, size, 3])))
  step = int(tf1.train.load_variable(checkpoint_path, 'global_step'))
  return LoadedModel(model_dir, params, checkpoint_path, step, logits_fn, precision)


def default_predict_fn(logits_fn, features):
  """Clean predictions: the logits and the label of every example."""
  return {'logits': logits_fn(features['image']), 'label': features['label']}


def predict(model, input_fn, predict_fn=default_predict_fn):
  """Runs `predict_fn` over a dataset with the model's checkpoint restored.

  Args:
    model: a LoadedModel.
    input_fn: `input_fn(params)` returning a tf.data.Dataset of feature dicts
      (at least 'image', float pixels, and usually 'label'), already batched.
    predict_fn: `predict_fn(logits_fn, features)` returning a dict of
      batch-major tensors (e.g. logits on adversarial images).

  Returns:
    A dict of numpy arrays, each the concatenation over all batches.
  """
  def model_fn(features, labels, mode, params):
    del labels, params
    predictions = predict_fn(model.logits_fn, features)
    tf1.train.get_or_create_global_step()
    return tf1.estimator.EstimatorSpec(mode, predictions=predictions)

  estimator = tf1.estimator.Estimator(model_fn=model_fn, model_dir=model.model_dir)
  chunks = collections.defaultdict(list)
  for batch in estimator.predict(
      lambda: input_fn({}), checkpoint_path=model.checkpoint_path,
      yield_single_examples=False):
    for key, value in batch.items():
      chunks[key].append(value)
  return {key: np.concatenate(values) for key, values in chunks.items()}
