"""Atomic JSON files: a reader never sees a half-written result or params file."""
import json
import math
import os
import tempfile


def atomic_write_json(path, obj):
  """Writes `obj` as JSON to `path` through a temp file, fsync and rename.

  NaN and infinities are refused (`allow_nan=False`) so every file written here
  is strict JSON that any reader accepts.
  """
  directory = os.path.dirname(os.path.abspath(path))
  os.makedirs(directory, exist_ok=True)
  text = json.dumps(obj, indent=2, sort_keys=True, allow_nan=False)
  fd, tmp = tempfile.mkstemp(prefix='.' + os.path.basename(path) + '.', dir=directory)
  try:
    with os.fdopen(fd, 'w') as f:
      f.write(text + '\n')
      f.flush()
      os.fsync(f.fileno())
    os.replace(tmp, path)
  except BaseException:
    if os.path.exists(tmp):
      os.remove(tmp)
    raise


def read_json(path):
  """Reads a JSON file, raising ValueError naming the file when it is not valid."""
  try:
    with open(path) as f:
      return json.load(f, parse_constant=_refuse_constant)
  except (ValueError, UnicodeDecodeError) as e:  # JSONDecodeError is a ValueError.
    raise ValueError('%s is not valid JSON: %s' % (path, e)) from e


def _refuse_constant(name):
  raise ValueError('non-finite number %s (NaN or Infinity is not allowed)' % name)


def is_finite_number(value):
  """True for an int or float that is neither NaN nor infinite (bools excluded)."""
  return (isinstance(value, (int, float)) and not isinstance(value, bool)
          and math.isfinite(value))
