"""Throughput of the in-graph PGD attack (eval.pgd) against two references.

On one small randomly initialized BN-free WRN (CEB head, eval mode) and one
fixed batch, in one process, rounds interleave three ways of running n L-inf
steps so that machine noise hits all of them alike:

(a) ingraph:  `eval.pgd.pgd_attack`, one `session.run` for all n steps.
(b) feedloop: one `session.run` of the input gradient per step, feeding the
    current batch back through a placeholder and projecting in numpy, the way
    Madry et al.'s TF1 `LinfPGDAttack.perturb` does.
(c) fwdbwd:   n forward-backward passes and nothing else, in the same kind of
    in-graph while_loop as (a) but with the update x <- x + a*sign(g) and no
    projection or clipping. This isolates what the attack logic costs on top
    of the gradients it needs. The other reference, n `session.run` calls of
    the gradient, would add the per-call dispatch and feed overhead that (b)
    measures, and so would flatter (a).

Prints seconds per attack (median and min over rounds) and, last,
`ingraph_over_feedloop_speedup=S attack_over_n_fwd_bwd=T` with
S = time(b) / time(a) and T = time(a) / time(c), each the median over rounds
of that round's ratio.

    python -m benchmarks.pgd_throughput [--depth 10 --width 1 --batch_size 256]
"""
import argparse
import os
import time

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '3')

import numpy as np  # pylint: disable=g-import-not-at-top
import tensorflow as tf  # pylint: disable=g-import-not-at-top

from eval import pgd  # pylint: disable=g-import-not-at-top
from eval import settings  # pylint: disable=g-import-not-at-top
from wrn_cifar import wrn_main  # pylint: disable=g-import-not-at-top

tf1 = tf.compat.v1


def _input_gradient(logits_fn, x, labels):
  """The input gradient d CE(labels) / dx of the batch x."""
  loss = tf.reduce_sum(tf.nn.sparse_softmax_cross_entropy_with_logits(
      labels=labels, logits=logits_fn(x)))
  return tf.gradients(loss, x)[0]


def _fwd_bwd_loop(logits_fn, x, labels, num_steps, step_size):
  """The n gradient steps of (c) in one while_loop, without projection or clipping."""
  def body(i, current):
    return i + 1, current + step_size * tf.sign(_input_gradient(logits_fn, current, labels))

  _, final = tf.while_loop(lambda i, _: i < num_steps, body, (tf.constant(0), x),
                           parallel_iterations=1)
  return final


def _build(args):
  """The session, the fed batch and one callable per variant."""
  rng = np.random.RandomState(0)
  batch = rng.randint(0, 256, (args.batch_size, 32, 32, 3)).astype(np.float32)
  labels = rng.randint(0, 10, args.batch_size).astype(np.int32)
  step_size = settings.pgd_step_size(args.epsilon, args.num_steps)
  graph = tf.Graph()
  with graph.as_default():
    logits_fn = wrn_main.eval_logits_fn(
        {'depth': args.depth, 'width': args.width, 'loss': 'ceb', 'num_classes': 10})
    x = tf1.placeholder(tf.float32, batch.shape)
    y = tf1.placeholder(tf.int32, labels.shape)
    attack = pgd.pgd_attack(logits_fn, x, y, norm='linf', epsilon=args.epsilon,
                            num_steps=args.num_steps)
    gradient = _input_gradient(logits_fn, x, y)
    fwd_bwd = _fwd_bwd_loop(logits_fn, x, y, args.num_steps, step_size)
    session = tf1.Session(graph=graph)
    session.run(tf1.global_variables_initializer())

  def feed_loop():
    current = batch.copy()
    for _ in range(args.num_steps):
      g = session.run(gradient, {x: current, y: labels})
      current = np.clip(current + step_size * np.sign(g), batch - args.epsilon,
                        batch + args.epsilon)
      current = np.clip(current, 0.0, 255.0)
    return current

  feed = {x: batch, y: labels}
  return {'ingraph': lambda: session.run(attack, feed),
          'feedloop': feed_loop,
          'fwdbwd': lambda: session.run(fwd_bwd, feed)}


def _seconds(run):
  start = time.perf_counter()
  run()
  return time.perf_counter() - start


def _report(times, args):
  """Prints per-variant times and the ratio line (medians of per-round ratios)."""
  print('WRN-%d-%d, batch %d, %d steps, %d rounds; seconds per attack:'
        % (args.depth, args.width, args.batch_size, args.num_steps, args.rounds))
  for name, values in times.items():
    print('  %-8s median %.3f  min %.3f  (median %.1f ms/step)' % (
        name, np.median(values), np.min(values), 1e3 * np.median(values) / args.num_steps))
  # Each round times the variants back to back, so per-round ratios cancel
  # most of the drift in load from other processes on a shared machine.
  rounds = [dict(zip(times, values)) for values in zip(*times.values())]
  speedup = np.median([r['feedloop'] / r['ingraph'] for r in rounds])
  overhead = np.median([r['ingraph'] / r['fwdbwd'] for r in rounds])
  print('ingraph_over_feedloop_speedup=%.2f attack_over_n_fwd_bwd=%.2f'
        % (speedup, overhead))


def main():
  """Builds the three variants, times them in interleaved rounds, prints."""
  parser = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument('--depth', type=int, default=10)
  parser.add_argument('--width', type=int, default=1)
  parser.add_argument('--batch_size', type=int, default=256)
  parser.add_argument('--num_steps', type=int, default=settings.PGD_NUM_STEPS)
  parser.add_argument('--epsilon', type=float, default=8.0)
  parser.add_argument('--rounds', type=int, default=7)
  args = parser.parse_args()
  variants = _build(args)
  for run in variants.values():
    run()  # Warm-up: graph optimization and allocation.
  times = {name: [] for name in variants}
  for _ in range(args.rounds):
    for name, run in variants.items():
      times[name].append(_seconds(run))
  _report(times, args)


if __name__ == '__main__':
  main()
