r"""What the robustness audit's ascending sweep saves, and what APGD costs per pass.

On one small BN-free WRN (CEB head, eval mode; randomly initialized unless
--model_dir names a trained one), the Figure 1-2 sweep (L-inf eps 1..32, L2
eps 16..1024) runs two ways in one process, in one graph and session
(eval.engine.Auditor), so machine noise hits both alike:

(a) audit:      ascending radii; at each, the attacks in sequence on the
                examples still robust, examples fooled at a smaller radius
                carried up (eval.sweep.ascending);
(b) everything: every attack on every example at every radius; an example is
                robust iff clean-correct and no attack fooled it.

Both count per-example forward+backward passes and forward-only passes (the
attacks' own counts, plus one forward per checked output), wall seconds and
process CPU seconds; (a) also its wall seconds per attack, and FAB-T's share.
(a) also runs the masking checks at each radius (FGSM, 20 noise draws,
APGD-CE and APGD-T at twice the budget on up to 100 survivors;
eval.audit.checks), which (b) does not: their passes and seconds are printed
apart, with their share of (a)'s wall time, and are not in (a)'s totals.
Printed per norm: each way's accuracy per radius, passes and seconds, the
ratios (b)/(a), and whether (a) ever reports a higher accuracy than (b).
Then the floor: an example robust at a radius takes every attack's whole
gradient budget there in both ways (no run stops while it stands), so
(b)'s gradient passes over that floor bound what any audit on survivors can
save; `bound_everything_over_floor` is that ceiling on the passes ratio.
Labels are the model's clean predictions, so every example starts correct
(a random network would otherwise get a tenth right).

Last: APGD-100 (one L-inf run) and FAB-100 (one L-inf target) against 100
bare forward-backward passes in a while_loop on the same batch, interleaved
over rounds: the median ratio of seconds per gradient pass (each attack's own
count, so an early stop once every example is fooled does not flatter it),
in process CPU time and wall time. FAB runs at radius 0 by default, where no
example stops early and every backward step's extra pass is paid, as on the
examples that stay robust in an audit.

    python -m benchmarks.audit_cost [--num_examples 100 --square_queries 5000 \
        --data_dir CIFAR_DIR --model_dir TRAINED_MODEL_DIR --epsilons 2 ...]
"""
import argparse
import os
import time

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '3')

import numpy as np  # pylint: disable=g-import-not-at-top
import tensorflow as tf  # pylint: disable=g-import-not-at-top

from eval import settings  # pylint: disable=g-import-not-at-top
from eval.attacks import apgd  # pylint: disable=g-import-not-at-top
from eval.attacks import fab  # pylint: disable=g-import-not-at-top
from eval.attacks import threat_model  # pylint: disable=g-import-not-at-top
from eval.audit import command as audit_command  # pylint: disable=g-import-not-at-top
from eval.audit import engine  # pylint: disable=g-import-not-at-top
from eval.audit import specs  # pylint: disable=g-import-not-at-top
from eval.audit import sweep  # pylint: disable=g-import-not-at-top
from eval.kit import runner  # pylint: disable=g-import-not-at-top
from wrn_cifar import cifar_input  # pylint: disable=g-import-not-at-top
from wrn_cifar import wrn_main  # pylint: disable=g-import-not-at-top

tf1 = tf.compat.v1


def _model(args):
  """(logits_fn, restore_fn or None): a trained model, or a random WRN."""
  if args.model_dir:
    model = runner.load_model(args.model_dir)
    return model.logits_fn, audit_command.restorer(model.checkpoint_path)
  params = {'depth': args.depth, 'width': args.width, 'loss': 'ceb', 'num_classes': 10}
  random_wrn = wrn_main.eval_logits_fn(params)

  def seeded(images):
    # A fixed graph seed: the same random network in every run of the benchmark.
    tf1.set_random_seed(0)
    return random_wrn(images)

  return seeded, None


