"""Does CEB make a model more robust? The real-data CIFAR-10 study (issue 13).

Trains BatchNorm-free WRNs with the paper's pipeline (AutoAugment with Cutout,
Adam 1e-3 with x0.3 drops at 1/3, 2/3 and 5/6 of training, the rho jump-start)
as XEnt, as CEB at several rho and as VIB at one, keeping a checkpoint every tenth of
training. Each kept checkpoint is measured clean (train and test) and under
the two headline attacks (eval.checkpoint_curve). The final models then get
the paper's PGD sweeps, untargeted and targeted (eval.cifar_suite), the
robustness audit (eval.audit) and a CIFAR-10-C-like set made from the test
images (eval.make_cifar10_c). XEnt and the most robust CEB (by the last
checkpoint's PGD accuracy) are trained with a second seed, so that their
differences can be set against run-to-run noise. Every stage resumes.

    ./run_cifar.sh study --data_dir ../shared/data/cifar10

Layout under --model_root: seed<S>/<run>/ (xent, ceb_rho<R>, vib_rho<R>), cifar10_c/ (the
corruption set), report/ (the eval.report of the seed-0 runs) and study/ (the
study's figures and summary.md, see studies.study_report).
"""
import argparse
import os
import sys

from eval import checkpoint_curve
from eval import cifar10_c
from eval import cifar_suite
from eval import corruption_metrics
from eval import make_cifar10_c
from eval import report
from eval.audit import command as audit_command
from eval.kit import cli
from studies import common
from studies import study_report
from studies import wall_clock
from wrn_cifar import cifar_input

# The scale measured to fit about 100 minutes on 2 CPU cores (docs/STUDY.md).
PRESETS = {
    'full': dict(depth=10, width=1, train_epochs=70, rhos='1,2,3,5', vib_rhos='3', seeds=2,
                 checkpoints=10, curve_examples=500, pgd_examples=500, audit_examples=500,
                 apgd_targets=3, fab_targets=3, square_queries=1000, linf_epsilons='2,4,8',
                 l2_epsilons='32,128,512', audit_linf='2,4,8', audit_l2='32,128'),
    'tiny': dict(depth=10, width=1, train_epochs=2, rhos='2', vib_rhos='', seeds=2,
                 checkpoints=2, num_train_images=256, num_eval_images=40, curve_examples=16,
                 pgd_examples=16, audit_examples=8, apgd_targets=1, fab_targets=1,
                 square_queries=20, linf_epsilons='4', l2_epsilons='128', audit_linf='4',
                 audit_l2='128', corruptions='gaussian_noise,brightness'),
}
CURVE_ATTACKS = (('linf', 4.0), ('l2', 128.0))
BATCH_SIZE = 128


