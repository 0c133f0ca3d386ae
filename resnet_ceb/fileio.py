"""Atomic files: a reader never sees a half-written result, params file or report."""
import json
import math
import os
import secrets


def atomic_write_bytes(path, data):
  """Writes bytes to `path` through a temp file in the same folder, fsync and rename.

  The temp file is opened with mode 0666 less the umask, so the result has the
  permissions a plain open() would give (mkstemp's 0600 would hide it from
  other readers). A killed write leaves at most a hidden `.<name>.<hex>` file.
  """
  directory = os.path.dirname(os.path.abspath(path))
  os.makedirs(directory, exist_ok=True)
  tmp = os.path.join(directory, '.%s.%s' % (os.path.basename(path), secrets.token_hex(8)))
  fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
  try:
    with os.fdopen(fd, 'wb') as f:
      f.write(data)
      f.flush()
      os.fsync(f.fileno())
    os.replace(tmp, path)
  except BaseException:
    if os.path.exists(tmp):
      os.remove(tmp)
    raise


def atomic_write_text(path, text):
  """Writes `text` as UTF-8 to `path` atomically (see `atomic_write_bytes`)."""
  atomic_write_bytes(path, text.encode('utf-8'))


def atomic_write_json(path, obj):
  """Writes `obj` as JSON to `path` atomically (see `atomic_write_bytes`).

  NaN and infinities are refused (`allow_nan=False`) so every file written here
  is strict JSON that any reader accepts.
  """
  text = json.dumps(obj, indent=2, sort_keys=True, allow_nan=False)
  atomic_write_text(path, text + '\n')


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
