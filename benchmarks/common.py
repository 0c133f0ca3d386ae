"""Timing shared by the input-pipeline benchmarks: interleaved rounds, medians."""
import statistics
import time


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
