r"""The second study: CEB against XEnt where the paper's mechanism can act (issue 23).

The first study (studies.study) ran WRN-10-1 in a capacity-bound regime: train
and test accuracy met near 60%, so nothing was left to compress and every CEB
model paid in clean accuracy. This one trains a wider BatchNorm-free WRN on a
small prefix of the training images for many epochs, crop and flip only
(the trainer's --augment_name=none: black-padded 4-pixel crop and flip, no
AutoAugment, no Cutout; the paper's "-aa" condition), so that XEnt
interpolates, and compares CEB with XEnt at matched clean accuracy:

  stage 1  XEnt and CEB at each --rhos value, seed 0;
           rho* = the lowest rho whose clean test accuracy >= XEnt's - 1 point;
  stage 2  XEnt and CEB rho* at seeds 1 .. --seeds - 1 (paired seeds).

Seeds are real: --deterministic --seed=S sets the initialization, the data
order, the augmentation and CEB's z samples. Every model keeps --checkpoints
checkpoints over training, each measured clean on the training images it saw
and on every test image (eval.checkpoint_curve); every final model gets the
audit (eval.audit's command: the standard attack sequence, PGD-20 first) on
the first --audit_examples test images at --audit_linf and --audit_l2. The
gates, the paired Delta and the verdict are computed afterwards by
studies.verdict, the rules docs/study2/PREREGISTRATION.md fixed before the run.
Every stage resumes: a re-run skips finished training, checkpoints and radii.

    ./run_cifar.sh study --preset overparam --data_dir ../shared/data/cifar10 \\
        --docs_dir docs/study2

Layout under --model_root: seed<S>/<run>/ (xent, ceb_rho<R>) and study2/
(summary.json, summary.md, the figures and the command; studies.study2_report).
"""
import argparse
import functools
import os
import subprocess
import sys

import numpy as np
import tensorflow as tf

from eval import checkpoint_curve
from eval.audit import command as audit_command
from eval.audit import sweep as audit_sweep
from eval.kit import cli
from eval.kit import runner
from resnet_ceb import fileio
from studies import common
from studies import study2_report
from studies import verdict
from studies import wall_clock
from wrn_cifar import cifar_input

tf1 = tf.compat.v1

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BATCH_SIZE = 128
AUGMENT = 'none'  # The trainer's crop-and-flip pipeline (wrn_cifar.cifar_input).
PRECISION = 'float32'
STAGE1_SEED = 0
# The radii the pre-registered verdict reads (studies.verdict): they must be audited.
REQUIRED_RADII = {'audit_linf': 2.0, 'audit_l2': 64.0}
# The radius keys of summary.json's pgd20 and audit dicts (issue 23, section 3).
SCHEMA_RADII = ('linf_1', 'linf_2', 'linf_4', 'l2_32', 'l2_64')
PRESETS = {
    'overparam': dict(depth=10, width=2, num_train_images=1024, train_epochs=375,
                      rhos='1,2,3,5', seeds=3, checkpoints=10, audit_examples=500,
                      audit_linf='1,2,4', audit_l2='32,64', apgd_targets=3,
                      fab_targets=3, square_queries=1000, bootstrap_samples=10000),
    'overparam_tiny': dict(depth=10, width=1, num_train_images=256, train_epochs=5, rhos='5',
                           seeds=1, checkpoints=5, num_eval_images=40, audit_examples=8,
                 audit_linf='2', audit_l2='64', apgd_targets=1, fab_targets=1,
                 square_queries=20, bootstrap_samples=200),
}


