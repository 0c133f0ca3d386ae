"""Small CIFAR-10 datasets in the real python-version on-disk format."""
import os
import pickle

import numpy as np


def learnable_images(num, seed=0):
  """Images whose class is easy to learn: a per-class colour plus noise."""
  rng = np.random.RandomState(seed)
  labels = rng.randint(0, 10, num).astype(np.int64)
  palette = rng.randint(0, 256, (10, 3))
  images = palette[labels][:, None, None, :] + rng.randint(-20, 21, (num, 32, 32, 3))
  return np.clip(images, 0, 255).astype(np.uint8), labels


def write_python_batch(path, images, labels):
  """Writes one batch as the official pickles do: bytes keys, planar R, G, B rows."""
  data = images.transpose(0, 3, 1, 2).reshape(len(images), 3072)
  batch = {b'batch_label': b'generated', b'labels': [int(label) for label in labels],
           b'data': data, b'filenames': [b'x.png'] * len(images)}
  with open(path, 'wb') as f:
    pickle.dump(batch, f, protocol=2)


def write_cifar_python(root, num_train=320, num_test=100, seed=0):
  """Writes cifar-10-batches-py/ under root (5 train batches, odd sizes) and returns root."""
  folder = os.path.join(root, 'cifar-10-batches-py')
  os.makedirs(folder, exist_ok=True)
  images, labels = learnable_images(num_train + num_test, seed)
  splits = np.array_split(np.arange(num_train), 5)
  for i, rows in enumerate(splits):
    write_python_batch(os.path.join(folder, 'data_batch_%d' % (i + 1)),
                       images[rows], labels[rows])
  write_python_batch(os.path.join(folder, 'test_batch'),
                     images[num_train:], labels[num_train:])
  return str(root)


def snapshot(directory):
  """Every file under directory with its bytes, to show a failed run changed nothing."""
  result = {}
  for base, _, files in os.walk(directory):
    for name in files:
      path = os.path.join(base, name)
      with open(path, 'rb') as f:
        result[os.path.relpath(path, directory)] = f.read()
  return result
