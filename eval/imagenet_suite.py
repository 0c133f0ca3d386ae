"""An ImageNet model's whole evaluation set (section 3.2): clean, ImageNet-C, ImageNet-A, PGD.

`./run_imagenet.sh eval --model_dir DIR --data_dir TFRECORDS [--imagenet_c_dir DIR]
[--imagenet_a_dir DIR]` runs it. Each evaluation writes its own resumable result
file under model_dir/results; those the flags give no data for are skipped.

PGD as in section 3.2: targeted (a seeded random wrong class), eps = 16,
n = 20 steps, step size 2, in pixel units, L2 and L-inf.
"""
import sys

from eval import clean
from eval import imagenet_a
from eval import imagenet_c
from eval import pgd
from eval import results
from eval import runner
from resnet_ceb import train_utils

PAPER_PGD = {'epsilon': 16.0, 'num_steps': 20, 'step_size': 2.0}


def _clean(model, examples_fn, batch_size, data_flags):
  """Top-1 on the validation TFRecords, into a `clean` result file."""
  def input_fn(params):
    del params
    return examples_fn().batch(batch_size).map(
        lambda image, label: {'image': image, 'label': label})

  result = results.open_default(model, clean.EVALUATION, data_flags, 'imagenet')
  if not result.done('validation'):
    result.add('validation', clean.item_value(*clean.count_correct(model, input_fn)))
  item = result.items['validation']
  return result.finish({'accuracy': 1.0 - item['error'], 'error': item['error'],
                        'num_examples': item['num_examples']})['summary']


def _pgd(model, examples_fn, norm, batch_size, data_flags):
  config = pgd.PgdConfig(norm=norm, num_steps=PAPER_PGD['num_steps'],
                         step_size=PAPER_PGD['step_size'], targeted=True,
                         batch_size=batch_size)
  result = results.open_default(model, config.evaluation,
                                dict(config.header_flags(), **data_flags), 'imagenet')
  return pgd.evaluate_pgd(model, examples_fn, [PAPER_PGD['epsilon']], config, result)


def evaluate_model(model_dir, *, data_dir=None, imagenet_c_dir=None,
                   imagenet_a_dir=None, num_examples=None, batch_size=50):
  """Runs every evaluation the given data allows; returns name -> summary."""
  model = runner.load_model(model_dir)
  summaries = {}
  if data_dir:
    image_size = model.params.get('image_size', 224)
    examples_fn = pgd.load_examples('imagenet', data_dir, False, num_examples,
                                    batch_size, image_size)
    data_flags = {'data_dir': data_dir, 'num_examples': num_examples}
    summaries['clean'] = _clean(model, examples_fn, batch_size, data_flags)
    for norm in pgd.NORMS:
      summaries['pgd_%s_targeted' % norm] = _pgd(model, examples_fn, norm, batch_size,
                                                 data_flags)
  if imagenet_c_dir:
    summaries['imagenet_c'] = imagenet_c.evaluate(
        model, imagenet_c_dir, batch_size=batch_size,
        output=results.default_path(model_dir, 'imagenet_c', model.step))['summary']
  if imagenet_a_dir:
    summaries['imagenet_a'] = imagenet_a.evaluate(
        model, imagenet_a_dir, batch_size=batch_size,
        output=results.default_path(model_dir, 'imagenet_a', model.step))['summary']
  return summaries


def _parse(argv):
  parser = clean.ArgumentParser(prog='run_imagenet.sh eval', description=__doc__)
  parser.add_argument('--model_dir', required=True)
  parser.add_argument('--data_dir', help='validation-* TFRecords (clean and PGD)')
  parser.add_argument('--imagenet_c_dir', help='ImageNet-C root')
  parser.add_argument('--imagenet_a_dir', help='imagenet-a folder')
  parser.add_argument('--num_examples', type=int, help='first N validation images')
  parser.add_argument('--batch_size', type=int, default=50)
  return parser.parse_args(argv)


def main(argv=None):
  try:
    args = _parse(argv)
    if not (args.data_dir or args.imagenet_c_dir or args.imagenet_a_dir):
      raise ValueError('nothing to evaluate: give --data_dir, --imagenet_c_dir '
                       'and/or --imagenet_a_dir')
    train_utils.require_positive('batch_size', args.batch_size)
    summaries = evaluate_model(
        args.model_dir, data_dir=args.data_dir, imagenet_c_dir=args.imagenet_c_dir,
        imagenet_a_dir=args.imagenet_a_dir, num_examples=args.num_examples,
        batch_size=args.batch_size)
  except (ValueError, FileNotFoundError) as e:
    print('error: %s' % e, file=sys.stderr)
    return 2
  for name, summary in sorted(summaries.items()):
    shown = {k: v for k, v in summary.items() if not isinstance(v, (dict, list))}
    print('%s: %s' % (name, shown))
  return 0


if __name__ == '__main__':
  sys.exit(main())
