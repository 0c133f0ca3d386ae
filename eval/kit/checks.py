"""Argument checks shared by the attacks and their command lines; no TensorFlow.

The attacks (eval.attacks.threat_model and the modules on it) validate their
arguments with these, and the command-line kit (eval.kit.cli) parses radii with
them, so the report and other TensorFlow-free readers can use the kit too.
"""
import math
import numbers

NORMS = ('linf', 'l2')
MAX_SEED = 2**32 - 1


def require(condition, message):
  """Raises ValueError(message) unless condition holds."""
  if not condition:
    raise ValueError(message)


def is_finite_real(value):
  """A real number (not a bool) that is finite."""
  return (isinstance(value, numbers.Real) and not isinstance(value, bool)
          and math.isfinite(value))


def is_int(value):
  """An integer (not a bool)."""
  return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def check_norm(value, name='norm'):
  """A threat model: 'linf' or 'l2'."""
  require(value in NORMS, '%s=%r is not one of %s' % (name, value, ', '.join(NORMS)))


def check_epsilon(value, name='epsilon'):
  """An attack radius: a finite real number >= 0 (0 reproduces clean accuracy)."""
  require(is_finite_real(value) and value >= 0,
          '%s=%r must be a finite number >= 0' % (name, value))


def check_num_steps(value, name='num_steps'):
  """A step count: an integer >= 1."""
  require(is_int(value) and value >= 1, '%s=%r must be an integer >= 1' % (name, value))


def check_step_size(value, name='step_size'):
  """A step size: None (the paper's default) or a finite number > 0."""
  require(value is None or (is_finite_real(value) and value > 0),
          '%s=%r must be a finite number > 0 (or None for 4/3*eps/n)' % (name, value))


def check_seed(value, name='seed'):
  """A seed numpy's RandomState accepts."""
  require(is_int(value) and 0 <= value <= MAX_SEED,
          '%s=%r must be an integer in [0, 2**32 - 1]' % (name, value))
