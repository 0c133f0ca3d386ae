"""Clean test accuracy of a CIFAR-10 model, and the top-1 pieces every evaluation shares.

    python -m eval.clean --model_dir DIR [--data_dir DIR | --fake_data]

writes a result file `clean` (eval.results) whose summary holds the accuracy,
the error and the number of test images. The other evaluations (ImageNet-C,
ImageNet-A, CIFAR-10-C) count top-1 hits with `count_correct` and report bad
input through `run_cli`.
"""
import argparse
import os
import sys

import numpy as np
import tensorflow as tf

from eval import results
from eval import runner
from resnet_ceb import train_utils
from wrn_cifar import cifar_input

EVALUATION = 'clean'


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


def array_input_fn(images, labels, batch_size):
  """A `runner.predict` input_fn over in-memory uint8 CIFAR images, in order.

  Uses the trainer's own evaluation pipeline (wrn_cifar.cifar_input), which
  keeps the arrays out of the graph, and renames its outputs to the feature
  dict the runner expects.
  """
  pipeline = cifar_input.build_input_fn(images, labels, False, 'none')

  def input_fn(params):
    del params
    dataset = pipeline({'batch_size': batch_size})
    return dataset.map(lambda image, label: {'image': image, 'label': label})
  return input_fn


def require_classes(model, num_classes, dataset):
  """Raises ValueError unless the model classifies into `num_classes` classes.

  The CIFAR trainer records `num_classes`, the ImageNet one `num_label_classes`.
  """
  found = model.params.get('num_classes', model.params.get('num_label_classes'))
  if found != num_classes:
    raise ValueError('--model_dir=%s is a %s-class model; %s needs %d classes'
                     % (model.model_dir, found, dataset, num_classes))


def output_path(args, model, evaluation):
  """--output, or the evaluation's default file under the model_dir."""
  return args.output or results.default_path(model.model_dir, evaluation, model.step)


class ArgumentParser(argparse.ArgumentParser):
  """An argparse parser whose flag errors reach `run_cli` as ValueError."""

  def error(self, message):
    raise ValueError('%s (see --help)' % message)


def run_cli(parser, run, argv=None):
  """Parses argv and calls `run(args)`; bad input exits 2 with `error: <message>`."""
  try:
    return run(parser.parse_args(argv))
  except (ValueError, FileNotFoundError) as e:
    print('error: %s' % e, file=sys.stderr)
    sys.exit(2)


def add_model_flags(parser):
  """The flags every evaluation CLI shares: which model and checkpoint."""
  parser.add_argument('--model_dir', required=True, help='A trainer\'s model_dir.')
  parser.add_argument('--checkpoint', help='Checkpoint prefix; default: the latest.')


def evaluate(model, images, labels, *, output, batch_size=500, flags=None):
  """Evaluates a CIFAR-10 model's clean accuracy into a result file.

  Args:
    model: a LoadedModel of a 10-class model.
    images: uint8 [N, 32, 32, 3] test images.
    labels: int [N] labels.
    output: the result file; a finished file with the same header is reused.
    batch_size: prediction batch.
    flags: what identifies the test set, recorded in the header.

  Returns:
    The result file's contents.
  """
  require_classes(model, cifar_input.NUM_CLASSES, 'CIFAR-10')
  input_fn = array_input_fn(images, labels, batch_size)
  result = results.ResultFile(output, EVALUATION,
                              results.header_for(model, flags or {}, 'cifar10'))
  if not result.done('test'):
    result.add('test', item_value(*count_correct(model, input_fn)))
  item = result.items['test']
  return result.finish({'accuracy': item['num_correct'] / item['num_examples'],
                        'error': item['error'], 'num_examples': item['num_examples']})


def run(args):
  """The CLI: validates the flags, loads model and test set, evaluates."""
  train_utils.require_positive('batch_size', args.batch_size)
  if args.fake_data and args.data_dir:
    raise ValueError('--fake_data and --data_dir exclude each other')
  images, labels = cifar_input.load_dataset(args.data_dir, 'test', args.fake_data)
  model = runner.load_model(args.model_dir, args.checkpoint)
  flags = {'dataset': args.dataset, 'fake_data': args.fake_data,
           'data_dir': os.path.abspath(args.data_dir) if args.data_dir else None}
  data = evaluate(model, images, labels, output=output_path(args, model, EVALUATION),
                  batch_size=args.batch_size, flags=flags)
  print('clean accuracy %.4f on %d images' % (data['summary']['accuracy'],
                                               data['summary']['num_examples']))
  return data


def build_parser():
  """The command-line flags of `python -m eval.clean`."""
  parser = ArgumentParser(
      prog='python -m eval.clean', description='Clean test accuracy of a CIFAR-10 model.')
  add_model_flags(parser)
  parser.add_argument('--dataset', default='cifar10', choices=['cifar10'])
  parser.add_argument('--data_dir', help='Local CIFAR-10 copy; unset: tfds cifar10.')
  parser.add_argument('--fake_data', action='store_true', help='Random test images.')
  parser.add_argument('--batch_size', type=int, default=500)
  parser.add_argument('--output', help='Result file; default under model_dir/results.')
  return parser


def main(argv=None):
  return run_cli(build_parser(), run, argv)


if __name__ == '__main__':
  main()
