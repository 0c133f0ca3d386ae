"""The main job in small: CEB (rho=3) against the deterministic baseline on CIFAR-10.

Trains two small BatchNorm-free WRNs for a few epochs, evaluates both on the test
set (clean and under PGD), and prints a table. Re-running resumes: finished
models are not retrained. `./run_cifar.sh quickstart --data_dir DIR` runs it.
"""
import argparse
import logging
import os
import sys
import warnings

import tensorflow as tf

from eval import cifar_suite
from resnet_ceb import train_utils
from wrn_cifar import wrn_main

# PGD in pixel units, n = 20 steps, alpha = 4/3 eps / n (section 2.4). The paper
# gives no L2 epsilon for Figure 1; 128 (0.5 in [0, 1] units) is our choice.
PGD_SETTINGS = (('linf', 8.0), ('l2', 128.0))


def parse_args(argv):
  parser = argparse.ArgumentParser(prog='run_cifar.sh quickstart', description=__doc__)
  parser.add_argument('--data_dir', help='CIFAR-10 python or binary distribution '
                      '(unset: download with tfds)')
  parser.add_argument('--fake_data', action='store_true', help='plumbing only')
  parser.add_argument('--model_root', default='runs/quickstart')
  parser.add_argument('--train_epochs', type=int, default=15)
  parser.add_argument('--depth', type=int, default=16)
  parser.add_argument('--width', type=int, default=2)
  parser.add_argument('--rho', type=float, default=3.0)
  parser.add_argument('--num_train_images', type=int, default=None)
  parser.add_argument('--num_eval_images', type=int, default=None)
  parser.add_argument('--pgd_examples', type=int, default=None,
                      help='attack only the first N test images (default: all)')
  return parser.parse_args(argv)


def _train(args, name, loss):
  model_dir = os.path.join(args.model_root, name)
  argv = ['--model_dir=%s' % model_dir, '--loss=%s' % loss, '--rho=%s' % args.rho,
          '--depth=%d' % args.depth, '--width=%d' % args.width,
          '--train_epochs=%d' % args.train_epochs, '--augment_name=none',
          '--epochs_per_eval=%d' % args.train_epochs, '--iterations_per_loop=50']
  argv += ['--data_dir=%s' % args.data_dir] if args.data_dir else []
  argv += ['--fake_data'] if args.fake_data else []
  for flag in ('num_train_images', 'num_eval_images'):
    if getattr(args, flag):
      argv.append('--%s=%d' % (flag, getattr(args, flag)))
  metrics = wrn_main.run(wrn_main.make_flags(argv))
  return model_dir, metrics['accuracy']


def _evaluate(args, model_dir):
  """Clean and PGD accuracy of a trained model, from resumable result files."""
  summaries = cifar_suite.evaluate_model(
      model_dir, data_dir=args.data_dir, fake_data=args.fake_data,
      linf_epsilons=[PGD_SETTINGS[0][1]], l2_epsilons=[PGD_SETTINGS[1][1]],
      num_examples=args.pgd_examples)
  return [summaries['pgd_%s' % norm]['accuracy'][0] for norm, _ in PGD_SETTINGS]


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


def main(argv=None):
  args = parse_args(argv)
  quiet_logs()
  rows = []
  try:
    for name, loss in (('ceb_rho%g' % args.rho, 'ceb'), ('xent', 'xent')):
      print('== training %s: WRN-%d-%d, %d epochs' % (name, args.depth, args.width,
                                                      args.train_epochs), flush=True)
      model_dir, clean = _train(args, name, loss)
      attacks = _evaluate(args, model_dir)
      rows.append((name, clean, attacks))
  except (ValueError, FileNotFoundError) as e:
    print('error: %s' % e, file=sys.stderr)
    return 2
  header = ['model', 'clean'] + ['PGD %s eps=%g' % (n, e) for n, e in PGD_SETTINGS]
  print('\nWRN-%d-%d, no BatchNorm, %d epochs (accuracy on the test set)'
        % (args.depth, args.width, args.train_epochs))
  print(' | '.join('%-16s' % h for h in header))
  for name, clean, attacks in rows:
    print(' | '.join('%-16s' % c for c in [name, '%.4f' % clean]
                     + ['%.4f' % a for a in attacks]))
  return 0


if __name__ == '__main__':
  sys.exit(main())