def _images(args, count):
  """The first `count` CIFAR-10 test images (--data_dir), else seeded uniform noise."""
  if args.data_dir:
    return cifar_input.load_dataset(args.data_dir, 'test')[0][:count].astype(np.float32)
  rng = np.random.RandomState(0)
  return rng.randint(0, 256, (count, 32, 32, 3)).astype(np.float32)


def _attacks(args):
  steps = dict(num_steps=args.apgd_steps)
  return (specs.Pgd(), specs.Apgd('ce', **steps),
          specs.Apgd('targeted-dlr', num_targets=args.apgd_targets, **steps),
          specs.Fab(num_targets=args.fab_targets, num_steps=args.fab_steps),
          specs.Square(num_queries=args.square_queries))


def _ascending_audit(auditor, clean, epsilons):
  """(a): accuracies per radius, the attack records and the checks' outcomes."""
  fooled_at = np.full(len(clean.labels), np.inf)
  accuracies, records, found = [], [], []
  for _, outcome, _ in sweep.ascending(auditor, clean, epsilons, fooled_at):
    accuracies.append(float(np.mean(outcome.robust)))
    records += outcome.records
    found.append(outcome.checks)
  return accuracies, records, found


def _everything(auditor, clean, epsilons):
  """(b): accuracies per radius and the attack records (no checks)."""
  everyone = np.ones(len(clean.labels), bool)
  accuracies, records = [], []
  for epsilon in epsilons:
    fooled = ~everyone
    for index in range(len(auditor.attacks)):
      records.append(auditor.attack(index, epsilon, clean, everyone))
      fooled |= records[-1].fooled
    accuracies.append(float(np.mean(clean.correct & ~fooled)))
  return accuracies, records, []


def _robust_floor(attacks, accuracies, num_examples):
  """Gradient passes both ways spend on the examples robust at each radius."""
  robust = sum(int(round(a * num_examples)) for a in accuracies)
  return robust * sum(attack.gradient_budget() for attack in attacks)


def _timed(run, *args):
  seconds, (accuracies, records, found) = _seconds(run, *args)
  by_attack = {}
  for record in records:
    by_attack[record.name] = by_attack.get(record.name, 0.0) + record.seconds
  return {'accuracy': accuracies, 'seconds': seconds, 'by_attack': by_attack,
          'gradient': sum(r.gradient_passes for r in records),
          'forward': sum(r.forward_passes for r in records),
          'checks': {key: sum(f[key] for f in found)
                     for key in ('gradient_passes', 'forward_passes', 'seconds', 'cpu_seconds')}}


def _warm_up(auditor, clean, epsilons):
  """Runs every attack's ops once on one example: first runs pay for graph optimization."""
  one = np.arange(len(clean.labels)) == 0
  for epsilon in epsilons:
    for index in range(len(auditor.attacks)):
      auditor.attack(index, epsilon, clean, one)


