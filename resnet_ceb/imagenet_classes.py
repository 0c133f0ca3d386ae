"""The ImageNet-1k class list: one home for the wnids and the class count.

Class i is the i-th wnid in sorted order (the convention of the TPU reference's
TFRecords, whose 1-based `image/class/label` is 1 + i). The list ships beside
this module as `data/imagenet_wnids_sorted.txt`; the trainer, the TFRecord
maker and the ImageNet-C / ImageNet-A evaluations all read it from here.
"""
import functools
import os

NUM_CLASSES = 1000
WNIDS_FILE = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'data',
                          'imagenet_wnids_sorted.txt')


def load_wnids(path=WNIDS_FILE):
  """The ImageNet wnids of a file, checked: 1000 of them, sorted, no repeats.

  Args:
    path: a text file of whitespace-separated wnids; default the shipped list.

  Returns:
    A tuple of the 1000 wnids; class i is the i-th.

  Raises:
    ValueError: the file does not list 1000 distinct wnids in sorted order.
  """
  with open(path) as f:
    wnids = tuple(f.read().split())
  if len(set(wnids)) != NUM_CLASSES or list(wnids) != sorted(wnids):
    raise ValueError('%s must list the %d ImageNet wnids in sorted order, once each'
                     % (path, NUM_CLASSES))
  return wnids


@functools.lru_cache(maxsize=None)
def imagenet_wnids():
  """The shipped 1000 wnids in sorted order (read once)."""
  return load_wnids()


def class_index():
  """{wnid: class index} for the 1000 classes."""
  return {wnid: i for i, wnid in enumerate(imagenet_wnids())}
