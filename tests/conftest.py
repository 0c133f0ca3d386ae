"""Shared test set-up: quiet TensorFlow logs and locate the real data."""
import os

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '3')

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED_DATA = os.path.join(os.path.dirname(REPO_ROOT), 'shared', 'data')