def _compare_sweeps(args, logits_fn, restore_fn, images, norm):
  """Runs (a) and (b) for one norm and prints them."""
  epsilons = ([float(e) for e in args.epsilons.split(',')] if args.epsilons
              else [float(e) for e in settings.EPSILONS[norm] if e > 0])
  attacks = _attacks(args)
  with engine.Auditor(logits_fn, images.shape[1:], norm=norm, epsilons=epsilons,
                      attacks=attacks, seed=0, batch_size=args.batch_size,
                      restore_fn=restore_fn) as auditor:
    labels = auditor.predict(images, np.zeros(len(images), np.int32))
    clean = auditor.clean(images, labels)
    _warm_up(auditor, clean, epsilons)
    ways = {'audit': _timed(_ascending_audit, auditor, clean, epsilons),
            'everything': _timed(_everything, auditor, clean, epsilons)}
  checks = ways['audit']['checks']
  # The attacks' own time: the checks' is printed apart.
  ways['audit']['seconds'] = {'wall': ways['audit']['seconds']['wall'] - checks['seconds'],
                              'cpu': ways['audit']['seconds']['cpu'] - checks['cpu_seconds']}
  print('%s, epsilons %s, %d examples:' % (norm, ' '.join('%g' % e for e in epsilons),
                                           len(images)))
  for name, way in ways.items():
    print('  %-10s accuracy %s  fwd+bwd passes %d  forward passes %d  %.1f s (CPU %.1f s)'
          % (name, ' '.join('%.3f' % a for a in way['accuracy']), way['gradient'],
             way['forward'], way['seconds']['wall'], way['seconds']['cpu']))
  a, b = ways['audit'], ways['everything']
  print('  audit wall seconds by attack: %s; fab_t_share_of_audit_wall=%.2f' % (
      '  '.join('%s %.1f' % item for item in a['by_attack'].items()),
      a['by_attack'].get('fab-t', 0.0) / a['seconds']['wall']))
  print('  checks     fwd+bwd passes %d  forward passes %d  %.1f s (CPU %.1f s)  '
        'checks_share_of_audit_wall=%.2f' % (
            checks['gradient_passes'], checks['forward_passes'], checks['seconds'],
            checks['cpu_seconds'], checks['seconds'] / (a['seconds']['wall'] + checks['seconds'])))
  never_higher = all(x <= y for x, y in zip(a['accuracy'], b['accuracy']))
  print('  everything/audit: fwd+bwd passes %.2f  forward passes %.2f  wall %.2f  CPU %.2f  '
        'audit_never_higher=%s' % (
            b['gradient'] / max(a['gradient'], 1), b['forward'] / max(a['forward'], 1),
            b['seconds']['wall'] / a['seconds']['wall'],
            b['seconds']['cpu'] / a['seconds']['cpu'], never_higher))
  floor = _robust_floor(attacks, b['accuracy'], len(images))
  print('  floor: %d fwd+bwd passes on examples robust at each radius (the audit spent %d); '
        'bound_everything_over_floor=%.2f' % (floor, a['gradient'],
                                              b['gradient'] / max(floor, 1)))


def _fwd_bwd_loop(logits_fn, x, labels, num_steps):
  """num_steps input-gradient passes in one while_loop, nothing else."""
  def body(i, current):
    logits = tf.cast(logits_fn(current), tf.float32)
    loss = tf.reduce_sum(threat_model.cross_entropy(logits, labels))
    return i + 1, current + tf.sign(tf.gradients(loss, current)[0])

  return tf.while_loop(lambda i, _: i < num_steps, body, (tf.constant(0), x),
                       parallel_iterations=1)[1]


def _projection_loop(x, num_steps):
  """num_steps of FAB's L-inf projection alone, in a while_loop, nothing else.

  Like FAB, each step projects two points per example (the iterate and the
  clean point) onto one hyperplane; the iterate moves onto it.
  """
  flat = tf.reshape(x, [tf.shape(x)[0], -1])
  weights = tf.random.stateless_normal(tf.shape(flat), (0, 1))

  def body(i, current):
    points = tf.concat([current, flat], 0)
    both = tf.concat([weights, weights], 0)
    offsets = tf.reduce_sum(both * points, axis=1) - 1.0
    steps = fab.project_onto_hyperplane(points, both, offsets, 'linf')
    return i + 1, threat_model.clip_pixels(current + tf.split(steps, 2)[0])

  return tf.while_loop(lambda i, _: i < num_steps, body, (tf.constant(0), flat),
                       parallel_iterations=1)[1]


