"""A study's wall time over every invocation, kept beside its models.

A study resumes: stopped and started again, it trains nothing twice. Its summary must
then report the time of all its invocations, not only the last one's (the first full
run of study 2 reported 59 minutes for a study that took 151). Each progress line
records this invocation's minutes in `<model_root>/wall_time.json`, so an invocation
that is killed loses at most the time since its last line.
"""
import os
import time

from resnet_ceb import fileio

LEDGER = 'wall_time.json'


class WallClock:
  """Minutes since this invocation started, and over all invocations of the study."""

  def __init__(self, model_root, now=time.time):
    """Reads the earlier invocations' minutes from model_root's ledger, if there is one.

    Args:
      model_root: the study's folder; the ledger is `LEDGER` inside it.
      now: the clock, in seconds (tests pass a fake one).

    Raises:
      ValueError: the ledger exists but is not a list of non-negative minutes.
    """
    self._path = os.path.join(model_root, LEDGER)
    self._now = now
    self._started = now()
    self._earlier = _read_ledger(self._path)

  def minutes(self):
    """Minutes since this invocation started."""
    return (self._now() - self._started) / 60

  def total_minutes(self):
    """Minutes of every invocation so far, this one included."""
    return sum(self._earlier) + self.minutes()

  def invocations(self):
    """How many invocations the total adds up, this one included."""
    return len(self._earlier) + 1

  def record(self):
    """Writes every invocation's minutes, this one's as of now, to the ledger."""
    minutes = [round(m, 4) for m in self._earlier + [self.minutes()]]
    fileio.atomic_write_json(self._path, {'invocation_minutes': minutes})


def _read_ledger(path):
  """The earlier invocations' minutes in the ledger at `path`; [] when there is none."""
  if not os.path.exists(path):
    return []
  minutes = fileio.read_json(path)
  minutes = minutes.get('invocation_minutes') if isinstance(minutes, dict) else None
  if not isinstance(minutes, list) or not all(
      fileio.is_finite_number(m) and m >= 0 for m in minutes):
    raise ValueError('%s: expected {"invocation_minutes": [non-negative minutes, ...]}, '
                     'the wall time of each earlier invocation of this study; delete it to '
                     'count from now' % path)
  return list(minutes)
