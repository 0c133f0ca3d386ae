"""The main job in small: CEB (rho=3) against the deterministic baseline on CIFAR-10.

Trains two small BatchNorm-free WRNs for a few epochs, evaluates both on the test
set (clean and under PGD at Figure 1's radii), and prints a table. Re-running
resumes: finished models are not retrained. `./run_cifar.sh quickstart --data_dir
DIR` runs it.
"""
import sys

from eval import cifar_suite
from eval import settings
from eval.kit import cli
from studies import common

# PGD at Figure 1's radius per norm, n = 20 steps, alpha = 4/3 eps / n (section 2.4).
NORMS = ('linf', 'l2')


def build_parser():
  """The flags of `run_cifar.sh quickstart`."""
  parser = cli.ArgumentParser(prog='run_cifar.sh quickstart', description=__doc__)
  common.add_training_flags(parser, 'runs/quickstart')
  parser.add_argument('--rho', type=float, default=3.0)
  parser.add_argument('--pgd_examples', type=int, default=None,
                      help='attack only the first N test images (default: all)')
  return parser


def _evaluate(args, model_dir):
  """PGD accuracy per norm of a trained model, from resumable result files."""
  epsilons = settings.FIGURE1_EPSILONS
  summaries = cifar_suite.evaluate_model(
      model_dir, data_dir=args.data_dir, fake_data=args.fake_data,
      linf_epsilons=[epsilons['linf']], l2_epsilons=[epsilons['l2']],
      num_examples=args.pgd_examples, num_steps=settings.PGD_NUM_STEPS)
  return [summaries['pgd_%s' % norm]['accuracy'][0] for norm in NORMS]


def _print_table(args, rows):
  header = ['model', 'clean'] + ['PGD %s eps=%g' % (norm, settings.FIGURE1_EPSILONS[norm])
                                 for norm in NORMS]
  print('\nWRN-%d-%d, no BatchNorm, %d epochs (accuracy on the test set)'
        % (args.depth, args.width, args.train_epochs))
  print(' | '.join('%-16s' % h for h in header))
  for name, clean, attacks in rows:
    print(' | '.join('%-16s' % c for c in [name, '%.4f' % clean]
                     + ['%.4f' % a for a in attacks]))


def run(args):
  """Trains and evaluates both models, then prints the table; returns 0."""
  common.quiet_logs()
  rows = []
  for name, loss in (('ceb_rho%g' % args.rho, 'ceb'), ('xent', 'xent')):
    print('== training %s: WRN-%d-%d, %d epochs' % (name, args.depth, args.width,
                                                    args.train_epochs), flush=True)
    model_dir, metrics = common.train(
        args, name, ['--loss=%s' % loss, '--rho=%s' % args.rho, '--iterations_per_loop=50'])
    rows.append((name, metrics['accuracy'], _evaluate(args, model_dir)))
  _print_table(args, rows)
  return 0


def main(argv=None):
  """Entry point: bad flags or data print `error: ...` and exit 2."""
  return cli.run_cli(build_parser(), run, argv)


if __name__ == '__main__':
  sys.exit(main())