def build_parser():
  """The flags of `run_cifar.sh study --preset overparam`; unset ones come from the preset."""
  parser = cli.ArgumentParser(prog='run_cifar.sh study --preset overparam', description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
  common.add_training_flags(parser, 'runs/study2')
  parser.set_defaults(train_epochs=None, depth=None, width=None)
  add = parser.add_argument
  add('--preset', choices=sorted(PRESETS), default='overparam',
      help='overparam: the pre-registered study; overparam_tiny: plumbing in a minute')
  add('--rhos', help='stage-1 CEB rho values (comma list)')
  add('--seeds', type=int, help='paired seeds in all (stage 2 trains seeds 1 .. N-1)')
  add('--checkpoints', type=int, help='checkpoints kept and measured; a multiple of 5 '
      'that divides the training steps, so 80%% of training is one (gate G3)')
  common.add_audit_flags(parser, REQUIRED_RADII)
  add('--bootstrap_samples', type=int, help="draws of Delta's bootstrap CI")
  add('--docs_dir', help='also copy summary.json, summary.md and the figures here')
  return parser


def apply_preset(args):
  """Fills every flag left unset from the preset; checks every flag's value."""
  common.fill_preset(args, PRESETS[args.preset], (
      'seeds', 'checkpoints', 'audit_examples', 'apgd_targets', 'fab_targets',
      'square_queries', 'train_epochs', 'bootstrap_samples', 'depth', 'width'))
  args.rho_values = common.parse_rhos('rhos', args.rhos)
  if len(set(args.rho_values)) != len(args.rho_values):
    raise ValueError('--rhos=%s: a rho is listed twice' % args.rhos)
  args.radii = {}
  for flag, required in REQUIRED_RADII.items():
    args.radii[flag] = sorted(cli.parse_epsilons(getattr(args, flag), '--' + flag))
    if required not in args.radii[flag]:
      raise ValueError('--%s=%s: must hold %g, the radius the pre-registered verdict reads'
                       % (flag, getattr(args, flag), required))
  if not args.fake_data and not args.data_dir:
    raise ValueError('--data_dir: expected the CIFAR-10 folder (or --fake_data for plumbing)')
  return args


def load_data(args):
  """(train, test) arrays: the trainer's training prefix and every test image.

  Raises:
    ValueError: a prefix longer than the data, or shorter than one batch, or
      more audited images than test images.
  """
  train = cifar_input.load_dataset(args.data_dir, 'train', args.fake_data)
  test = cifar_input.load_dataset(args.data_dir, 'test', args.fake_data)
  count = args.num_train_images or len(train[0])
  if not BATCH_SIZE <= count <= len(train[0]):
    raise ValueError('--num_train_images=%d: expected %d to %d (one batch to the %d training '
                     'images found)' % (count, BATCH_SIZE, len(train[0]), len(train[0])))
  num_test = min(args.num_eval_images or len(test[0]), len(test[0]))
  if args.audit_examples > num_test:
    raise ValueError('--audit_examples=%d: only %d test images' % (args.audit_examples,
                                                                    num_test))
  return (train[0][:count], train[1][:count]), (test[0][:num_test], test[1][:num_test])


def training_steps(args, num_train):
  """The steps of every model, checked against --checkpoints (G3 needs the 80% one)."""
  steps = args.train_epochs * (num_train // BATCH_SIZE)
  if args.checkpoints % 5 or steps % args.checkpoints:
    raise ValueError('--checkpoints=%d: expected a multiple of 5 that divides the %d training '
                     'steps, so that 80%% of training is a kept checkpoint (gate G3)'
                     % (args.checkpoints, steps))
  return steps


def run_name(rho):
  """The run folder name: 'xent' for rho None, else 'ceb_rho<R>'."""
  return 'xent' if rho is None else 'ceb_rho%g' % rho


class Study:
  """The study's stages on one set of checked flags; every stage skips finished work."""

  def __init__(self, args):
    self.args = args
    self.train_set, self.test_set = load_data(args)
    self.steps = training_steps(args, len(self.train_set[0]))
    self.data_flags = {'data_dir': args.data_dir and os.path.abspath(args.data_dir),
                       'fake_data': args.fake_data}
    self.clock = wall_clock.WallClock(args.model_root)

  def log(self, message):
    """Prints a progress line with this invocation's minutes; records them."""
    self.clock.record()
    print('[study2 %6.1f min] %s' % (self.clock.minutes(), message), flush=True)

  def model_dir(self, rho, seed):
    """Where the run of (rho, seed) lives; rho None is XEnt."""
    return os.path.join(self.args.model_root, 'seed%d' % seed, run_name(rho))

  def train(self, rho, seed):
    """Trains (or resumes) one model, then measures its kept checkpoints clean."""
    name = run_name(rho)
    self.log('%s seed %d: train' % (name, seed))
    args = argparse.Namespace(**vars(self.args))
    args.model_root = os.path.dirname(self.model_dir(rho, seed))
    objective = ['--loss=xent'] if rho is None else ['--loss=ceb', '--rho=%g' % rho]
    model_dir = self.model_dir(rho, seed)
    train_in_subprocess(common.trainer_argv(args, name, objective + [
        '--train_batch_size=%d' % BATCH_SIZE,
        '--save_checkpoints_steps=%d' % (self.steps // self.args.checkpoints),
        '--keep_checkpoint_max=%d' % (self.args.checkpoints + 2),
        '--deterministic', '--seed=%d' % seed], augment_name=AUGMENT))
    self.log('%s seed %d: checkpoint curve' % (name, seed))
    return checkpoint_curve.evaluate_checkpoints(
        model_dir, train=self.train_set, test=self.test_set, attacks=(), num_examples=0,
        data_flags=self.data_flags, log=self.log)

  def audit(self, model_dir):
    """The audit at both norms into model_dir/results/audit_<norm>.json (resumes by radius)."""
    for norm, flag in (('linf', 'audit_linf'), ('l2', 'audit_l2')):
      self.log('%s: audit %s' % (model_dir, norm))
      argv = ['--model_dir', model_dir, '--dataset', 'cifar10', '--norm', norm,
              '--epsilons', ','.join('%g' % e for e in self.args.radii[flag]),
              '--seed', '0', '--output', audit_path(model_dir, norm)]
      argv += common.audit_budget_argv(self.args)
      argv += ['--data_dir', self.args.data_dir] if self.args.data_dir else ['--fake_data']
      audit_command.run(audit_command.build_parser().parse_args(argv))


def train_in_subprocess(argv):
  """Runs `python -m wrn_cifar.wrn_main argv` from this repository; resumes as it does.

  A child process, because --deterministic turns TensorFlow's op determinism
  on for the whole process: in this one, the evaluation graphs' unseeded
  random ops would then refuse to run.

  Raises:
    ValueError: the trainer failed (its own error is printed above).
  """
  status = subprocess.run([sys.executable, '-m', 'wrn_cifar.wrn_main'] + argv,
                          cwd=REPO_ROOT, check=False).returncode
  if status:
    raise ValueError('the trainer exited %d for %s (its error is above)' % (status, argv[0]))


def audit_path(model_dir, norm):
  """The audit result file of one norm."""
  return os.path.join(model_dir, 'results', 'audit_%s.json' % norm)


def clean_correct(model_dir, images, labels, batch_size=250):
  """Which of the images the final model classifies right: bool [N]."""
  model = runner.load_model(model_dir)
  graph = tf.Graph()
  with graph.as_default():
    x = tf1.placeholder(tf.float32, [None, 32, 32, 3])
    predicted = tf.argmax(model.logits_fn(x), -1, output_type=tf.int32)
    saver = tf1.train.Saver(tf1.global_variables())
  with tf1.Session(graph=graph) as session:
    saver.restore(session, model.checkpoint_path)
    out = [session.run(predicted, {x: images[i:i + batch_size].astype(np.float32)})
           for i in range(0, len(images), batch_size)]
  return np.concatenate(out) == np.asarray(labels)


def robust_bits(correct, fooled_at, epsilon):
  """'0'/'1' per image: clean-correct and not fooled at any radius <= epsilon."""
  robust = np.asarray(correct, bool) & ~(np.asarray(fooled_at) <= epsilon)
  return ''.join('1' if r else '0' for r in robust)


def run(args, argv=()):
  """Every stage in order; returns 0 once summary.json is written.

  Args:
    args: the parsed flags.
    argv: the flags as given (the command recorded in the summary).
  """
  args = apply_preset(args)
  common.quiet_logs()
  study = Study(args)
  curves = {(rho, STAGE1_SEED): study.train(rho, STAGE1_SEED) for rho in [None] + args.rho_values}
  stage1 = [model_record(study, rho, seed, curve, audited=False)
            for (rho, seed), curve in curves.items()]
  rho_star = verdict.rho_star(stage1, STAGE1_SEED)
  study.log('rho* = %s' % rho_star)
  if rho_star is not None:
    for seed in range(1, args.seeds):
      for rho in (None, rho_star):
        curves[rho, seed] = study.train(rho, seed)
  for rho, seed in curves:
    study.audit(study.model_dir(rho, seed))
  models = [model_record(study, rho, seed, curve) for (rho, seed), curve in curves.items()]
  seeds = list(range(args.seeds)) if rho_star is not None else []
  summary = dict(design=design(args, study, argv), models=models,
                 **verdict.judge(models, seeds, STAGE1_SEED, args.bootstrap_samples))
  written = study2_report.write(summary, curves_of(study, curves),
                                os.path.join(args.model_root, 'study2'), args.docs_dir)
  study.log('verdict: %s (%s)' % (summary['verdict'], summary['verdict_reason']))
  study.log('written: %s' % ', '.join(written))
  return 0


def curves_of(study, curves):
  """{run label: curve points} for the training figure."""
  return {'%s seed %d' % (run_name(rho), seed): points for (rho, seed), points in curves.items()}


def design(args, study, argv):
  """The summary's design block: what was trained, how, and how long it took."""
  return {'net': 'WRN-%d-%d (no BatchNorm)' % (args.depth, args.width),
          'images': len(study.train_set[0]), 'epochs': args.train_epochs,
          'steps': study.steps, 'batch_size': BATCH_SIZE,
          'augmentation': 'crop+flip (--augment_name=%s)' % AUGMENT, 'precision': PRECISION,
          'rhos': args.rho_values, 'seeds': args.seeds,
          'audit_examples': args.audit_examples, 'test_images': len(study.test_set[0]),
          'audit_budget': {'apgd_targets': args.apgd_targets, 'fab_targets': args.fab_targets,
                           'square_queries': args.square_queries},
          'command': ' '.join(['./run_cifar.sh', 'study'] + list(argv)),
          'wall_time_minutes': round(study.clock.total_minutes(), 2),
          'invocations': study.clock.invocations()}


def train_gain(points, steps):
  """Train accuracy gained over the last 20% of steps, or None if a point is missing."""
  by_step = {point['step']: point['train_accuracy'] for point in points}
  start = steps - steps // 5
  if steps not in by_step or start not in by_step:
    return None
  return by_step[steps] - by_step[start]


def _audit_fields(study, model_dir):
  """({key: PGD-20 accuracy}, {key: audit accuracy}, L-inf eps=2 bit string) or Nones.

  The dicts hold the summary's five keys (None where not audited) and every
  radius audited beyond them.
  """
  pgd20, audit, bits = dict.fromkeys(SCHEMA_RADII), dict.fromkeys(SCHEMA_RADII), None
  for norm, flag in (('linf', 'audit_linf'), ('l2', 'audit_l2')):
    path = audit_path(model_dir, norm)
    items = fileio.read_json(path)['items'] if os.path.exists(path) else {}
    for epsilon in study.args.radii[flag]:
      item = items.get(cli.epsilon_key(epsilon))
      key = '%s_%g' % (norm, epsilon)
      pgd20[key] = item and item['pgd20_accuracy']
      audit[key] = item and item['accuracy']
    if norm == 'linf' and audit['linf_2'] is not None:
      bits = _linf2_bits(study, model_dir, path, audit['linf_2'])
  return pgd20, audit, bits


def _linf2_bits(study, model_dir, path, accuracy):
  """The robust bits at L-inf eps=2, checked against the audit's own accuracy."""
  count = study.args.audit_examples
  images, labels = study.test_set[0][:count], study.test_set[1][:count]
  with np.load(audit_sweep.carry_path(path)) as carry:
    if not np.array_equal(carry['labels'], labels):
      raise ValueError('%s was audited on other images than the first %d test images'
                       % (path, count))
    bits = robust_bits(clean_correct(model_dir, images, labels), carry['fooled_at'], 2.0)
  if abs(bits.count('1') / count - accuracy) > 0.5 / count:
    raise ValueError('%s: the robust bits give %.4f, the audit %.4f' % (
        path, bits.count('1') / count, accuracy))
  return bits


def model_record(study, rho, seed, points, audited=True):
  """One `models` entry of summary.json (every unmeasured value None)."""
  final = points[-1] if points and points[-1]['step'] == study.steps else None
  record = {'objective': 'xent' if rho is None else 'ceb', 'rho': rho, 'seed': seed,
            'train_accuracy': final and final['train_accuracy'],
            'test_accuracy': final and final['test_accuracy'],
            'train_gain_last_20pct': train_gain(points, study.steps),
            'pgd20': None, 'audit': None, 'audit_robust_linf_2': None}
  if audited:
    record['pgd20'], record['audit'], record['audit_robust_linf_2'] = _audit_fields(
        study, study.model_dir(rho, seed))
  return record


def main(argv=None):
  """Entry point: bad flags or data print `error: ...` and exit 2."""
  argv = sys.argv[1:] if argv is None else list(argv)
  return cli.run_cli(build_parser(), functools.partial(run, argv=argv), argv)


if __name__ == '__main__':
  sys.exit(main())
