"""What the benchmarks share: interleaved timing rounds, medians, the raw train loop.

The machine is shared and noisy, so each benchmark races its contenders in one
process, alternating short rounds so that noise hits all alike, and reports
medians (of per-round ratios where two contenders are compared).
"""
import statistics
import time

import numpy as np
import tensorflow as tf

tf1 = tf.compat.v1


def add_round_flags(parser):
  """--rounds, --steps and --warmup_steps: how many paired rounds of how many timed steps."""
  parser.add_argument('--rounds', type=int, default=5)
  parser.add_argument('--steps', type=int, default=5, help='timed steps per round')
  parser.add_argument('--warmup_steps', type=int, default=1,
                      help='untimed steps before each round')


def check_round_flags(parser, args):
  """Exits through parser.error unless the round flags are usable."""
  if args.rounds < 1 or args.steps < 1 or args.warmup_steps < 0:
    parser.error('--rounds and --steps must be positive, --warmup_steps >= 0')


def pull(iterator, steps):
  """Pulls `steps` batches and returns the seconds it took."""
  start = time.perf_counter()
  for _ in range(steps):
    next(iterator)
  return time.perf_counter() - start


def median_images_per_sec(iterators, batch_size, rounds, steps, warmup_steps):
  """Alternates timed rounds between pipelines so machine noise hits all alike.

  Each round first pulls `warmup_steps` untimed batches, draining what the
  prefetch buffer filled while another pipeline was timed.

  Args:
    iterators: dict name -> iterator over batches.
    batch_size: images per batch.
    rounds: timed rounds per pipeline.
    steps: timed batches per round.
    warmup_steps: untimed batches before each round.

  Returns:
    dict name -> median images/sec over the rounds.
  """
  rates = {name: [] for name in iterators}
  for _ in range(rounds):
    for name, iterator in iterators.items():
      pull(iterator, warmup_steps)
      rates[name].append(steps * batch_size / pull(iterator, steps))
  return {name: statistics.median(values) for name, values in rates.items()}


def clocks():
  """Wall and process-CPU seconds now, as an array so that differences subtract.

  On a shared machine CPU time is the steadier measure of a contender's own
  work: other processes stretch wall time but not this process's CPU time.
  """
  return np.array([time.perf_counter(), time.process_time()])


def paired_rounds(contenders, rounds):
  """Runs every contender once per round, reversing the order every other round.

  Measurements with the same index were taken next to each other in time, so
  ratios of them cancel most of a shared machine's drift.

  Args:
    contenders: dict name -> callable() returning one measurement (e.g. seconds).
    rounds: number of rounds.

  Returns:
    dict name -> list of the measurements, one per round.
  """
  names = list(contenders)
  results = {name: [] for name in names}
  for i in range(rounds):
    for name in names if i % 2 == 0 else reversed(names):
      results[name].append(contenders[name]())
  return results


def median_ratio(numerators, denominators):
  """The median over rounds of numerator / denominator, paired by round."""
  return statistics.median(n / d for n, d in zip(numerators, denominators))


def constant_batch_input_fn(image_size, num_classes):
  """An input_fn repeating one fixed batch of random pixels: input at no cost.

  The batch is drawn once in the input pipeline and cached, not embedded in
  the graph as a constant: a trainer's graph (and so its graph.pbtxt and
  checkpoint .meta files) stays the size it is with the real input.

  Args:
    image_size: height and width of the images.
    num_classes: labels are drawn from 0..num_classes-1.

  Returns:
    input_fn(params) -> Dataset of (float32 [B, S, S, 3] pixels in [0, 255],
    int32 [B] labels), B = params['batch_size'], the same batch forever.
  """
  def input_fn(params):
    shape = [params['batch_size'], image_size, image_size, 3]

    def draw(_):
      images = tf.random.stateless_uniform(shape, [1, 2], maxval=255.0)
      labels = tf.random.stateless_uniform(shape[:1], [3, 4], maxval=num_classes,
                                           dtype=tf.int32)
      return images, labels

    return tf.data.Dataset.from_tensors(0).map(draw).cache().repeat()

  return input_fn


class RawLoop:
  """A model_fn's train op run by a bare Session and nothing else: the floor.

  No hooks, summaries or checkpoints; the input comes from `input_fn` through
  a plain iterator.
  """

  def __init__(self, model_fn, input_fn, params, config=None):
    """Builds the graph and the session; `config` is a tf1.ConfigProto or None."""
    self.graph = tf.Graph()
    with self.graph.as_default():
      iterator = tf1.data.make_initializable_iterator(input_fn(params))
      features, labels = iterator.get_next()
      spec = model_fn(features, labels, tf.estimator.ModeKeys.TRAIN, params)
      self.train_op = spec.train_op
      self.session = tf1.Session(graph=self.graph, config=config)
      self.session.run([tf1.global_variables_initializer(), iterator.initializer])

  def run(self, steps):
    """Runs `steps` train steps and returns the seconds they took."""
    start = time.perf_counter()
    for _ in range(steps):
      self.session.run(self.train_op)
    return time.perf_counter() - start


def print_table(header, rows):
  """Prints rows of cells under a header, columns left-aligned to their widest cell."""
  cells = [list(map(str, header))] + [list(map(str, row)) for row in rows]
  widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
  for row in cells:
    print('  '.join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())
