"""Every relative link in README.md and docs/ resolves, and the README stays short.

A link's file part must name a file or folder that exists, relative to the page
that holds it. Its anchor, when it has one, must name a heading of the target
page (GitHub's slugs) or, on a code file, a line it has (#L123).
"""
import glob
import os
import re

from conftest import REPO_ROOT

README_MAX_LINES = 150
FENCE = re.compile(r'^\s*(```|~~~)')
CODE_SPAN = re.compile(r'`[^`]*`')
LINK = re.compile(r'!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+"[^"]*")?\s*\)')
HEADING = re.compile(r'^#{1,6}\s+(.*?)\s*#*\s*$')
LINE_ANCHOR = re.compile(r'^L(\d+)$')


def _pages():
  pages = [os.path.join(REPO_ROOT, 'README.md')]
  pages += glob.glob(os.path.join(REPO_ROOT, 'docs', '**', '*.md'), recursive=True)
  return sorted(pages)


def _prose_lines(path):
  """The lines of a Markdown page outside fenced code blocks."""
  with open(path, encoding='utf-8') as f:
    lines = f.read().splitlines()
  inside, prose = False, []
  for line in lines:
    if FENCE.match(line):
      inside = not inside
      continue
    if not inside:
      prose.append(line)
  return prose


def slug(heading):
  """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to '-'."""
  text = re.sub(r'\[([^\]]*)\]\([^)]*\)', r'\1', heading).lower()
  text = re.sub(r'[^\w\- ]', '', text)
  return text.replace(' ', '-')


def anchors(path):
  """Every heading anchor of a page, numbered as GitHub numbers repeats (-1, -2, ...)."""
  seen, found = {}, set()
  for line in _prose_lines(path):
    match = HEADING.match(line)
    if not match:
      continue
    base = slug(match.group(1))
    count = seen.get(base, 0)
    seen[base] = count + 1
    found.add(base if count == 0 else '%s-%d' % (base, count))
  return found


def links(path):
  """(line number, target) of every link and image outside code."""
  with open(path, encoding='utf-8') as f:
    lines = f.read().splitlines()
  inside, out = False, []
  for number, line in enumerate(lines, 1):
    if FENCE.match(line):
      inside = not inside
      continue
    if inside:
      continue
    for match in LINK.finditer(CODE_SPAN.sub('', line)):
      out.append((number, match.group(1)))
  return out


def problem(page, target):
  """Why a link target does not resolve, or None when it does."""
  if re.match(r'^[a-z][a-z0-9+.-]*:', target, re.IGNORECASE):
    return None  # http:, https:, mailto: are not checked here.
  file_part, _, anchor = target.partition('#')
  resolved = os.path.normpath(os.path.join(os.path.dirname(page), file_part)) if file_part else page
  if not os.path.exists(resolved):
    return 'no such file: %s' % os.path.relpath(resolved, REPO_ROOT)
  if not anchor:
    return None
  if resolved.endswith('.md'):
    if anchor not in anchors(resolved):
      return 'no heading #%s in %s' % (anchor, os.path.relpath(resolved, REPO_ROOT))
    return None
  line = LINE_ANCHOR.match(anchor)
  if not line or os.path.isdir(resolved):
    return 'anchor #%s on a file that is not Markdown' % anchor
  with open(resolved, encoding='utf-8') as f:
    length = len(f.read().splitlines())
  if not 1 <= int(line.group(1)) <= length:
    return '%s has %d lines, not line %s' % (os.path.relpath(resolved, REPO_ROOT), length,
                                             line.group(1))
  return None


def test_every_relative_link_resolves():
  broken, checked = [], 0
  for page in _pages():
    for number, target in links(page):
      checked += 1
      why = problem(page, target)
      if why:
        broken.append('%s:%d (%s): %s' % (os.path.relpath(page, REPO_ROOT), number, target, why))
  assert checked > 50, 'found only %d links; is the link pattern still right?' % checked
  assert not broken, '\n'.join(broken)


def test_readme_is_at_most_150_lines():
  with open(os.path.join(REPO_ROOT, 'README.md'), encoding='utf-8') as f:
    count = len(f.read().splitlines())
  assert count <= README_MAX_LINES, 'README.md has %d lines' % count


def test_slugs_follow_github():
  assert slug('The units of ε: `--pgd_space`') == 'the-units-of-ε---pgd_space'
  assert slug('Listings 1–3, line by line') == 'listings-13-line-by-line'
  assert slug('## 5. Where the paper is silent'.lstrip('# ')) == '5-where-the-paper-is-silent'
  assert slug('See [the audit](AUDIT.md) here') == 'see-the-audit-here'


def test_a_broken_link_and_a_missing_anchor_are_caught(tmp_path):
  page = tmp_path / 'page.md'
  page.write_text('# Top\n\n## A heading\n\n## A heading\n\n'
                  '```\n# not a heading\n[x](gone.md)\n```\n'
                  'See [ok](#a-heading-1), [bad](#not-a-heading), [gone](missing.md), '
                  '`[code](ignored.md)` and [web](https://example.com).\n')
  found = {target: problem(str(page), target) for _, target in links(str(page))}
  assert set(found) == {'#a-heading-1', '#not-a-heading', 'missing.md', 'https://example.com'}
  assert found['#a-heading-1'] is None and found['https://example.com'] is None
  assert 'no heading #not-a-heading' in found['#not-a-heading']
  assert 'no such file' in found['missing.md']
