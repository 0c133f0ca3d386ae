"""A CIFAR-10 model's whole evaluation set: clean, PGD L-inf and L2 over epsilon, CIFAR-10-C.

`./run_cifar.sh eval --model_dir DIR --data_dir DIR [--cifar10c_dir DIR]` runs it.
Each evaluation writes its own resumable result file under model_dir/results
(see eval/results.py), so an interrupted suite re-run skips what is done.

PGD follows section 2.4 (eval.settings): untargeted, n = 20 steps, alpha =
4/3 eps / n, in pixel units. The paper names no epsilon grid; the defaults
cover its Figure 2 ranges.
"""
import sys

from eval import cifar10_c
from eval import clean
from eval import cli
from eval import examples
from eval import pgd
from eval import results
from eval import runner
from eval import settings
from resnet_ceb import train_utils
from wrn_cifar import cifar_input


def evaluate_model(model_dir, *, data_dir=None, fake_data=False,
                   linf_epsilons=(settings.FIGURE1_EPSILONS['linf'],),
                   l2_epsilons=(settings.FIGURE1_EPSILONS['l2'],), num_examples=None,
                   num_steps=settings.PGD_NUM_STEPS, batch_size=250, cifar10c_dir=None):
  """Runs the suite on a model's latest checkpoint.

  Args:
    model_dir: a wrn_cifar model_dir.
    data_dir: CIFAR-10 copy (None: tfds), or `fake_data`.
    fake_data: random test images, for plumbing.
    linf_epsilons: L-inf radii in pixels (default: Figure 1's).
    l2_epsilons: L2 radii in pixels (default: Figure 1's).
    num_examples: attack only the first N test images (all by default).
    num_steps: PGD steps.
    batch_size: evaluation batch.
    cifar10c_dir: folder of CIFAR-10-C .npy files, or None to skip.

  Returns:
    A dict: evaluation name -> its summary.
  """
  model = runner.load_model(model_dir)
  images, labels = cifar_input.load_dataset(data_dir, 'test', fake_data)
  data_flags = {'dataset': 'cifar10', 'fake_data': fake_data, 'data_dir': data_dir}
  summaries = {'clean': clean.evaluate(
      model, images, labels, batch_size=batch_size, flags=data_flags,
      output=results.default_path(model_dir, clean.EVALUATION, model.step))['summary']}
  attacked = examples.array_examples(images[:num_examples], labels[:num_examples])
  for norm, epsilons in (('linf', linf_epsilons), ('l2', l2_epsilons)):
    config = pgd.PgdConfig(norm=norm, num_steps=num_steps, batch_size=batch_size)
    result = results.open_default(
        model, config.evaluation,
        dict(config.header_flags(), num_examples=num_examples, **data_flags), 'cifar10')
    summaries[config.evaluation] = pgd.evaluate_pgd(model, attacked, epsilons, config,
                                                    result)
  if cifar10c_dir:
    summaries[cifar10_c.EVALUATION] = cifar10_c.evaluate(
        model, cifar10c_dir, batch_size=batch_size,
        output=results.default_path(model_dir, cifar10_c.EVALUATION,
                                    model.step))['summary']
  return summaries


def _grid(epsilons):
  return ','.join('%g' % e for e in epsilons)


def build_parser():
  """The flags of `run_cifar.sh eval`."""
  parser = cli.ArgumentParser(prog='run_cifar.sh eval', description=__doc__)
  parser.add_argument('--model_dir', required=True)
  parser.add_argument('--data_dir', help='CIFAR-10 copy; unset: tfds cifar10')
  parser.add_argument('--fake_data', action='store_true')
  parser.add_argument('--linf_epsilons', default=_grid(settings.CIFAR_LINF_EPSILONS))
  parser.add_argument('--l2_epsilons', default=_grid(settings.CIFAR_L2_EPSILONS))
  parser.add_argument('--num_examples', type=int, default=None)
  parser.add_argument('--num_steps', type=int, default=settings.PGD_NUM_STEPS)
  parser.add_argument('--batch_size', type=int, default=250)
  parser.add_argument('--cifar10c_dir', help='CIFAR-10-C folder; unset: skipped')
  return parser


def _print_summaries(summaries):
  print('clean accuracy: %.4f' % summaries['clean']['accuracy'])
  for name in ('pgd_linf', 'pgd_l2'):
    curve = summaries[name]
    print('%s: %s' % (name, ', '.join('eps=%g: %.4f' % (e, a) for e, a in
                                      zip(curve['epsilons'], curve['accuracy']))))
  if cifar10_c.EVALUATION in summaries:
    print('cifar10_c average error: %s'
          % summaries[cifar10_c.EVALUATION].get('average_error'))


def run(args):
  """Checks the flags, runs the suite and prints its summaries; returns 0."""
  if args.num_examples is not None:
    train_utils.require_positive('num_examples', args.num_examples)
  summaries = evaluate_model(
      args.model_dir, data_dir=args.data_dir, fake_data=args.fake_data,
      linf_epsilons=cli.parse_epsilons(args.linf_epsilons, '--linf_epsilons'),
      l2_epsilons=cli.parse_epsilons(args.l2_epsilons, '--l2_epsilons'),
      num_examples=args.num_examples, num_steps=args.num_steps,
      batch_size=args.batch_size, cifar10c_dir=args.cifar10c_dir)
  _print_summaries(summaries)
  return 0


def main(argv=None):
  """`run_cifar.sh eval`: bad input exits 2 with `error: ...` on stderr."""
  return cli.run_cli(build_parser(), run, argv)


if __name__ == '__main__':
  sys.exit(main())