def _per_pass(args, logits_fn, restore_fn, images):
  """Median over rounds of APGD's and FAB's seconds per pass over the bare loop's.

  Also FAB's two candidate overheads apart: its passes per example and
  iteration (above 1: the backward steps' second passes), and the share of
  its seconds that 100 projections alone take.
  """
  with tf.Graph().as_default():
    x = tf1.placeholder(tf.float32, (None,) + images.shape[1:])
    y = tf1.placeholder(tf.int32, [None])
    attacks = {
        'apgd100': apgd.apgd_attack(logits_fn, x, y, norm='linf', epsilon=args.apgd_epsilon,
                                    num_steps=100),
        'fab100': fab.fab_attack(logits_fn, x, y, norm='linf', epsilon=args.fab_epsilon,
                                 num_steps=100, num_targets=1)}
    bare = _fwd_bwd_loop(logits_fn, x, y, 100)
    projections = _projection_loop(x, 100)
    predicted = tf.argmax(logits_fn(x), -1, output_type=tf.int32)
    session = tf1.Session()
    session.run(tf1.global_variables_initializer())
    if restore_fn:
      restore_fn(session)
    batch = images
    feed = {x: batch, y: session.run(predicted, {x: batch})}
    session.run([attacks, bare, projections], feed)  # Warm-up.
    ratios = {(name, clock): [] for name in attacks for clock in ('cpu', 'wall')}
    projection_share, fab_passes = [], []
    for _ in range(args.rounds):
      bare_seconds, _ = _seconds(session.run, bare, feed)
      projection_seconds, _ = _seconds(session.run, projections, feed)
      runs = {}
      for name, attack in attacks.items():
        runs[name] = seconds, out = _seconds(session.run, attack, feed)
        for clock in ('cpu', 'wall'):
          ratios[name, clock].append((seconds[clock] / out['gradient_passes'])
                                     / (bare_seconds[clock] / (100 * len(batch))))
      fab_seconds, fab_out = runs['fab100']
      projection_share.append(projection_seconds['cpu'] / fab_seconds['cpu'])
      fab_passes.append(fab_out['gradient_passes'] / (101 * len(batch)))
    session.close()
  for name in attacks:
    print('%s_over_100_fwd_bwd=%.2f (process CPU time; wall time %.2f), median of %d '
          'rounds, per gradient pass, batch %d' % (name, np.median(ratios[name, 'cpu']),
                                                   np.median(ratios[name, 'wall']),
                                                   args.rounds, len(batch)))
  print('fab100: fab_passes_per_example_iteration=%.2f, projection_share_of_fab100=%.2f '
        '(100 projections of 2 x %d points alone, process CPU time), median of %d rounds'
        % (np.median(fab_passes), np.median(projection_share), len(batch), args.rounds))


def _seconds(run, *args):
  """({'cpu': process CPU seconds, 'wall': seconds}, run's result).

  CPU time counts this process's work on every thread, so it is the steadier
  measure on a machine other jobs share.
  """
  cpu, wall = time.process_time(), time.perf_counter()
  result = run(*args)
  return {'cpu': time.process_time() - cpu, 'wall': time.perf_counter() - wall}, result


def main():
  """Parses the flags and prints both comparisons."""
  parser = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  add = parser.add_argument
  add('--depth', type=int, default=10)
  add('--width', type=int, default=1)
  add('--model_dir', help='A trained model to use instead of a random WRN.')
  add('--data_dir', help='CIFAR-10 folder for real test images (default: noise).')
  add('--num_examples', type=int, default=100)
  add('--batch_size', type=int, default=100)
  add('--apgd_steps', type=int, default=100)
  add('--apgd_targets', type=int, default=9)
  add('--fab_targets', type=int, default=9)
  add('--fab_steps', type=int, default=100)
  add('--square_queries', type=int, default=5000)
  add('--norms', default='linf,l2')
  add('--epsilons', help='Comma list of radii for every norm; default the Figure 1-2 grid.')
  add('--apgd_epsilon', type=float, default=1.0, help='Radius of the APGD-100 timing.')
  add('--fab_epsilon', type=float, default=0.0, help='Radius of the FAB-100 timing.')
  add('--timing_batch', type=int, default=256, help='Batch of the APGD-100 and FAB-100 timing.')
  add('--rounds', type=int, default=5)
  args = parser.parse_args()
  logits_fn, restore_fn = _model(args)
  images = _images(args, args.num_examples)
  for norm in [name for name in args.norms.split(',') if name]:
    _compare_sweeps(args, logits_fn, restore_fn, images, norm)
  _per_pass(args, logits_fn, restore_fn, _images(args, args.timing_batch))


if __name__ == '__main__':
  main()
