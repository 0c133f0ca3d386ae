r"""`python -m eval.audit`: the audit over ascending radii, resumable (eval.audit.sweep).

    python -m eval.audit --model_dir DIR --data_dir CIFAR_DIR --norm linf \\
        --epsilons 1,2,4,8,16,32 --num_examples 1000 [--transfer_from XENT_MODEL_DIR]

writes the result file `audit_linf` / `audit_l2` under DIR/results (one item
per radius: clean, PGD-20 and audit accuracy, accuracy after each attack,
indicators, flags; summary: the curves, flags and verdict) and prints a table.
"""
import contextlib
import dataclasses
import os

import numpy as np
import tensorflow as tf

from eval import settings
from eval.attacks import apgd
from eval.attacks import examples
from eval.audit import checks
from eval.audit import engine
from eval.audit import specs
from eval.audit import sweep
from eval.kit import checks as kit_checks
from eval.kit import cli
from eval.kit import results
from eval.kit import runner

tf1 = tf.compat.v1

DEFAULT_NUM_EXAMPLES = 1000


def build_parser():
  """The `python -m eval.audit` flags."""
  parser = cli.ArgumentParser(prog='python -m eval.audit', description=(
      'Robustness audit of a trained model: PGD-20, APGD-CE, APGD-T, FAB-T and Square, '
      'with gradient-masking indicators.'))
  cli.add_model_flags(parser)
  cli.add_precision_flag(parser, attack=True)
  examples.add_flags(parser)
  add = parser.add_argument
  add('--norm', choices=kit_checks.NORMS, default='linf', help='Threat model.')
  add('--epsilons', help='Comma list of radii in pixel units; default the Figure 1-2 '
      'grid of eval.settings without 0.')
  add('--num_examples', type=int, default=DEFAULT_NUM_EXAMPLES,
      help='Audit the first N test examples.')
  add('--transfer_from', help="Another model's model_dir (e.g. the XEnt baseline): its "
      'APGD-CE examples are tried on this model too.')
  add('--transfer_checkpoint', help="--transfer_from's checkpoint; default its latest.")
  add('--apgd_steps', type=int, default=100, help='APGD iterations per run.')
  add('--apgd_restarts', type=int, default=1, help='APGD random restarts (per target).')
  add('--apgd_targets', type=int, default=9, help='APGD-T target classes.')
  add('--fab_targets', type=int, default=9, help='FAB-T target classes.')
  add('--fab_steps', type=int, default=100, help='FAB-T iterations per target.')
  add('--square_queries', type=int, default=5000, help='Square Attack queries.')
  add('--square_p_init', type=float, default=0.8, help="Square Attack's first window share.")
  add('--schedule', choices=apgd.SCHEDULES, default='autoattack',
      help="APGD's checkpoints and Square's window schedule: 'autoattack' (the official "
      "code's) or 'stretched' (spread over a small budget).")
  add('--eot_samples', type=int, default=1,
      help='APGD gradients averaged over this many passes (EOT, for randomized models; '
      "AutoAttack's rand version uses 20).")
  add('--convergence_sample', type=int, default=checks.CONVERGENCE_SAMPLE,
      help='Survivors re-attacked by APGD at twice the budget (not_converged); 0: skip.')
  add('--seed', type=int, default=0, help='Seeds every random start and draw.')
  add('--batch_size', type=int, default=256, help='Examples per session.run.')
  cli.add_output_flag(parser)
  return parser


def _attacks_from_args(args):
  """The standard sequence with the flags' budgets; errors name the flag."""
  for flag in ('apgd_steps', 'apgd_restarts', 'apgd_targets', 'fab_targets', 'fab_steps',
               'square_queries', 'batch_size', 'eot_samples'):
    kit_checks.check_num_steps(getattr(args, flag), '--' + flag)
  kit_checks.require(kit_checks.is_int(args.convergence_sample) and args.convergence_sample >= 0,
                     '--convergence_sample=%r must be an integer >= 0' % args.convergence_sample)
  kit_checks.require(kit_checks.is_finite_real(args.square_p_init) and 0 < args.square_p_init <= 1,
                     '--square_p_init=%r must be a number in (0, 1]' % args.square_p_init)
  kit_checks.check_seed(args.seed, '--seed')
  budget = dict(num_steps=args.apgd_steps, num_restarts=args.apgd_restarts,
                schedule=args.schedule, eot_samples=args.eot_samples)
  return (specs.Pgd(), specs.Apgd('ce', **budget),
          specs.Apgd('targeted-dlr', num_targets=args.apgd_targets, **budget),
          specs.Fab(num_targets=args.fab_targets, num_steps=args.fab_steps),
          specs.Square(args.square_queries, args.square_p_init, schedule=args.schedule))