def build_parser():
  """The flags of `run_cifar.sh study`; unset ones come from --preset."""
  parser = cli.ArgumentParser(prog='run_cifar.sh study', description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
  common.add_training_flags(parser, 'runs/study')
  parser.set_defaults(train_epochs=None, depth=None, width=None)
  add = parser.add_argument
  add('--preset', choices=sorted(PRESETS), default='full',
      help='full: the measured study; tiny: plumbing in seconds (with --fake_data)')
  add('--rhos', help='CEB rho values (comma list)')
  add('--vib_rhos', help='VIB rho values, beta = 1 / (1 + e^rho) (comma list; empty: none)')
  add('--seeds', type=int, help='seeds of XEnt and of the most robust CEB')
  add('--checkpoints', type=int, help='checkpoints kept and measured over training')
  add('--curve_examples', type=int, help='test images attacked at every checkpoint')
  add('--pgd_examples', type=int, help='test images attacked by the final sweeps')
  add('--linf_epsilons', help='final PGD L-inf radii (pixels)')
  add('--l2_epsilons', help='final PGD L2 radii (pixels)')
  common.add_audit_flags(parser)
  add('--cifar10c_dir', help='an existing CIFAR-10-C(-like) folder; default: made from '
      'the test images under model_root/cifar10_c')
  add('--corruptions', help='corruptions made (default all 19)')
  add('--docs_dir', help='also copy the figures and summary.md here (e.g. docs/study)')
  return parser


def apply_preset(args):
  """Fills every flag left unset from the preset; checks the counts."""
  common.fill_preset(args, PRESETS[args.preset], (
      'seeds', 'checkpoints', 'curve_examples', 'pgd_examples', 'audit_examples',
      'apgd_targets', 'fab_targets', 'square_queries', 'train_epochs'))
  args.rho_values = common.parse_rhos('rhos', args.rhos)
  args.vib_values = common.parse_rhos('vib_rhos', args.vib_rhos) if args.vib_rhos else []
  # Parsed once, before any training: a bad grid or name fails here, not hours later.
  args.epsilon_values = {flag: cli.parse_epsilons(getattr(args, flag), '--' + flag)
                         for flag in ('linf_epsilons', 'l2_epsilons', 'audit_linf', 'audit_l2')}
  args.corruption_names = None
  if args.corruptions:
    args.corruption_names = corruption_metrics.parse_names(
        'corruptions', args.corruptions, cifar10_c.CORRUPTIONS)
  return args


def _data(args):
  """(train, test) arrays as the trainer sees them (its --num_*_images prefixes)."""
  train = cifar_input.load_dataset(args.data_dir, 'train', args.fake_data)
  test = cifar_input.load_dataset(args.data_dir, 'test', args.fake_data)
  cut = lambda arrays, n: (arrays[0][:n], arrays[1][:n])  # noqa: E731
  return cut(train, args.num_train_images), cut(test, args.num_eval_images)


class Study:
  """The study's stages on one set of flags; every stage skips finished work."""

  def __init__(self, args):
    self.args = args
    self.train_set, self.test_set = _data(args)
    steps = args.train_epochs * (len(self.train_set[0]) // BATCH_SIZE)
    self.save_every = max(1, -(-steps // args.checkpoints))
    self.data_flags = {'data_dir': args.data_dir and os.path.abspath(args.data_dir),
                       'fake_data': args.fake_data}
    self.clock = wall_clock.WallClock(args.model_root)

  def log(self, message):
    """Prints a progress line with this invocation's minutes; records them."""
    self.clock.record()
    print('[study %5.1f min] %s' % (self.clock.minutes(), message), flush=True)

  def model_dir(self, name, seed):
    """Where run `name` of seed `seed` lives."""
    return os.path.join(self.args.model_root, 'seed%d' % seed, name)

  def train(self, name, flags, seed):
    """Trains one model with checkpoints kept over training, then its curve."""
    self.log('%s seed %d: train' % (name, seed))
    args = argparse.Namespace(**vars(self.args))
    args.model_root = os.path.dirname(self.model_dir(name, seed))
    model_dir, _ = common.train(args, name, flags + [
        '--train_batch_size=%d' % BATCH_SIZE, '--save_checkpoints_steps=%d' % self.save_every,
        '--keep_checkpoint_max=%d' % (self.args.checkpoints + 2)], augment_name='autoaugment')
    self.log('%s seed %d: checkpoint curve' % (name, seed))
    return checkpoint_curve.evaluate_checkpoints(
        model_dir, train=self.train_set, test=self.test_set, attacks=CURVE_ATTACKS,
        num_examples=self.args.curve_examples, data_flags=self.data_flags, log=self.log)

  def evaluate(self, model_dir, cifar10c_dir):
    """The final model's PGD sweeps (both modes) and its corruption errors."""
    self.log('%s: PGD sweeps and corruptions' % model_dir)
    cifar_suite.evaluate_model(
        model_dir, data_dir=self.args.data_dir, fake_data=self.args.fake_data,
        linf_epsilons=self.args.epsilon_values['linf_epsilons'],
        l2_epsilons=self.args.epsilon_values['l2_epsilons'],
        num_examples=self.args.pgd_examples, cifar10c_dir=cifar10c_dir,
        pgd_modes=cifar_suite.PGD_MODES)

  def audit(self, model_dir, baseline_dir):
    """The audit at both norms, with the XEnt baseline's examples transferred."""
    for norm, epsilons in (('linf', self.args.audit_linf), ('l2', self.args.audit_l2)):
      self.log('%s: audit %s' % (model_dir, norm))
      argv = ['--model_dir', model_dir, '--dataset', 'cifar10', '--norm', norm,
              '--epsilons', epsilons] + common.audit_budget_argv(self.args)
      argv += ['--data_dir', self.args.data_dir] if self.args.data_dir else ['--fake_data']
      if model_dir != baseline_dir:
        argv += ['--transfer_from', baseline_dir]
      audit_command.run(audit_command.build_parser().parse_args(argv))

  def corruption_set(self):
    """The CIFAR-10-C-like folder: --cifar10c_dir, or made once from the test images."""
    if self.args.cifar10c_dir:
      return self.args.cifar10c_dir
    out = os.path.join(self.args.model_root, 'cifar10_c')
    self.log('corruption set: %s' % out)
    make_cifar10_c.make(*self.test_set, out, corruptions=self.args.corruption_names)
    return out


def most_robust(curves):
  """The CEB run whose last checkpoint is most robust (mean of the curve's attacks)."""
  def score(name):
    last = curves[name][-1]
    return sum(last[checkpoint_curve.attack_key(*a)] for a in CURVE_ATTACKS)
  return max((name for name in curves if name.startswith('ceb_')), key=score)


def run(args):
  """Every stage of the study in order; returns 0 once the summary is written."""
  args = apply_preset(args)
  common.quiet_logs()
  study = Study(args)
  runs = dict([('xent', ['--loss=xent'])] + [
      ('ceb_rho%g' % rho, ['--loss=ceb', '--rho=%g' % rho]) for rho in args.rho_values] + [
      ('vib_rho%g' % rho, ['--loss=vib', '--rho=%g' % rho]) for rho in args.vib_values])
  curves = {name: study.train(name, flags, 0) for name, flags in runs.items()}
  best = most_robust(curves)
  study.log('most robust CEB at seed 0: %s' % best)
  for seed in range(1, args.seeds):
    for name in ('xent', best):
      study.train(name, runs[name], seed)
  finals = [study.model_dir(name, 0) for name in runs] + [
      study.model_dir(name, seed) for seed in range(1, args.seeds) for name in ('xent', best)]
  cifar10c_dir = study.corruption_set()
  for model_dir in finals:
    study.evaluate(model_dir, cifar10c_dir)
  for model_dir in finals:
    study.audit(model_dir, study.model_dir('xent', 0))
  out = os.path.join(args.model_root, 'report')
  if report.main(['--results_dir', os.path.join(args.model_root, 'seed0'), '--out', out]) != 0:
    raise ValueError('the report failed (see above)')
  written = study_report.write(args.model_root, best, minutes=study.clock.total_minutes(),
                               docs_dir=args.docs_dir)
  study.log('study written: %s' % ', '.join(written))
  return 0


def main(argv=None):
  """Entry point: bad flags or data print `error: ...` and exit 2."""
  return cli.run_cli(build_parser(), run, argv)


if __name__ == '__main__':
  sys.exit(main())
