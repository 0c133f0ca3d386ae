"""An ImageNet model's whole evaluation set (section 3.2): clean, ImageNet-C, ImageNet-A, PGD.

`./run_imagenet.sh eval --model_dir DIR --data_dir TFRECORDS [--imagenet_c_dir DIR]
[--imagenet_a_dir DIR]` runs it. Each evaluation writes its own resumable result
file under model_dir/results; those the flags give no data for are skipped.

PGD as in section 3.2 (eval.settings.IMAGENET_PGD): targeted (a seeded random
wrong class), eps = 16, n = 20 steps, step size 2, L2 and L-inf. The paper does
not say in which units; `--pgd_space=pixels` (the default) reads them in pixels
[0, 255], `--pgd_space=normalized` in the model's normalized inputs (eval.pgd.space,
docs/IMAGENET.md), into separate result files (`pgd_l2_targeted_normalized`, ...).
"""
import sys

from eval import clean
from eval import imagenet_a
from eval import imagenet_c
from eval import pgd
from eval import settings
from eval import top1
from eval.attacks import examples
from eval.kit import cli
from eval.kit import results
from eval.kit import runner
from resnet_ceb import train_utils


def _clean(model, examples_fn, batch_size, data_flags):
  """Top-1 on the validation TFRecords, into a `clean` result file."""
  def input_fn(params):
    del params
    return examples_fn().batch(batch_size).map(
        lambda image, label: {'image': image, 'label': label})

  result = results.open_default(model, clean.EVALUATION, data_flags, 'imagenet')
  return top1.clean_accuracy(model, input_fn, result, 'validation')['summary']


def _pgd(model, examples_fn, norm, batch_size, data_flags, pgd_space):
  """The paper's targeted PGD at its one radius; returns (evaluation, summary).

  The evaluation is `pgd_<norm>_targeted`, with `_normalized` appended in
  that space.
  """
  paper = settings.IMAGENET_PGD
  config = pgd.PgdConfig(norm=norm, num_steps=paper['num_steps'],
                         step_size=paper['step_size'], targeted=paper['targeted'],
                         batch_size=batch_size, pgd_space=pgd_space)
  result = results.open_default(model, config.evaluation,
                                dict(config.header_flags(), **data_flags), 'imagenet')
  return config.evaluation, pgd.evaluate_pgd(model, examples_fn, [paper['epsilon']],
                                             config, result)


def evaluate_model(model_dir, *, data_dir=None, imagenet_c_dir=None,
                   imagenet_a_dir=None, num_examples=None, batch_size=50,
                   pgd_space='pixels'):
  """Runs every evaluation the given data allows; returns name -> summary.

  `pgd_space` ('pixels' or 'normalized') is where PGD's eps and step are measured.
  """
  model = runner.load_model(model_dir)
  pgd.channel_scale(pgd_space, model.params)  # Refuses before anything runs.
  summaries = {}
  if data_dir:
    image_size = model.params.get('image_size', 224)
    examples_fn = examples.load_examples('imagenet', data_dir, False, num_examples,
                                         batch_size, image_size)
    data_flags = {'data_dir': data_dir, 'num_examples': num_examples}
    summaries['clean'] = _clean(model, examples_fn, batch_size, data_flags)
    for norm in pgd.NORMS:
      evaluation, summary = _pgd(model, examples_fn, norm, batch_size, data_flags,
                                 pgd_space)
      summaries[evaluation] = summary
  for module, data in ((imagenet_c, imagenet_c_dir), (imagenet_a, imagenet_a_dir)):
    if data:
      summaries[module.EVALUATION] = module.evaluate(
          model, data, batch_size=batch_size,
          output=results.default_path(model_dir, module.EVALUATION,
                                      model.step))['summary']
  return summaries


def build_parser():
  """The flags of `run_imagenet.sh eval`."""
  parser = cli.ArgumentParser(prog='run_imagenet.sh eval', description=__doc__)
  parser.add_argument('--model_dir', required=True)
  parser.add_argument('--data_dir', help='validation-* TFRecords (clean and PGD)')
  parser.add_argument('--imagenet_c_dir', help='ImageNet-C root')
  parser.add_argument('--imagenet_a_dir', help='imagenet-a folder')
  parser.add_argument('--num_examples', type=int, help='first N validation images')
  parser.add_argument('--batch_size', type=int, default=50)
  parser.add_argument('--pgd_space', choices=pgd.PGD_SPACES, default='pixels',
                      help="where PGD's eps = 16 and step 2 are measured: pixels [0, 255] "
                           "or the model's normalized inputs")
  return parser


def run(args):
  """Checks the flags, runs what the data allows and prints the summaries; returns 0."""
  if not (args.data_dir or args.imagenet_c_dir or args.imagenet_a_dir):
    raise ValueError('nothing to evaluate: give --data_dir, --imagenet_c_dir '
                     'and/or --imagenet_a_dir')
  train_utils.require_positive('batch_size', args.batch_size)
  summaries = evaluate_model(
      args.model_dir, data_dir=args.data_dir, imagenet_c_dir=args.imagenet_c_dir,
      imagenet_a_dir=args.imagenet_a_dir, num_examples=args.num_examples,
      batch_size=args.batch_size, pgd_space=args.pgd_space)
  for name, summary in sorted(summaries.items()):
    shown = {k: v for k, v in summary.items() if not isinstance(v, (dict, list))}
    print('%s: %s' % (name, shown))
  return 0


def main(argv=None):
  """`run_imagenet.sh eval`: bad input exits 2 with `error: ...` on stderr."""
  return cli.run_cli(build_parser(), run, argv)


if __name__ == '__main__':
  sys.exit(main())
