"""The command-line kit every `python -m eval.*` command shares.

One parser class whose flag errors become `error: ...` with exit status 2
(resnet_ceb.errors), one epsilon-list parser, the model flags, --precision and
the default result path, so that every evaluation's command line behaves the
same.
"""
import argparse

from eval.kit import checks
from eval.kit import results
from resnet_ceb import errors
from resnet_ceb import precision as precision_lib

ATTACK_PRECISION_ERROR = (
    'bfloat16 is refused: attacks and the audit run in float32 only, since a bfloat16 '
    'input gradient can make an attack look weaker than it is')


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


def _precision(text):
  """An evaluation's --precision value: one of resnet_ceb.precision.PRECISIONS."""
  if text not in precision_lib.PRECISIONS:
    raise argparse.ArgumentTypeError('%r must be one of %s'
                                     % (text, ', '.join(precision_lib.PRECISIONS)))
  return text


def _attack_precision(text):
  """An attack's --precision value: float32 only."""
  if _precision(text) != precision_lib.FLOAT32:
    raise argparse.ArgumentTypeError(ATTACK_PRECISION_ERROR)
  return text


def add_precision_flag(parser, attack=False):
  """--precision of the restored network: float32 (default, whatever trained it).

  Clean accuracy and corruptions also take bfloat16; an attack (`attack=True`)
  refuses it, so a bad value stops the command before anything is written.
  """
  if attack:
    parser.add_argument('--precision', type=_attack_precision, default=precision_lib.FLOAT32,
                        help='float32 only: attacks never run in bfloat16.')
  else:
    parser.add_argument('--precision', type=_precision, default=precision_lib.FLOAT32,
                        help="The network's arithmetic: %s (default float32, whatever "
                             'trained the model).' % ' or '.join(precision_lib.PRECISIONS))


def add_output_flag(parser):
  """--output: where the result file goes (default under model_dir/results)."""
  parser.add_argument('--output', help='Result file; default under model_dir/results.')


def output_path(args, model, evaluation):
  """--output, or the evaluation's default result file under the model_dir."""
  return args.output or results.default_path(model.model_dir, evaluation, model.step,
                                             model.precision)


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
