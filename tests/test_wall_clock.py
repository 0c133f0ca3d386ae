"""A study's wall time adds up over its invocations (studies/wall_clock.py)."""
import json

import pytest

from studies import wall_clock


class _Clock:
  """A clock the test moves by hand, in minutes."""

  def __init__(self):
    self.seconds = 1000.0

  def advance(self, minutes):
    self.seconds += 60 * minutes

  def __call__(self):
    return self.seconds


def test_a_resumed_study_counts_every_invocation_and_a_killed_one_up_to_its_last_record(
    tmp_path):
  now = _Clock()
  first = wall_clock.WallClock(str(tmp_path), now=now)
  assert first.invocations() == 1 and not (tmp_path / wall_clock.LEDGER).exists()
  now.advance(30)
  first.record()
  now.advance(5)  # Killed here: these 5 minutes were never recorded.
  second = wall_clock.WallClock(str(tmp_path), now=now)
  now.advance(12)
  assert second.minutes() == pytest.approx(12)
  assert second.total_minutes() == pytest.approx(42) and second.invocations() == 2
  second.record()
  ledger = json.loads((tmp_path / wall_clock.LEDGER).read_text())
  assert ledger == {'invocation_minutes': [30, 12]}
  third = wall_clock.WallClock(str(tmp_path), now=now)
  assert third.total_minutes() == pytest.approx(42) and third.invocations() == 3


def test_the_ledger_is_written_where_the_study_folder_will_be(tmp_path):
  clock = wall_clock.WallClock(str(tmp_path / 'new' / 'root'), now=_Clock())
  clock.record()
  assert json.loads((tmp_path / 'new' / 'root' / wall_clock.LEDGER).read_text()) == {
      'invocation_minutes': [0]}


@pytest.mark.parametrize('text', ['[1, 2]', '{"invocation_minutes": [1, -2]}',
                                  '{"invocation_minutes": [true]}',
                                  '{"invocation_minutes": ["3"]}', '{"minutes": [1]}',
                                  '{"invocation_minutes": [NaN]}', '{"invocation_minutes": [1'])
def test_a_bad_ledger_is_refused_with_its_path(tmp_path, text):
  (tmp_path / wall_clock.LEDGER).write_text(text)
  with pytest.raises(ValueError, match=wall_clock.LEDGER):
    wall_clock.WallClock(str(tmp_path))
