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
from wrn_cifar import quickstart
from wrn_cifar import wrn_main


def parse_args(argv):
  parser = argparse.ArgumentParser(prog='run_cifar.sh mini', description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument('--data_dir', help='CIFAR-10 copy (unset: tfds cifar10)')
  parser.add_argument('--fake_data', action='store_true', help='plumbing only')
  parser.add_argument('--model_root', default='runs/mini')
  parser.add_argument('--rhos', default='1,3,5', help='CEB rho values')
  parser.add_argument('--train_epochs', type=int, default=15)
  parser.add_argument('--depth', type=int, default=16)
  parser.add_argument('--width', type=int, default=2)
  parser.add_argument('--linf_epsilons', default='2,4,8')
  parser.add_argument('--l2_epsilons', default='32,128,512')
  parser.add_argument('--pgd_examples', type=int, default=500,
                      help='attack the first N test images')
  parser.add_argument('--num_train_images', type=int)
  parser.add_argument('--num_eval_images', type=int)
  parser.add_argument('--num_steps', type=int, default=20)
  return parser.parse_args(argv)


def _runs(args):
  """(name, trainer flags) of every model of the study."""
  rhos = [float(r) for r in args.rhos.split(',')]
  return ([('ceb_rho%g' % rho, ['--loss=ceb', '--rho=%g' % rho]) for rho in rhos]
          + [('xent', ['--loss=xent'])])


def _train(args, name, flags):
  argv = ['--model_dir=%s' % os.path.join(args.model_root, name), '--depth=%d' % args.depth,
          '--width=%d' % args.width, '--train_epochs=%d' % args.train_epochs,
          '--augment_name=none', '--epochs_per_eval=%d' % args.train_epochs] + flags
  argv += ['--data_dir=%s' % args.data_dir] if args.data_dir else []
  argv += ['--fake_data'] if args.fake_data else []
  for flag in ('num_train_images', 'num_eval_images'):
    if getattr(args, flag):
      argv.append('--%s=%d' % (flag, getattr(args, flag)))
  wrn_main.run(wrn_main.make_flags(argv))


def run(args):
  """Trains, evaluates and reports; returns the report's output folder."""
  linf = cifar_suite.parse_epsilons(args.linf_epsilons, 'linf_epsilons')
  l2 = cifar_suite.parse_epsilons(args.l2_epsilons, 'l2_epsilons')
  runs = _runs(args)
  for name, flags in runs:
    print('== %s: train' % name, flush=True)
    _train(args, name, flags)
    print('== %s: evaluate' % name, flush=True)
    cifar_suite.evaluate_model(
        os.path.join(args.model_root, name), data_dir=args.data_dir,
        fake_data=args.fake_data, linf_epsilons=linf, l2_epsilons=l2,
        num_examples=args.pgd_examples, num_steps=args.num_steps)
  out = os.path.join(args.model_root, 'report')
  if report.main(['--results_dir', args.model_root, '--out', out]) != 0:
    raise ValueError('the report failed (see above)')
  return out


def main(argv=None):
  args = parse_args(argv)
  quickstart.quiet_logs()
  try:
    out = run(args)
  except (ValueError, FileNotFoundError) as e:
    print('error: %s' % e, file=sys.stderr)
    return 2
  print('report written to %s' % out)
  return 0


if __name__ == '__main__':
  sys.exit(main())
