"""docs/LISTINGS.md points at the lines that implement Listings 1-3."""
import os
import re

from conftest import REPO_ROOT

ROW = re.compile(r'^\| \d+ \| `.*` \| \[([\w/.]+):(\d+)\]\(\.\./[\w/.]+#L\d+\) \| `(.*)` \|')


def _rows():
  with open(os.path.join(REPO_ROOT, 'docs', 'LISTINGS.md')) as f:
    return [ROW.match(line) for line in f if line.startswith('| ') and '#L' in line]


def test_every_mapped_line_holds_the_quoted_code():
  rows = _rows()
  assert all(rows)
  # Listing 1 has 5 lines (+ the WRN), Listing 2 has 17 and Listing 3 has 28 mapped.
  assert len(rows) >= 50
  for match in rows:
    path, line, code = match.group(1), int(match.group(2)), match.group(3)
    with open(os.path.join(REPO_ROOT, path)) as f:
      lines = f.read().splitlines()
    assert code in lines[line - 1], '%s:%d no longer holds %r' % (path, line, code)


def test_listing_3_defects_are_named():
  with open(os.path.join(REPO_ROOT, 'docs', 'LISTINGS.md')) as f:
    text = f.read()
  assert '`aneal_rho` is a typo for `anneal_rho`' in text
  assert '`cyz_dist(z, params)` passes params where `num_classes` is meant' in text
