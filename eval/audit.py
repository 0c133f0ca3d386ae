r"""The robustness audit: real robustness, or gradient masking? (library and command).

The paper measures robustness with 20-step PGD on the cross-entropy alone. A
model can look robust to that by masking its gradients (saturated softmax,
non-differentiable or noisy layers) without being robust. The audit runs the
field's standard answer in the model's own TF1 graph: the paper's PGD-20,
then AutoAttack's APGD-CE, APGD-T (targeted DLR) and Square Attack (Croce &
Hein 2020; eval.audit_attacks), each on the examples still robust, counting an
example fooled only through a checked witness (eval.audit_engine), and it
reports the indicators of Carlini et al. 2019 and Pintor et al. 2022
(eval.audit_indicators) with a verdict.

Library (SPEC section 7)::

    result = run_audit(logits_fn, images, labels, norm='linf', epsilon=8)
    result.robust, result.adversarial, result.per_attack, result.indicators, result.flags

Command line (ascending radii, resumable; eval.audit_sweep)::

    python -m eval.audit --model_dir DIR --data_dir CIFAR_DIR --norm linf \\
        --epsilons 1,2,4,8,16,32 --num_examples 1000 [--transfer_from XENT_MODEL_DIR]

writes the result file `audit_linf` / `audit_l2` under DIR/results (one item
per radius: clean, PGD-20 and audit accuracy, accuracy after each attack,
indicators, flags; summary: the curves, flags and verdict) and prints a table.
"""
import contextlib
import dataclasses
import os
from typing import Optional

import numpy as np
import tensorflow as tf

from eval import audit_attacks
from eval import audit_engine
from eval import audit_indicators as indicators_lib
from eval import audit_sweep
from eval import cli
from eval import examples
from eval import model_under_attack as mua
from eval import results
from eval import runner
from eval import settings

tf1 = tf.compat.v1

DEFAULT_NUM_EXAMPLES = 1000


@dataclasses.dataclass
class AuditResult:
  """What `run_audit` found at one radius (numpy arrays over the N examples)."""
  robust: np.ndarray
  adversarial: np.ndarray
  per_attack: dict
  indicators: dict
  flags: list
  epsilon: float
  clean_accuracy: float
  pgd20_accuracy: Optional[float]
  accuracy: float
  verdict: str
  passes: dict  # attack -> {'gradient': n, 'forward': n}, per-example passes.


def check_examples(images, labels):
  """Images as float32 pixels [N, H, W, C] in [0, 255] and labels as int32 [N].

  Raises:
    ValueError: wrong shapes or types, pixels outside [0, 255], negative labels.
  """
  images, labels = np.asarray(images), np.asarray(labels)
  mua.require(images.ndim == 4 and len(images) >= 1 and images.dtype.kind in 'uif',
              'images must be a non-empty numeric array [N, H, W, C], got %s of shape %s'
              % (images.dtype, images.shape))
  images = images.astype(np.float32)
  mua.require(np.isfinite(images).all() and images.min() >= mua.PIXEL_MIN
              and images.max() <= mua.PIXEL_MAX,
              'images must be pixels in [0, 255], found values in [%g, %g]'
              % (images.min(), images.max()))
  mua.require(labels.shape == (len(images),) and labels.dtype.kind in 'iu',
              'labels must be integers of shape [N] = [%d], got %s of shape %s'
              % (len(images), labels.dtype, labels.shape))
  mua.require(labels.min() >= 0, 'labels must be >= 0, got %d' % labels.min())
  return images, labels.astype(np.int32)


def _check_settings(logits_fn, norm, epsilon, seed, batch_size, restore_fn):
  mua.require(callable(logits_fn), 'logits_fn=%r is not callable' % (logits_fn,))
  mua.check_norm(norm)
  mua.check_epsilon(epsilon)
  mua.check_seed(seed)
  mua.require(mua.is_int(batch_size) and batch_size >= 1,
              'batch_size=%r must be an integer >= 1' % (batch_size,))
  mua.require(restore_fn is None or callable(restore_fn),
              'restore_fn=%r must be callable or None' % (restore_fn,))


def _share(mask):
  return float(np.mean(mask))


