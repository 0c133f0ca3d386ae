"""Top-1 accuracy: the one way every evaluation counts a model's correct predictions.

Clean accuracy on CIFAR-10's test set (eval.clean) and on ImageNet's validation
set (eval.imagenet_suite), ImageNet-C, ImageNet-A and CIFAR-10-C all count hits
with `count_correct`, store each evaluated set of images as `item_value` and
check the model's class count with `require_classes`. A one-set evaluation
(clean, ImageNet-A) fills its result file with `record`.
"""
import functools

import numpy as np
import tensorflow as tf

from eval.kit import runner
from resnet_ceb import train_utils


def top1_predict_fn(class_indices=None):
  """A `runner.predict` predict_fn returning the top-1 class and the label.

  Args:
    class_indices: if given, the argmax is taken over these logits only and
      the prediction is a position in `class_indices` (ImageNet-A's 200).
  """
  def predict_fn(logits_fn, features):
    logits = logits_fn(features['image'])
    if class_indices is not None:
      logits = tf.gather(logits, np.asarray(class_indices, np.int32), axis=1)
    return {'prediction': tf.argmax(logits, axis=-1, output_type=tf.int32),
            'label': features['label']}
  return predict_fn


def count_correct(model, input_fn, class_indices=None):
  """Runs a LoadedModel over input_fn's dataset; returns (num_correct, num_examples)."""
  out = runner.predict(model, input_fn, top1_predict_fn(class_indices))
  return int(np.sum(out['prediction'] == out['label'])), len(out['label'])


def item_value(num_correct, num_examples):
  """The result-file entry of one evaluated set of images."""
  return {'num_correct': num_correct, 'num_examples': num_examples,
          'error': 1.0 - num_correct / num_examples}


def summary(item):
  """A one-set evaluation's summary: the item's counts and error plus the accuracy."""
  return dict(item, accuracy=item['num_correct'] / item['num_examples'])


def require_classes(model, num_classes, dataset):
  """Raises ValueError unless the model classifies into `num_classes` classes."""
  found = train_utils.num_classes(model.params)
  if found != num_classes:
    raise ValueError('--model_dir=%s is a %s-class model; %s needs %d classes'
                     % (model.model_dir, found, dataset, num_classes))


def record(result, key, count):
  """Fills a one-item result file and finishes it with the item's `summary`.

  Args:
    result: an eval.kit.results.ResultFile.
    key: the item's key, e.g. 'test'.
    count: returns (num_correct, num_examples); called only when the file
      does not hold the item yet, so a finished evaluation is not run again.

  Returns:
    The result file's contents.
  """
  if not result.done(key):
    result.add(key, item_value(*count()))
  return result.finish(summary(result.items[key]))


def clean_accuracy(model, input_fn, result, key):
  """Clean top-1 accuracy of a LoadedModel on input_fn's images, into `result`.

  The one clean-accuracy evaluation of both data sets: CIFAR-10's test set
  (key 'test') and ImageNet's validation set (key 'validation').

  Returns:
    The result file's contents; the summary has accuracy, error, num_correct
    and num_examples.
  """
  return record(result, key, functools.partial(count_correct, model, input_fn))
