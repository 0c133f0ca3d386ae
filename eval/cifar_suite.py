"""A CIFAR-10 model's whole evaluation set: clean, PGD L-inf and L2 over epsilon, CIFAR-10-C.

`./run_cifar.sh eval --model_dir DIR --data_dir DIR [--cifar10c_dir DIR]` runs it.
Each evaluation writes its own resumable result file under model_dir/results
(see eval/results.py), so an interrupted suite re-run skips what is done.

PGD follows section 2.4 (eval.settings): n = 20 steps, alpha = 4/3 eps / n, in
pixel units. The paper calls its CIFAR attack "targeted" for Figure 1 and
"untargeted" for Figure 2, so both run by default, each into its own result
file (`pgd_linf`, `pgd_l2`, `pgd_linf_targeted`, `pgd_l2_targeted`; the
targets are seeded random wrong classes); `--pgd_modes=untargeted` skips the
targeted sweeps. The paper names no epsilon grid; the defaults cover its
Figure 2 ranges. `--pgd_space=normalized` measures epsilon in the model's
normalized inputs (eval.pgd.space) and then needs both grids given in those
units.
"""
import sys

from eval import cifar10_c
from eval import clean
from eval import pgd
from eval import settings
from eval.attacks import examples
from eval.kit import cli
from eval.kit import results
from eval.kit import runner
from resnet_ceb import train_utils
from wrn_cifar import cifar_input

PGD_MODES = ('untargeted', 'targeted')


def _pgd_sweeps(model, attacked, grids, header_flags, *, pgd_modes, pgd_space, num_steps,
                batch_size):
  """Every mode's sweep of every norm over its grid; returns {evaluation: summary}."""
  summaries = {}
  for mode in pgd_modes:
    for norm, epsilons in grids.items():
      config = pgd.PgdConfig(norm=norm, num_steps=num_steps, batch_size=batch_size,
                             targeted=mode == 'targeted', pgd_space=pgd_space)
      result = results.open_default(model, config.evaluation,
                                    dict(config.header_flags(), **header_flags), 'cifar10')
      summaries[config.evaluation] = pgd.evaluate_pgd(model, attacked, epsilons, config,
                                                      result)
  return summaries


def evaluate_model(model_dir, *, data_dir=None, fake_data=False,
                   linf_epsilons=(settings.FIGURE1_EPSILONS['linf'],),
                   l2_epsilons=(settings.FIGURE1_EPSILONS['l2'],), num_examples=None,
                   num_steps=settings.PGD_NUM_STEPS, batch_size=250, cifar10c_dir=None,
                   pgd_modes=('untargeted',), pgd_space='pixels'):
  """Runs the suite on a model's latest checkpoint.

  Args:
    model_dir: a wrn_cifar model_dir.
    data_dir: CIFAR-10 copy (None: tfds), or `fake_data`.
    fake_data: random test images, for plumbing.
    linf_epsilons: L-inf radii in `pgd_space` units (default: Figure 1's).
    l2_epsilons: L2 radii in `pgd_space` units (default: Figure 1's).
    num_examples: attack only the first N test images (all by default).
    num_steps: PGD steps.
    batch_size: evaluation batch.
    cifar10c_dir: folder of CIFAR-10-C .npy files, or None to skip.
    pgd_modes: among PGD_MODES; untargeted only by default (the studies'
      need), `run_cifar.sh eval` runs both.
    pgd_space: 'pixels' or 'normalized' (eval.pgd.space).

  Returns:
    A dict: evaluation name -> its summary.
  """
  model = runner.load_model(model_dir)
  pgd.channel_scale(pgd_space, model.params)  # Refuses before anything runs.
  images, labels = cifar_input.load_dataset(data_dir, 'test', fake_data)
  data_flags = {'dataset': 'cifar10', 'fake_data': fake_data, 'data_dir': data_dir}
  summaries = {'clean': clean.evaluate(
      model, images, labels, batch_size=batch_size, flags=data_flags,
      output=results.default_path(model_dir, clean.EVALUATION, model.step))['summary']}
  summaries.update(_pgd_sweeps(
      model, examples.array_examples(images[:num_examples], labels[:num_examples]),
      {'linf': linf_epsilons, 'l2': l2_epsilons},
      dict(num_examples=num_examples, **data_flags), pgd_modes=pgd_modes,
      pgd_space=pgd_space, num_steps=num_steps, batch_size=batch_size))
  if cifar10c_dir:
    summaries[cifar10_c.EVALUATION] = cifar10_c.evaluate(
        model, cifar10c_dir, batch_size=batch_size,
        output=results.default_path(model_dir, cifar10_c.EVALUATION,
                                    model.step))['summary']
  return summaries


