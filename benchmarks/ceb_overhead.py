"""CEB's cost over the XEnt baseline: train-step time of the same WRN, side by side.

Builds the trainer's model_fn twice (--loss=xent and --loss=ceb) in two graphs,
on the same fixed in-graph batch (no input pipeline, so only the model and its
head are timed), then alternates rounds of steps between them so machine noise
hits both alike. Prints the median step times and, last, the median of the
per-round ratios:
`ceb_over_xent_step_time_ratio=R`.

    python -m benchmarks.ceb_overhead [--depth 16 --width 4 --batch_size 128]
"""
import argparse
import os
import time

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '3')

import numpy as np  # pylint: disable=g-import-not-at-top
import tensorflow as tf  # pylint: disable=g-import-not-at-top

from wrn_cifar import wrn_main  # pylint: disable=g-import-not-at-top

tf1 = tf.compat.v1


def _train_step(loss, args):
  """A session and train op of the CIFAR model_fn for one objective."""
  graph = tf.Graph()
  with graph.as_default():
    rng = np.random.RandomState(0)
    images = tf.constant(rng.randint(0, 256, (args.batch_size, 32, 32, 3)), tf.float32)
    labels = tf.constant(rng.randint(0, 10, args.batch_size), tf.int32)
    params = {'depth': args.depth, 'width': args.width, 'loss': loss, 'rho': 3.0,
              'jump_start': True, 'steps_per_epoch': 100, 'train_epochs': 10,
              'base_learning_rate': 1e-3, 'use_tpu': False,
              'batch_size': args.batch_size, 'max_steps': 1000, 'log_every_n_steps': 100}
    tf1.train.get_or_create_global_step()
    spec = wrn_main.wrn_model_fn(images, labels, tf.estimator.ModeKeys.TRAIN, params)
    session = tf1.Session(graph=graph)
    session.run(tf1.global_variables_initializer())
  return session, spec.train_op


def _time_steps(session, train_op, steps):
  start = time.perf_counter()
  for _ in range(steps):
    session.run(train_op)
  return (time.perf_counter() - start) / steps


def main():
  """Measures both heads in paired rounds and prints the ratio."""
  parser = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument('--depth', type=int, default=16)
  parser.add_argument('--width', type=int, default=4)
  parser.add_argument('--batch_size', type=int, default=64)
  parser.add_argument('--rounds', type=int, default=7)
  parser.add_argument('--steps', type=int, default=5, help='steps per round')
  args = parser.parse_args()
  runs = {loss: _train_step(loss, args) for loss in ('xent', 'ceb')}
  for session, train_op in runs.values():
    _time_steps(session, train_op, 2)  # Warm-up.
  times = {loss: [] for loss in runs}
  for i in range(args.rounds):
    order = ('xent', 'ceb') if i % 2 == 0 else ('ceb', 'xent')
    for loss in order:
      times[loss].append(_time_steps(*runs[loss], args.steps))
  medians = {loss: float(np.median(t)) for loss, t in times.items()}
  # Each round's two measurements are adjacent in time, so their ratio cancels
  # most of the machine's drift; report the median of those ratios.
  ratio = float(np.median(np.array(times['ceb']) / np.array(times['xent'])))
  print('WRN-%d-%d batch %d, %d rounds x %d steps: median step xent %.4fs, ceb %.4fs'
        % (args.depth, args.width, args.batch_size, args.rounds, args.steps,
           medians['xent'], medians['ceb']))
  print('ceb_over_xent_step_time_ratio=%.3f' % ratio)


if __name__ == '__main__':
  main()
