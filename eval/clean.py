"""Clean test accuracy of a CIFAR-10 model.

    python -m eval.clean --model_dir DIR [--data_dir DIR | --fake_data]

writes a result file `clean` (eval.kit.results) whose summary holds the accuracy,
the error and the number of test images. The counting is eval.top1's, shared
with ImageNet's clean accuracy; `array_input_fn` also feeds CIFAR-10-C.
"""

from eval import top1
from eval.kit import cli
from eval.kit import results
from eval.kit import runner
from resnet_ceb import train_utils
from wrn_cifar import cifar_input

EVALUATION = 'clean'


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
  top1.require_classes(model, cifar_input.NUM_CLASSES, 'CIFAR-10')
  result = results.ResultFile(output, EVALUATION,
                              results.header_for(model, flags or {}, 'cifar10'))
  return top1.clean_accuracy(model, array_input_fn(images, labels, batch_size), result,
                             'test')


def run(args):
  """The CLI: validates the flags, loads model and test set, evaluates."""
  train_utils.require_positive('batch_size', args.batch_size)
  if args.fake_data and args.data_dir:
    raise ValueError('--fake_data and --data_dir exclude each other')
  images, labels = cifar_input.load_dataset(args.data_dir, 'test', args.fake_data)
  model = runner.load_model(args.model_dir, args.checkpoint, args.precision)
  flags = {'dataset': args.dataset, 'fake_data': args.fake_data,
           'data_dir': args.data_dir}
  data = evaluate(model, images, labels, output=cli.output_path(args, model, EVALUATION),
                  batch_size=args.batch_size, flags=flags)
  print('clean accuracy %.4f on %d images' % (data['summary']['accuracy'],
                                               data['summary']['num_examples']))
  return data


def build_parser():
  """The command-line flags of `python -m eval.clean`."""
  parser = cli.ArgumentParser(
      prog='python -m eval.clean', description='Clean test accuracy of a CIFAR-10 model.')
  cli.add_model_flags(parser)
  cli.add_precision_flag(parser)
  parser.add_argument('--dataset', default='cifar10', choices=['cifar10'])
  parser.add_argument('--data_dir', help='Local CIFAR-10 copy; unset: tfds cifar10.')
  parser.add_argument('--fake_data', action='store_true', help='Random test images.')
  parser.add_argument('--batch_size', type=int, default=500)
  cli.add_output_flag(parser)
  return parser


def main(argv=None):
  """`python -m eval.clean`: bad input exits 2 with `error: ...`; returns the result."""
  return cli.run_cli(build_parser(), run, argv)


if __name__ == '__main__':
  main()
