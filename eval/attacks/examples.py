"""The test examples an attack reads, as an `examples_fn` (CIFAR-10 or ImageNet).

An `examples_fn()` returns an unbatched tf.data.Dataset of (float32 image in
pixels [0, 255], int32 label), built afresh in whatever graph calls it, so an
Estimator can build it inside its own graph. CIFAR-10 comes from
`wrn_cifar.cifar_input`; the ImageNet validation TFRecords come through the
ImageNet trainer's eval pipeline (`resnet_ceb.imagenet_input.ImageNetInput`),
so attacks see exactly the crops the trainer evaluates.
"""
import numpy as np
import tensorflow as tf

from eval.kit import checks
from resnet_ceb import imagenet_input
from wrn_cifar import cifar_input

DATASETS = ('cifar10', 'imagenet')


def add_flags(parser):
  """The flags that choose an attack's examples: --dataset, --data_dir, --fake_data."""
  add = parser.add_argument
  add('--dataset', choices=DATASETS, help="Default: the model's (params.json).")
  add('--data_dir', help='CIFAR-10 folder, or ImageNet validation TFRecords.')
  add('--fake_data', action='store_true', help='Random images, for plumbing only.')


def dataset_for(flag, model, attack):
  """The data set to attack: --dataset, else the one params.json records; checked.

  Args:
    flag: the --dataset value, or None.
    model: a `runner.LoadedModel`.
    attack: the attack's name for the error message, e.g. 'PGD'.
  """
  recorded = model.params.get('dataset')
  dataset = flag or recorded
  checks.require(dataset in DATASETS, '%s/params.json names dataset %r, which has no '
                 '%s input here; pass --dataset' % (model.model_dir, recorded, attack))
  checks.require(recorded in (None, dataset), '--dataset=%s, but the model was trained on '
                 '%s (%s/params.json)' % (dataset, recorded, model.model_dir))
  return dataset


def array_examples(images, labels):
  """An `examples_fn` over in-memory arrays (e.g. the CIFAR-10 test set).

  Args:
    images: [N, H, W, C] pixels (uint8 or float) in [0, 255].
    labels: [N] int labels.

  Returns:
    `examples_fn()` returning an unbatched tf.data.Dataset of (float32 image,
    int32 label). The arrays are handed over by `cifar_input.in_memory_dataset`,
    so they are not baked into the graph.
  """
  images, labels = np.asarray(images), np.asarray(labels, dtype=np.int32)
  checks.require(images.ndim == 4 and labels.shape == (len(images),),
                 'images must be [N, H, W, C] and labels [N], got %s and %s'
                 % (images.shape, labels.shape))

  def examples_fn():
    whole = cifar_input.in_memory_dataset(images, labels)
    return whole.map(lambda image, label: (tf.cast(image, tf.float32), label))

  return examples_fn


def imagenet_examples(data_dir, fake_data, batch_size, image_size):
  """The ImageNet validation TFRecords through the trainer's eval input pipeline."""
  checks.require(data_dir or fake_data, '--dataset=imagenet needs --data_dir (or --fake_data)')
  source = imagenet_input.ImageNetInput(
      is_training=False, data_dir=None if fake_data else data_dir, image_size=image_size)

  def examples_fn():
    batches = source.input_fn({'batch_size': batch_size})
    return batches.unbatch().map(
        lambda image, label: (tf.cast(image, tf.float32), tf.cast(label, tf.int32)))

  return examples_fn


def load_examples(dataset, data_dir, fake_data, num_examples, batch_size, image_size=224):
  """The test examples of `dataset` (at most num_examples) as an `examples_fn`.

  Args:
    dataset: 'cifar10' or 'imagenet'.
    data_dir: the CIFAR-10 folder (None: tfds) or the ImageNet TFRecords.
    fake_data: random images, for plumbing only.
    num_examples: take only the first N examples; None for all.
    batch_size: the ImageNet pipeline's read batch.
    image_size: the ImageNet eval crop (the model's); CIFAR images are 32x32.

  Returns:
    `examples_fn()` as described in the module docstring.

  Raises:
    ValueError: a bad count, or ImageNet without data.
  """
  checks.require(num_examples is None or (checks.is_int(num_examples) and num_examples >= 1),
                 '--num_examples=%r must be an integer >= 1' % (num_examples,))
  checks.require(dataset in DATASETS,
                 '--dataset=%r is not one of %s' % (dataset, ', '.join(DATASETS)))
  if dataset == 'imagenet':
    # Fake ImageNet never ends, so it needs a count.
    checks.require(num_examples or not fake_data,
                   '--dataset=imagenet --fake_data needs --num_examples')
    examples_fn = imagenet_examples(data_dir, fake_data, batch_size, image_size)
    if num_examples is None:
      return examples_fn
    return lambda: examples_fn().take(num_examples)
  images, labels = cifar_input.load_dataset(data_dir, 'test', fake_data)
  return array_examples(images[:num_examples], labels[:num_examples])
