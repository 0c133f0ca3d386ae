"""Shared helpers for the evaluation tests: tiny models and direct predictions.

`make_model_dir` writes by hand what a trainer would leave behind (params.json
and a checkpoint of randomly initialized variables), so evaluations can be
tested on a 1000-class model without training one. `direct_logits` computes a
model's logits in a plain session, independently of `eval.kit.runner.predict`, to
check the evaluations against.
"""
import io
import os

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '3')

import numpy as np  # pylint: disable=g-import-not-at-top
from PIL import Image
import pytest
import tensorflow as tf

from resnet_ceb import train_utils
from wrn_cifar import wrn_main

tf1 = tf.compat.v1


def make_model_dir(model_dir, num_classes=1000, image_size=32, loss='xent', seed=0):
  """Writes a tiny BN-free WRN (depth 10, width 1) model_dir with one checkpoint.

  Args:
    model_dir: directory to create.
    num_classes: size of the classifier's output.
    image_size: the input size recorded in params.json.
    loss: the head ('xent', 'ceb', ...); its eval-mode logits are evaluated.
    seed: graph seed of the random initialization.

  Returns:
    model_dir.
  """
  params = {'trainer': 'wrn_cifar', 'dataset': 'test', 'depth': 10, 'width': 1,
            'loss': loss, 'rho': 3.0, 'num_classes': num_classes,
            'image_size': image_size}
  identity = {k: params[k] for k in ('trainer', 'depth', 'width', 'loss')}
  os.makedirs(model_dir, exist_ok=True)
  train_utils.write_params(model_dir, identity, params)
  with tf.Graph().as_default():
    tf1.set_random_seed(seed)
    images = tf1.placeholder(tf.float32, [None, image_size, image_size, 3])
    wrn_main.eval_logits_fn(params)(images)
    step = tf1.train.get_or_create_global_step()
    with tf1.Session() as session:
      session.run(tf1.global_variables_initializer())
      session.run(step.assign(7))
      tf1.train.Saver().save(session, os.path.join(model_dir, 'model.ckpt'),
                             global_step=step)
  return model_dir


def direct_logits(model_dir, images):
  """Logits of a model_dir's latest checkpoint on a float pixel batch, in one session."""
  params = train_utils.read_params(model_dir)
  images = np.asarray(images, np.float32)
  with tf.Graph().as_default():
    inputs = tf1.placeholder(tf.float32, [None] + list(images.shape[1:]))
    logits = wrn_main.eval_logits_fn(params)(inputs)
    with tf1.Session() as session:
      tf1.train.Saver().restore(session, tf1.train.latest_checkpoint(model_dir))
      return session.run(logits, {inputs: images})


def jpeg_bytes(image):
  """Encodes a uint8 [H, W, 3] image as JPEG bytes with PIL."""
  buffer = io.BytesIO()
  Image.fromarray(image).save(buffer, format='JPEG', quality=90)
  return buffer.getvalue()


def decode_jpeg(contents):
  """Decodes JPEG bytes with TensorFlow, the decoder the evaluations use, as float32."""
  return tf.io.decode_jpeg(contents, channels=3).numpy().astype(np.float32)


def write_file(path, contents):
  """Writes bytes to path, creating its folder."""
  os.makedirs(os.path.dirname(path), exist_ok=True)
  with open(path, 'wb') as f:
    f.write(contents)


def cli_error(main, argv, capsys):
  """Runs a CLI expected to refuse its input; returns its `error: ...` line."""
  capsys.readouterr()
  with pytest.raises(SystemExit) as exit_info:
    main(argv)
  assert exit_info.value.code == 2
  lines = [line for line in capsys.readouterr().err.splitlines()
           if line.startswith('error: ')]
  assert lines, 'no "error: " line on stderr'
  return lines[-1]


def random_images(count, height, width, seed):
  """uint8 noise images [count, height, width, 3], smoothed so JPEG keeps them apart."""
  rng = np.random.RandomState(seed)
  coarse = rng.randint(0, 256, size=(count, (height + 7) // 8, (width + 7) // 8, 3))
  images = coarse.repeat(8, axis=1).repeat(8, axis=2)[:, :height, :width]
  return images.astype(np.uint8)
