"""A real-data miniature of the CIFAR-10 study (Figures 1 and 2) on CPU.

Trains small BatchNorm-free WRNs with CEB at several rho and the deterministic
baseline, evaluates each clean and under untargeted PGD L-inf and L2 over a few
epsilons (n = 20, alpha = 4/3 eps / n), then builds the report's Figure 1 and 2
analogues and a Markdown summary. Every stage resumes: re-running skips trained
models and finished evaluations.

    ./run_cifar.sh mini --data_dir ../shared/data/cifar10
"""
import argparse
import os
import sys

from eval import cifar_suite
from eval import report
from eval import settings
from eval.kit import cli
from studies import common


def _grid(epsilons):
  return ','.join('%g' % e for e in epsilons)


def build_parser():
  """The flags of `run_cifar.sh mini`."""
  parser = cli.ArgumentParser(prog='run_cifar.sh mini', description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
  common.add_training_flags(parser, 'runs/mini')
  parser.add_argument('--rhos', default='1,3,5', help='CEB rho values')
  parser.add_argument('--linf_epsilons', default=_grid(settings.STUDY_LINF_EPSILONS))
  parser.add_argument('--l2_epsilons', default=_grid(settings.STUDY_L2_EPSILONS))
  parser.add_argument('--pgd_examples', type=int, default=500,
                      help='attack the first N test images')
  parser.add_argument('--num_steps', type=int, default=settings.PGD_NUM_STEPS)
  return parser


def _runs(args):
  """(name, trainer flags) of every model of the study."""
  rhos = common.parse_rhos('rhos', args.rhos)
  return ([('ceb_rho%g' % rho, ['--loss=ceb', '--rho=%g' % rho]) for rho in rhos]
          + [('xent', ['--loss=xent'])])


def run(args):
  """Trains, evaluates and reports; returns 0 once the report is written."""
  linf = cli.parse_epsilons(args.linf_epsilons, '--linf_epsilons')
  l2 = cli.parse_epsilons(args.l2_epsilons, '--l2_epsilons')
  runs = _runs(args)
  common.quiet_logs()
  for name, flags in runs:
    print('== %s: train' % name, flush=True)
    model_dir, _ = common.train(args, name, flags)
    print('== %s: evaluate' % name, flush=True)
    cifar_suite.evaluate_model(
        model_dir, data_dir=args.data_dir, fake_data=args.fake_data,
        linf_epsilons=linf, l2_epsilons=l2, num_examples=args.pgd_examples,
        num_steps=args.num_steps)
  out = os.path.join(args.model_root, 'report')
  if report.main(['--results_dir', args.model_root, '--out', out]) != 0:
    raise ValueError('the report failed (see above)')
  print('report written to %s' % out)
  return 0


def main(argv=None):
  """Entry point: bad flags or data print `error: ...` and exit 2."""
  return cli.run_cli(build_parser(), run, argv)


if __name__ == '__main__':
  sys.exit(main())
