"""What the studies share: their training flags, one small WRN run, quiet logs.

Every study trains small BatchNorm-free WRNs in process with the same flags
(one evaluation at the end; AutoAugment only where the study asks), so that a
re-run resumes each model from its last checkpoint and finished models are
not retrained.
"""
import logging
import math
import os
import warnings

import tensorflow as tf

from resnet_ceb import train_utils
from wrn_cifar import wrn_main

# Every study's recorded numbers (quickstart, mini, both studies' pilots and runs) were
# trained with the Fixup-style init, the trainer's default until issue 22 made it 'he';
# pinned so that re-running a study reproduces them.
STUDY_INIT = 'fixup'


def add_training_flags(parser, model_root):
  """The data and model flags every study takes; `model_root` is its default folder."""
  parser.add_argument('--data_dir', help='CIFAR-10 python or binary distribution '
                      '(unset: download with tfds)')
  parser.add_argument('--fake_data', action='store_true', help='plumbing only')
  parser.add_argument('--model_root', default=model_root)
  parser.add_argument('--train_epochs', type=int, default=15)
  parser.add_argument('--depth', type=int, default=16)
  parser.add_argument('--width', type=int, default=2)
  parser.add_argument('--num_train_images', type=int, default=None)
  parser.add_argument('--num_eval_images', type=int, default=None)


def add_audit_flags(parser, required_radii=None):
  """The audit's flags every study takes; left unset, they come from the preset.

  Args:
    parser: the study's argparse parser.
    required_radii: {'audit_linf' or 'audit_l2': a radius the radii must hold},
      said in those flags' help (the study checks it).
  """
  required_radii = required_radii or {}

  def radii_help(flag, norm):
    required = ('; must hold %g' % required_radii[flag]) if flag in required_radii else ''
    return 'audited %s radii (pixels, comma list%s)' % (norm, required)

  add = parser.add_argument
  add('--audit_examples', type=int, help='first test images audited')
  add('--audit_linf', help=radii_help('audit_linf', 'L-inf'))
  add('--audit_l2', help=radii_help('audit_l2', 'L2'))
  add('--apgd_targets', type=int, help="the audit's APGD-T target classes")
  add('--fab_targets', type=int, help="the audit's FAB-T target classes")
  add('--square_queries', type=int, help="the audit's Square Attack queries")


def audit_budget_argv(args):
  """The audit command's budget flags from the study's flags (add_audit_flags)."""
  return ['--num_examples', str(args.audit_examples),
          '--apgd_targets', str(args.apgd_targets), '--fab_targets', str(args.fab_targets),
          '--square_queries', str(args.square_queries)]


def fill_preset(args, preset, counts):
  """Fills every flag left unset from `preset`, then checks the `counts` are positive.

  Raises:
    ValueError: a count below 1, naming its flag.
  """
  for key, value in preset.items():
    if getattr(args, key, None) is None:
      setattr(args, key, value)
  for flag in counts:
    if getattr(args, flag) < 1:
      raise ValueError('--%s=%d: expected a positive count' % (flag, getattr(args, flag)))


def parse_rhos(flag, text):
  """'1,2.5' -> [1.0, 2.5]: the rho values of `--flag`; ValueError names the flag.

  Checked before any training, so a bad value fails at once, not after the
  models before it have trained.
  """
  try:
    rhos = [float(part) for part in text.split(',')]
  except ValueError:
    raise ValueError('--%s=%s: expected comma-separated numbers' % (flag, text)) from None
  if not all(math.isfinite(rho) for rho in rhos):
    raise ValueError('--%s=%s: expected finite numbers' % (flag, text))
  return rhos


def trainer_argv(args, name, flags, augment_name='none'):
  """The trainer's flags for model_root/name: the study's data and net plus `flags`.

  The studies evaluate once, at the end; `augment_name` is the trainer's flag
  (the miniatures train without AutoAugment).
  """
  argv = ['--model_dir=%s' % os.path.join(args.model_root, name), '--depth=%d' % args.depth,
          '--width=%d' % args.width, '--train_epochs=%d' % args.train_epochs,
          '--augment_name=%s' % augment_name, '--epochs_per_eval=%d' % args.train_epochs,
          '--wrn_init=%s' % STUDY_INIT] + flags
  argv += ['--data_dir=%s' % args.data_dir] if args.data_dir else []
  argv += ['--fake_data'] if args.fake_data else []
  for flag in ('num_train_images', 'num_eval_images'):
    if getattr(args, flag):
      argv.append('--%s=%d' % (flag, getattr(args, flag)))
  return argv


def train(args, name, flags, augment_name='none'):
  """Trains (or resumes) model_root/name in this process with the trainer `flags` added.

  Returns:
    (model_dir, the trainer's last evaluation metrics).
  """
  argv = trainer_argv(args, name, flags, augment_name)
  return os.path.join(args.model_root, name), wrn_main.run(wrn_main.make_flags(argv))


def quiet_logs():
  """Shows the trainer's progress and eval lines; drops the Estimator's chatter."""
  warnings.filterwarnings('ignore')
  train_utils.setup_logging()
  keep = ('train_utils.py', 'wrn_main.py')
  handler = logging.StreamHandler()
  handler.setFormatter(logging.Formatter('%(message)s'))
  handler.addFilter(lambda record: record.levelno >= logging.ERROR
                    or os.path.basename(record.pathname) in keep)
  logger = tf.get_logger()
  logger.addHandler(handler)
  logger.propagate = False
