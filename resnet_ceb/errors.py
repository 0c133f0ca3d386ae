"""The one way every command reports bad input: `error: ...` on stderr and exit 2.

Bad input (a flag, a file, a model_dir) raises ValueError or FileNotFoundError
deep in the library; the command's entry point turns it into one line and a
non-zero status before anything is half-written. A training run whose loss
stops being finite exits 1 instead: the input was fine, the run diverged.
"""
import contextlib
import sys

BAD_INPUT_STATUS = 2
DIVERGED_STATUS = 1
BAD_INPUT_ERRORS = (ValueError, FileNotFoundError)


def fail(error, status=BAD_INPUT_STATUS):
  """Prints `error: <message>` to stderr and exits with `status`."""
  print('error: %s' % error, file=sys.stderr)
  sys.exit(status)


@contextlib.contextmanager
def exit_on_bad_input(diverged=()):
  """Runs a command's body; bad input exits 2, the `diverged` errors exit 1."""
  try:
    yield
  except diverged as e:  # pylint: disable=catching-non-exception
    fail(e, DIVERGED_STATUS)
  except BAD_INPUT_ERRORS as e:
    fail(e)
