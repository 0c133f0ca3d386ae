"""The command-line kit every `python -m eval.*` command shares.

One parser class whose flag errors become `error: ...` with exit status 2
(resnet_ceb.errors), one epsilon-list parser, the model flags and the default
result path, so that every evaluation's command line behaves the same.
"""
import argparse

from eval.kit import checks
from eval.kit import results
from resnet_ceb import errors


class ArgumentParser(argparse.ArgumentParser):
  """An argparse parser whose flag errors reach `run_cli` as ValueError."""

  def error(self, message):
    """Raises the flag error instead of printing usage and exiting."""
    raise ValueError('%s (see --help)' % message)


def run_cli(parser, run, argv=None):
  """Parses argv and returns `run(args)`; bad input exits 2 with `error: <message>`."""
  with errors.exit_on_bad_input():
    return run(parser.parse_args(argv))


def add_model_flags(parser):
  """The flags every evaluation shares: which model and checkpoint."""
  parser.add_argument('--model_dir', required=True, help="A trainer's model_dir.")
  parser.add_argument('--checkpoint', help='Checkpoint prefix; default: the latest.')


def add_output_flag(parser):
  """--output: where the result file goes (default under model_dir/results)."""
  parser.add_argument('--output', help='Result file; default under model_dir/results.')


def output_path(args, model, evaluation):
  """--output, or the evaluation's default result file under the model_dir."""
  return args.output or results.default_path(model.model_dir, evaluation, model.step)


def epsilon_key(epsilon):
  """The result item key of an epsilon: 'eps=8', 'eps=0.5'."""
  short = '%g' % epsilon
  return 'eps=' + (short if float(short) == epsilon else repr(float(epsilon)))


def parse_epsilons(text, flag='--epsilons'):
  """'0,2,8' -> [0.0, 2.0, 8.0]: finite, >= 0, none twice; ValueError names `flag`."""
  epsilons = []
  for part in text.split(','):
    if not part.strip():
      continue
    try:
      value = float(part)
    except ValueError:
      raise ValueError('%s=%s: %r is not a number' % (flag, text, part.strip())) from None
    checks.check_epsilon(value, flag)
    if epsilon_key(value) in map(epsilon_key, epsilons):
      raise ValueError('%s=%s lists %g twice' % (flag, text, value))
    epsilons.append(value)
  if not epsilons:
    raise ValueError('%s=%r lists no radius' % (flag, text))
  return epsilons