def _grid(epsilons):
  return ','.join('%g' % e for e in epsilons)


def parse_pgd_modes(text):
  """--pgd_modes, e.g. 'untargeted,targeted', as a list of PGD_MODES, none twice."""
  modes = [mode.strip() for mode in text.split(',') if mode.strip()]
  if not modes or len(set(modes)) != len(modes) or set(modes) - set(PGD_MODES):
    raise ValueError('--pgd_modes=%s: expected distinct values among %s'
                     % (text, ', '.join(PGD_MODES)))
  return modes


def epsilon_grids(args):
  """{'linf': radii, 'l2': radii} from the flags; unset grids are the pixel defaults.

  Raises:
    ValueError: a bad grid, or --pgd_space=normalized with a grid left to its
      pixel default.
  """
  grids = {}
  for norm, default in (('linf', settings.CIFAR_LINF_EPSILONS),
                        ('l2', settings.CIFAR_L2_EPSILONS)):
    flag = '--%s_epsilons' % norm
    text = getattr(args, flag[2:])
    if text is None and args.pgd_space != 'pixels':
      raise ValueError('--pgd_space=%s needs %s in its units: the default grid %s is '
                       'in pixels' % (args.pgd_space, flag, _grid(default)))
    grids[norm] = cli.parse_epsilons(_grid(default) if text is None else text, flag)
  return grids


def build_parser():
  """The flags of `run_cifar.sh eval`."""
  parser = cli.ArgumentParser(prog='run_cifar.sh eval', description=__doc__)
  parser.add_argument('--model_dir', required=True)
  parser.add_argument('--data_dir', help='CIFAR-10 copy; unset: tfds cifar10')
  parser.add_argument('--fake_data', action='store_true')
  parser.add_argument('--linf_epsilons',
                      help='default (pixels): %s' % _grid(settings.CIFAR_LINF_EPSILONS))
  parser.add_argument('--l2_epsilons',
                      help='default (pixels): %s' % _grid(settings.CIFAR_L2_EPSILONS))
  parser.add_argument('--pgd_modes', default=','.join(PGD_MODES),
                      help='PGD sweeps to run: untargeted and/or targeted')
  parser.add_argument('--pgd_space', choices=pgd.PGD_SPACES, default='pixels',
                      help="where epsilon is measured: pixels or the model's normalized "
                           'inputs (then give both grids)')
  parser.add_argument('--num_examples', type=int, default=None)
  parser.add_argument('--num_steps', type=int, default=settings.PGD_NUM_STEPS)
  parser.add_argument('--batch_size', type=int, default=250)
  parser.add_argument('--cifar10c_dir', help='CIFAR-10-C folder; unset: skipped')
  return parser


def _print_summaries(summaries):
  print('clean accuracy: %.4f' % summaries['clean']['accuracy'])
  for name, curve in summaries.items():
    if name.startswith('pgd_'):
      print('%s: %s' % (name, ', '.join('eps=%g: %.4f' % (e, a) for e, a in
                                        zip(curve['epsilons'], curve['accuracy']))))
  if cifar10_c.EVALUATION in summaries:
    for line in cifar10_c.format_summary(summaries[cifar10_c.EVALUATION]):
      print('cifar10_c %s' % line)


def run(args):
  """Checks the flags, runs the suite and prints its summaries; returns 0."""
  if args.num_examples is not None:
    train_utils.require_positive('num_examples', args.num_examples)
  grids = epsilon_grids(args)
  summaries = evaluate_model(
      args.model_dir, data_dir=args.data_dir, fake_data=args.fake_data,
      linf_epsilons=grids['linf'], l2_epsilons=grids['l2'],
      num_examples=args.num_examples, num_steps=args.num_steps,
      batch_size=args.batch_size, cifar10c_dir=args.cifar10c_dir,
      pgd_modes=parse_pgd_modes(args.pgd_modes), pgd_space=args.pgd_space)
  _print_summaries(summaries)
  return 0


def main(argv=None):
  """`run_cifar.sh eval`: bad input exits 2 with `error: ...` on stderr."""
  return cli.run_cli(build_parser(), run, argv)


if __name__ == '__main__':
  sys.exit(main())