def _arrays(examples_fn):
  """An examples_fn's data set as numpy arrays (eager)."""
  images, labels = [], []
  for image, label in examples_fn().batch(256).as_numpy_iterator():
    images.append(image)
    labels.append(label)
  kit_checks.require(images, 'the data set holds no example')
  return np.concatenate(images), np.concatenate(labels)


def restorer(checkpoint_path):
  """A restore_fn restoring the graph's variables from a checkpoint."""
  def restore(session):
    tf1.train.Saver(tf1.global_variables()).restore(session, checkpoint_path)
  return restore


def _header_flags(args, epsilons, attacks, source):
  return {'norm': args.norm, 'epsilons': sorted(epsilons), 'num_examples': args.num_examples,
          'data_dir': args.data_dir,
          'fake_data': args.fake_data, 'seed': args.seed, 'batch_size': args.batch_size,
          'convergence_sample': args.convergence_sample,
          'attacks': [dict(dataclasses.asdict(spec), name=spec.name) for spec in attacks],
          'transfer_from': source and os.path.abspath(source.model_dir),
          'transfer_checkpoint': source and os.path.abspath(source.checkpoint_path)}


def prepare(args):
  """Checks everything that can fail before any result is written.

  Returns:
    (model, source model or None, images, labels, epsilons, attacks, result_file).
  """
  attacks = _attacks_from_args(args)
  epsilons = (cli.parse_epsilons(args.epsilons) if args.epsilons
              else [float(e) for e in settings.EPSILONS[args.norm] if e > 0])
  model = runner.load_model(args.model_dir, args.checkpoint)
  source = (runner.load_model(args.transfer_from, args.transfer_checkpoint)
            if args.transfer_from else None)
  dataset = examples.dataset_for(args.dataset, model, 'attack')
  images, labels = _arrays(examples.load_examples(
      dataset, args.data_dir, args.fake_data, args.num_examples, args.batch_size,
      model.params.get('image_size', 224)))
  evaluation = 'audit_' + args.norm
  header = results.header_for(model, _header_flags(args, epsilons, attacks, source), dataset)
  result_file = results.ResultFile(cli.output_path(args, model, evaluation), evaluation,
                                   header)
  return model, source, images, labels, epsilons, attacks, result_file


def format_table(summary, evaluation):
  """Clean, PGD-20 and audit accuracy by radius, then the flags and the verdict."""
  lines = ['%s: clean accuracy %.4f' % (evaluation, summary['clean_accuracy']),
           '%10s %9s %9s' % ('epsilon', 'pgd20', 'audit')]
  for epsilon, pgd20, accuracy in zip(summary['epsilons'], summary['pgd20_accuracy'],
                                      summary['accuracy']):
    lines.append('%10g %9.4f %9.4f' % (epsilon, pgd20, accuracy))
  lines += ['flag: ' + flag for flag in summary['flags']]
  return '\n'.join(lines + ['verdict: ' + summary['verdict']])


def run(args):
  """Runs the audit the flags describe; returns its summary."""
  model, source, images, labels, epsilons, attacks, result_file = prepare(args)
  common = dict(norm=args.norm, seed=args.seed, batch_size=args.batch_size,
                epsilons=epsilons + [engine.UNBOUNDED_EPSILON[args.norm]],
                convergence_sample=args.convergence_sample)
  with contextlib.ExitStack() as stack:
    auditor = stack.enter_context(engine.Auditor(
        model.logits_fn, images.shape[1:], attacks=attacks,
        restore_fn=restorer(model.checkpoint_path), **common))
    transfer_fn = None
    if source is not None:
      # The source model's APGD-CE examples, made in its own graph.
      maker = stack.enter_context(engine.Auditor(
          source.logits_fn, images.shape[1:], attacks=attacks[1:2],
          restore_fn=restorer(source.checkpoint_path), **dict(common, convergence_sample=0)))

      def transfer_fn(epsilon):
        return maker.adversarial(0, epsilon, images, labels)

    summary = sweep.run_sweep(auditor, auditor.clean(images, labels), epsilons,
                              result_file, transfer_fn)
  print(format_table(summary, 'audit_' + args.norm))
  print('results: %s' % result_file.path)
  return summary


def main(argv=None):
  """Runs the command; bad input exits 2 with `error: ...` on stderr."""
  return cli.run_cli(build_parser(), run, argv)


