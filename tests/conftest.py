"""Shared test set-up: quiet TensorFlow logs, locate the real data, isolate tests."""
import os

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '3')

# pylint: disable=g-import-not-at-top
import pytest
from tensorflow.python.framework import config as tf_config

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED_DATA = os.path.join(os.path.dirname(REPO_ROOT), 'shared', 'data')


@pytest.fixture(autouse=True)
def _reset_op_determinism():
  """Switches op determinism off again after each test.

  An in-process `--deterministic` run turns it on for the whole process (as
  it should for a trainer); the next test then runs as a fresh process would.
  """
  yield
  if tf_config.is_op_determinism_enabled():
    tf_config.disable_op_determinism()
