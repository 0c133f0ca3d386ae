"""Robustness over training: every kept checkpoint of a model, clean and under PGD.

Each checkpoint a trainer kept (oldest first) is restored into one graph and
measured on the same data: clean top-1 on the training images and on the test
images, and top-1 under untargeted PGD (the paper's n and step, eval.settings)
for each (norm, epsilon) asked, on the first test images. One graph and one
session serve every checkpoint, so a model's curve costs its attacks and little
more. The curve is written to `model_dir/results/checkpoint_curve.json`
atomically after every checkpoint; a re-run skips the checkpoints already
measured, and refuses a file made with other settings.
"""
import os

import numpy as np
import tensorflow as tf

from eval import settings
from eval.kit import runner
from eval.pgd import attack
from resnet_ceb import fileio

tf1 = tf.compat.v1

EVALUATION = 'checkpoint_curve'


def checkpoint_paths(model_dir):
  """The model's kept checkpoint prefixes, oldest first."""
  state = tf1.train.get_checkpoint_state(model_dir)
  paths = list(state.all_model_checkpoint_paths) if state else []
  if not paths:
    raise FileNotFoundError('--model_dir=%s holds no checkpoint' % model_dir)
  return paths


def attack_key(norm, epsilon):
  """The curve's field for one attack, e.g. 'pgd_linf_4'."""
  return 'pgd_%s_%g' % (norm, epsilon)


def _check_attacks(attacks):
  for norm, epsilon in attacks:
    if norm not in ('linf', 'l2') or not epsilon > 0:
      raise ValueError('attack (%r, %r): expected norm linf or l2 and epsilon > 0'
                       % (norm, epsilon))


class _Graph:
  """The model's clean and attacked correctness on a fed batch, in one graph."""

  def __init__(self, model, attacks, num_steps):
    self.graph = tf.Graph()
    with self.graph.as_default():
      self.images = tf1.placeholder(tf.float32, [None, 32, 32, 3])
      self.labels = tf1.placeholder(tf.int32, [None])
      self.correct = {'clean': self._correct(model.logits_fn(self.images))}
      for norm, epsilon in attacks:
        adversarial = attack.pgd_attack(
            model.logits_fn, self.images, self.labels, norm=norm, epsilon=epsilon,
            num_steps=num_steps, step_size=settings.pgd_step_size(epsilon, num_steps))
        self.correct[attack_key(norm, epsilon)] = self._correct(model.logits_fn(adversarial))
      self.saver = tf1.train.Saver(tf1.global_variables())

  def _correct(self, logits):
    return tf.equal(tf.argmax(logits, -1, output_type=tf.int32), self.labels)

  def accuracy(self, session, fetch, images, labels, batch_size):
    hits = 0
    for start in range(0, len(images), batch_size):
      feed = {self.images: images[start:start + batch_size].astype(np.float32),
              self.labels: labels[start:start + batch_size]}
      hits += int(np.sum(session.run(self.correct[fetch], feed)))
    return hits / len(images)


def _load(output, header):
  """The points already measured, or [] when there is no file yet."""
  if not os.path.exists(output):
    return []
  saved = fileio.read_json(output)
  if saved.get('header') != header:
    raise ValueError('%s was made with other settings (%s); remove it or write '
                     'elsewhere' % (output, saved.get('header')))
  return saved['points']


def evaluate_checkpoints(model_dir, *, train, test, attacks=(('linf', 4.0), ('l2', 128.0)),
                         num_examples=500, num_steps=settings.PGD_NUM_STEPS,
                         batch_size=250, data_flags=None, log=print):
  """Measures every kept checkpoint; returns the curve's points, oldest first.

  Args:
    model_dir: a wrn_cifar model_dir.
    train: (uint8 images [N, 32, 32, 3], int labels [N]) for training accuracy.
    test: the same for test accuracy; its first `num_examples` are attacked.
    attacks: (norm, epsilon in pixels) pairs, untargeted PGD.
    num_examples: test images attacked.
    num_steps: PGD steps n.
    batch_size: examples per session.run.
    data_flags: what identifies the data (written in the header).
    log: progress printer.

  Returns:
    A list of dicts: step, checkpoint, train_accuracy, test_accuracy and one
    field per attack (attack_key).
  """
  _check_attacks(attacks)
  model = runner.load_model(model_dir)
  output = os.path.join(model_dir, 'results', EVALUATION + '.json')
  header = {'attacks': [[n, float(e)] for n, e in attacks], 'num_examples': num_examples,
            'num_steps': num_steps, 'data': data_flags or {}}
  points = _load(output, header)
  done = {point['checkpoint'] for point in points}
  todo = [p for p in checkpoint_paths(model_dir) if os.path.basename(p) not in done]
  if not todo:
    return points
  graph = _Graph(model, attacks, num_steps)
  attacked = (test[0][:num_examples], test[1][:num_examples])
  with tf1.Session(graph=graph.graph) as session:
    for path in todo:
      graph.saver.restore(session, path)
      point = {'checkpoint': os.path.basename(path),
               'step': int(tf1.train.load_variable(path, 'global_step')),
               'train_accuracy': graph.accuracy(session, 'clean', *train, batch_size),
               'test_accuracy': graph.accuracy(session, 'clean', *test, batch_size)}
      for norm, epsilon in attacks:
        key = attack_key(norm, epsilon)
        point[key] = graph.accuracy(session, key, *attacked, batch_size)
      points = sorted(points + [point], key=lambda p: p['step'])
      os.makedirs(os.path.dirname(output), exist_ok=True)
      fileio.atomic_write_json(output, {'header': header, 'points': points})
      log('  checkpoint %s: %s' % (point['step'], ', '.join(
          '%s=%.3f' % (k, v) for k, v in point.items() if isinstance(v, float))))
  return points