def run_audit(logits_fn, images, labels, *, norm, epsilon, attacks=None, seed=0,
              batch_size=256, restore_fn=None):
  """Audits a model's robustness at one radius; see the module docstring.

  Builds its own tf.Graph and Session: calls `logits_fn(x)` there,
  initializes the variables, then runs `restore_fn(session)` if given. A
  model whose input gradient is None or NaN is audited, not a crash. After
  the radius, the examples still robust are attacked at the unbounded radius
  too (the unbounded_accuracy indicator).

  Args:
    logits_fn: `logits_fn(images)` building logits for float pixels in [0, 255];
      later calls must reuse the variables of the first.
    images: [N, H, W, C] pixels in [0, 255].
    labels: [N] int labels.
    norm: 'linf' or 'l2'.
    epsilon: the radius in pixel units, >= 0.
    attacks: None for the standard sequence ('pgd20', 'apgd-ce', 'apgd-t',
      'square'), or a list of names and eval.audit_attacks specs.
    seed: seeds every random start and draw.
    batch_size: examples per session.run.
    restore_fn: `restore_fn(session)`, e.g. restoring a checkpoint, or None.

  Returns:
    An AuditResult: `robust` (bool [N]), `adversarial` (float32 [N, H, W, C]:
    the checked witness where fooled, else the clean image), `per_attack`
    ('clean', then each attack: robust accuracy after it and all before it),
    `indicators`, `flags` (one string per indicator that fired), `verdict`.

  Raises:
    ValueError: bad input (shapes, pixel range, labels, radius, attacks).
  """
  images, labels = check_examples(images, labels)
  _check_settings(logits_fn, norm, epsilon, seed, batch_size, restore_fn)
  specs = audit_attacks.resolve(attacks)
  radii = [epsilon, audit_engine.UNBOUNDED_EPSILON[norm]]
  with audit_engine.Auditor(logits_fn, images.shape[1:], norm=norm, epsilons=radii,
                            attacks=specs, seed=seed, batch_size=batch_size,
                            restore_fn=restore_fn) as auditor:
    clean = auditor.clean(images, labels)
    outcome = auditor.audit(clean, epsilon)
    pgd20 = [] if outcome.pgd20_robust is None else [_share(outcome.pgd20_robust)]
    found, _ = audit_sweep.unbounded(auditor, clean, ~outcome.robust, pgd20, outcome)
  indicators = dict(indicators_lib.radius_indicators(outcome, clean), **found)
  flags = indicators_lib.flags(indicators)
  return AuditResult(
      robust=outcome.robust, adversarial=outcome.adversarial, per_attack=outcome.per_attack,
      indicators=indicators, flags=flags, epsilon=float(epsilon),
      clean_accuracy=_share(clean.correct), pgd20_accuracy=pgd20[0] if pgd20 else None,
      accuracy=_share(outcome.robust),
      verdict=indicators_lib.verdict(map(indicators_lib.flag_name, flags)),
      passes={r.name: {'gradient': r.gradient_passes, 'forward': r.forward_passes}
              for r in outcome.records})


# ---------------------------------------------------------------------------
# Command line.


def build_parser():
  """The `python -m eval.audit` flags."""
  parser = cli.ArgumentParser(prog='python -m eval.audit', description=(
      'Robustness audit of a trained model: PGD-20, APGD-CE, APGD-T and Square, '
      'with gradient-masking indicators.'))
  cli.add_model_flags(parser)
  add = parser.add_argument
  add('--dataset', choices=examples.DATASETS, help="Default: the model's (params.json).")
  add('--data_dir', help='CIFAR-10 folder, or ImageNet validation TFRecords.')
  add('--fake_data', action='store_true', help='Random images, for plumbing only.')
  add('--norm', choices=mua.NORMS, default='linf', help='Threat model.')
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
  add('--square_queries', type=int, default=5000, help='Square Attack queries.')
  add('--square_p_init', type=float, default=0.8, help="Square Attack's first window share.")
  add('--seed', type=int, default=0, help='Seeds every random start and draw.')
  add('--batch_size', type=int, default=256, help='Examples per session.run.')
  cli.add_output_flag(parser)
  return parser


def _attacks_from_args(args):
  """The standard sequence with the flags' budgets; errors name the flag."""
  for flag in ('apgd_steps', 'apgd_restarts', 'apgd_targets', 'square_queries', 'batch_size'):
    mua.check_num_steps(getattr(args, flag), '--' + flag)
  mua.require(mua.is_finite_real(args.square_p_init) and 0 < args.square_p_init <= 1,
              '--square_p_init=%r must be a number in (0, 1]' % args.square_p_init)
  mua.check_seed(args.seed, '--seed')
  apgd = dict(num_steps=args.apgd_steps, num_restarts=args.apgd_restarts)
  return (audit_attacks.Pgd(), audit_attacks.Apgd('ce', **apgd),
          audit_attacks.Apgd('targeted-dlr', num_targets=args.apgd_targets, **apgd),
          audit_attacks.Square(args.square_queries, args.square_p_init))


def _arrays(examples_fn):
  """An examples_fn's data set as numpy arrays (eager)."""
  images, labels = [], []
  for image, label in examples_fn().batch(256).as_numpy_iterator():
    images.append(image)
    labels.append(label)
  mua.require(images, 'the data set holds no example')
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
                epsilons=epsilons + [audit_engine.UNBOUNDED_EPSILON[args.norm]])
  with contextlib.ExitStack() as stack:
    auditor = stack.enter_context(audit_engine.Auditor(
        model.logits_fn, images.shape[1:], attacks=attacks,
        restore_fn=restorer(model.checkpoint_path), **common))
    transfer_fn = None
    if source is not None:
      # The source model's APGD-CE examples, made in its own graph.
      maker = stack.enter_context(audit_engine.Auditor(
          source.logits_fn, images.shape[1:], attacks=attacks[1:2],
          restore_fn=restorer(source.checkpoint_path), **common))

      def transfer_fn(epsilon):
        return maker.adversarial(0, epsilon, images, labels)

    summary = audit_sweep.run_sweep(auditor, auditor.clean(images, labels), epsilons,
                                    result_file, transfer_fn)
  print(format_table(summary, 'audit_' + args.norm))
  print('results: %s' % result_file.path)
  return summary


def main(argv=None):
  """Runs the command; bad input exits 2 with `error: ...` on stderr."""
  return cli.run_cli(build_parser(), run, argv)


if __name__ == '__main__':
  main()
