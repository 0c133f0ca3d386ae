"""The flags that mean the same in both trainers, declared once.

As the TPU ResNet reference keeps its shared flags outside the model files
(`common_tpu_flags`), wrn_cifar.wrn_main and resnet_ceb.resnet_main each call
`define_flags` here with their own defaults, then declare only their own
flags. The trainers adopt these as their key flags, so `--help` lists them.
"""
from absl import flags

from resnet_ceb import ceb
from resnet_ceb import precision

MODES = ('train', 'eval', 'train_and_eval')


def define_flags(flag_values, *, train_batch_size, eval_batch_size, num_train_images,
                 num_eval_images, iterations_per_loop, base_learning_rate, augment_name):
  """Declares the shared flags on `flag_values` with one trainer's defaults.

  Args:
    flag_values: the FlagValues to declare on (absl's FLAGS for a command).
    train_batch_size: default global training batch.
    eval_batch_size: default evaluation batch.
    num_train_images: default training images per epoch (None: all).
    num_eval_images: default images evaluated (None: all).
    iterations_per_loop: default steps per TPU loop and log line.
    base_learning_rate: default of --base_learning_rate.
    augment_name: default training augmentation.
  """
  fv = {'flag_values': flag_values}
  _define_data_flags(fv)
  flags.DEFINE_string('model_dir', None, 'Checkpoints, summaries and params.json.', **fv)
  flags.DEFINE_enum('mode', 'train_and_eval', list(MODES), 'What to run.', **fv)
  flags.DEFINE_integer('train_batch_size', train_batch_size, 'Global training batch.', **fv)
  flags.DEFINE_integer('eval_batch_size', eval_batch_size, 'Evaluation batch.', **fv)
  flags.DEFINE_integer('num_train_images', num_train_images, 'Training images per epoch '
                       '(CIFAR trains on the first N; unset: all).', **fv)
  flags.DEFINE_integer('num_eval_images', num_eval_images, 'Images evaluated: the first '
                       'N of the evaluation set (unset: all).', **fv)
  flags.DEFINE_integer('iterations_per_loop', iterations_per_loop, 'Steps per TPU loop; '
                       'also the logging period.', **fv)
  flags.DEFINE_float('base_learning_rate', base_learning_rate, "Learning rate: Adam's "
                     'for CIFAR; for ImageNet the rate at batch 256, scaled by batch / '
                     '256 (0.05: 1.6 at 8192).', **fv)
  flags.DEFINE_string('augment_name', augment_name, "'autoaugment' (the data set's "
                      "AutoAugment policy), or none: 'none' for CIFAR, unset for "
                      'ImageNet.', **fv)
  flags.DEFINE_string('loss', 'ceb', 'Objective: %s.' % ', '.join(ceb.LOSSES), **fv)
  flags.DEFINE_float('rho', 3.0, 'CEB/VIB control parameter rho (gamma = e^-rho).', **fv)
  flags.DEFINE_enum('cceb_prior', ceb.PRIORS[0], list(ceb.PRIORS), "cCEB's p(y) (Eq. 11): "
                    "'uniform', or 'empirical', the training labels' frequencies (CIFAR "
                    'only; --loss=cceb only).', **fv)
  _define_device_flags(fv)


def _define_data_flags(fv):
  """Where the data comes from."""
  flags.DEFINE_string('data_dir', None, 'CIFAR-10: the python or binary distribution '
                      '(or a folder holding one; unset: tfds cifar10). ImageNet: a folder '
                      'of train-* / validation-* TFRecords (see resnet_ceb.make_tfrecords).',
                      **fv)
  flags.DEFINE_bool('fake_data', False, 'Random images, for plumbing only.', **fv)


def _define_device_flags(fv):
  """Where the model runs, and how reproducibly."""
  flags.DEFINE_bool('use_tpu', False, 'Run on a Cloud TPU.', **fv)
  flags.DEFINE_string('tpu', None, 'TPU name or address, with --use_tpu.', **fv)
  flags.DEFINE_integer('num_gpus', 0, 'More than 1: MirroredStrategy over that many GPUs.',
                       **fv)
  flags.DEFINE_bool('deterministic', False, 'Op determinism and fixed seeds.', **fv)
  flags.DEFINE_integer('seed', 0, 'Seed used with --deterministic.', **fv)
  # A string, not an enum: a bad value is then the trainers' `error: ...`, exit 2.
  flags.DEFINE_string('precision', None, "Arithmetic of the network's convs and matmuls: "
                      '%s (default: bfloat16 with --use_tpu, else float32). Variables, '
                      'checkpoints, the CEB head and the loss stay float32 '
                      '(resnet_ceb/precision.py).' % ' or '.join(precision.PRECISIONS), **fv)
  flags.DEFINE_bool('xla', False, 'XLA auto-clustering of the train step (one machine). '
                    'Measured slower on CPU (benchmarks/xla.py), so off by default.', **fv)
