"""The switches for choices the paper leaves open (docs/FIDELITY.md, "Where the paper is silent").

Each default keeps the earlier behaviour, and a model_dir whose params.json
predates a switch still resumes as the switch's default. The one exception,
--wrn_init, changed its default to 'he' (docs/FIDELITY.md); a model_dir keeps
the init it recorded, 'fixup' when it records none.
"""
import os

from cifar_fixtures import write_cifar_python
import numpy as np
import pytest
import tensorflow as tf

from resnet_ceb import fileio
from resnet_ceb import train_utils
from wrn_cifar import cifar_input
from wrn_cifar import wrn_main

tf1 = tf.compat.v1

TINY = ['--depth=10', '--width=1', '--train_batch_size=16', '--augment_name=none']
NUM_TRAIN = 32


def _wrn_params(*extra, model_dir='unused'):
  f = wrn_main.make_flags(['--model_dir=%s' % model_dir] + TINY + list(extra))
  return dict(wrn_main.params_from_flags(f, NUM_TRAIN), batch_size=16)


def _wrn_train_loss(weight_decay):
  """The WRN's xent training loss at init, its variables and its number of L2 ops."""
  params = _wrn_params('--loss=xent', '--weight_decay=%r' % weight_decay)
  images = np.random.RandomState(0).uniform(0, 255, [4, 32, 32, 3])
  with tf.Graph().as_default() as graph:
    tf1.set_random_seed(0)
    spec = wrn_main.wrn_model_fn(tf.constant(images, tf.float32), tf.constant([0, 1, 2, 3]),
                                 tf.estimator.ModeKeys.TRAIN, params)
    l2_ops = sum(op.type == 'L2Loss' for op in graph.get_operations())
    with tf1.Session() as session:
      session.run(tf1.global_variables_initializer())
      loss, values = session.run(
          [spec.loss, {v.op.name: v for v in tf1.trainable_variables()}])
  return loss, values, l2_ops


def test_cifar_weight_decay_adds_the_l2_term_and_zero_adds_nothing():
  plain, values, plain_l2_ops = _wrn_train_loss(0.0)
  decayed, decayed_values, l2_ops = _wrn_train_loss(0.01)
  assert plain_l2_ops == 0 and l2_ops == len(values) > 0
  for name, value in values.items():
    np.testing.assert_array_equal(decayed_values[name], value)
  by_hand = 0.01 * sum(0.5 * np.sum(np.square(v.astype(np.float64))) for v in values.values())
  assert by_hand > 1e-3
  assert decayed - plain == pytest.approx(by_hand, rel=1e-4)


def _write_identity(model_dir, identity):
  os.makedirs(model_dir)
  fileio.atomic_write_json(os.path.join(model_dir, train_utils.PARAMS_FILE),
                           {'identity': identity, 'params': {}})


def _without(identity, *keys):
  return {k: v for k, v in identity.items() if k not in keys}


@pytest.mark.parametrize('loss', ['ceb', 'xent'])
def test_cifar_model_dir_from_before_the_switches_still_matches(tmp_path, loss):
  model_dir = str(tmp_path / 'old')
  old = wrn_main.run_identity(_wrn_params('--loss=%s' % loss))
  _write_identity(model_dir, _without(old, *wrn_main.ABSENT_IDENTITY))
  # The same command on the old model_dir: its init is the one of its time, fixup.
  identity = wrn_main.run_identity(_wrn_params('--loss=%s' % loss, model_dir=model_dir))
  assert identity['wrn_init'] == 'fixup' and old['wrn_init'] == 'he'
  check = train_utils.check_model_dir
  check(model_dir, identity, None, wrn_main.ABSENT_IDENTITY)
  # A switch away from the old default is another run.
  for flag, key in (('--weight_decay=1e-4', 'weight_decay'),
                    ('--jump_start_ramp=gamma', 'jump_start_ramp'),
                    ('--wrn_init=he', 'wrn_init'), ('--wrn_variant=autoaugment', 'wrn_variant'),
                    ('--bottleneck_dims=64', 'bottleneck_dims')):
    changed = wrn_main.run_identity(_wrn_params('--loss=%s' % loss, flag, model_dir=model_dir))
    with pytest.raises(train_utils.ModelDirError, match=key):
      check(model_dir, changed, None, wrn_main.ABSENT_IDENTITY)


def test_cifar_init_is_the_flag_else_the_model_dirs_else_he(tmp_path):
  def init(model_dir, *extra):
    return wrn_main.wrn_init(wrn_main.make_flags(['--model_dir=%s' % model_dir] + list(extra)))
  assert init(tmp_path / 'new') == 'he'
  assert init(tmp_path / 'new', '--wrn_init=fixup') == 'fixup'
  for name, recorded in (('he', 'he'), ('fixup', 'fixup')):
    identity = wrn_main.run_identity(_wrn_params('--wrn_init=' + recorded))
    _write_identity(str(tmp_path / name), identity)
    assert init(tmp_path / name) == recorded
  _write_identity(str(tmp_path / 'old'), _without(identity, 'wrn_init'))
  assert init(tmp_path / 'old') == 'fixup'
  assert init(tmp_path / 'old', '--wrn_init=he') == 'he'  # check_model_dir then refuses it.


@pytest.mark.parametrize('loss', ['xent', 'ceb', 'cceb', 'vib'])
def test_cifar_bottleneck_feeds_every_head_a_dense_layer_of_d_outputs(loss):
  for dims, z_dims in ((0, 64), (24, 24)):
    params = _wrn_params('--loss=%s' % loss, '--bottleneck_dims=%d' % dims)
    assert params['bottleneck_dims'] == wrn_main.run_identity(params)['bottleneck_dims'] == dims
    with tf.Graph().as_default():
      logits = wrn_main.eval_logits_fn(params)(tf1.placeholder(tf.float32, [None, 32, 32, 3]))
      shapes = {v.op.name: v.shape.as_list() for v in tf1.trainable_variables()}
    assert logits.shape.as_list() == [None, 10]
    assert shapes.get('wrn/bottleneck/kernel') == ([64, dims] if dims else None)
    # The head's matrices (classifier [d, 10], mu [10, d]) have z's width d.
    head = [shape for name, shape in shapes.items() if not name.startswith('wrn/')]
    assert head and all(len(shape) == 1 or z_dims in shape for shape in head)


def test_cifar_bad_variant_or_bottleneck_is_refused_naming_the_flag():
  f = wrn_main.make_flags(['--model_dir=unused', '--bottleneck_dims=-3'])
  with pytest.raises(ValueError, match='--bottleneck_dims'):
    wrn_main.validate_flags(f)


def test_cceb_model_dir_from_before_the_prior_flag_resumes_as_uniform(tmp_path):
  model_dir = str(tmp_path / 'old')
  _write_identity(model_dir, _without(wrn_main.run_identity(_wrn_params('--loss=cceb')),
                                      *wrn_main.ABSENT_IDENTITY))
  identity = wrn_main.run_identity(_wrn_params('--loss=cceb', model_dir=model_dir))
  assert identity['cceb_prior'] == 'uniform'
  train_utils.check_model_dir(model_dir, identity, None, wrn_main.ABSENT_IDENTITY)
  with pytest.raises(train_utils.ModelDirError, match='cceb_prior'):
    train_utils.check_model_dir(model_dir, dict(identity, cceb_prior='empirical'), None,
                                wrn_main.ABSENT_IDENTITY)


def test_cifar_bad_weight_decay_is_refused_naming_the_flag():
  for value in ('-1e-4', 'nan', 'inf'):
    f = wrn_main.make_flags(['--model_dir=unused', '--weight_decay=' + value])
    with pytest.raises(ValueError, match='--weight_decay'):
      wrn_main.validate_flags(f)


def _first_step_rho(params, step):
  """The trainer graph's rho at `step` (no 20% crossing yet)."""
  with tf.Graph().as_default():
    global_step = tf1.train.get_or_create_global_step()
    rho = wrn_main._rho_tensor(params, global_step, tf.constant(-1, tf.int64))
    with tf1.Session() as session:
      session.run(tf1.global_variables_initializer())
      session.run(global_step.assign(step))
      return session.run(rho)


def test_cifar_jump_start_ramp_flag_reaches_the_trainers_rho():
  halfway = _wrn_params('--loss=ceb')['steps_per_epoch']  # of the 2-epoch first phase
  by_rho = _first_step_rho(_wrn_params('--loss=ceb'), halfway)
  by_gamma = _first_step_rho(_wrn_params('--loss=ceb', '--jump_start_ramp=gamma'), halfway)
  assert by_rho == 55.0
  assert by_gamma == pytest.approx(10.0 + np.log(2.0), abs=1e-5)
  # params.json before the flag: the rho reading.
  old = _without(_wrn_params('--loss=ceb'), 'jump_start_ramp')
  assert _first_step_rho(old, halfway) == by_rho


COUNTS = [5, 1, 2, 3, 4, 1, 2, 3, 6, 5]  # 32 images


def test_cifar_empirical_prior_is_recorded_and_moves_the_logits_by_log_p_y():
  uniform = _wrn_params('--loss=cceb')
  f = wrn_main.make_flags(['--model_dir=unused', '--loss=cceb', '--cceb_prior=empirical']
                          + TINY)
  empirical = wrn_main.params_from_flags(f, NUM_TRAIN, np.array(COUNTS))
  assert empirical['label_counts'] == COUNTS and 'label_counts' not in uniform
  assert wrn_main.run_identity(empirical)['cceb_prior'] == 'empirical'
  images = np.random.RandomState(0).uniform(0, 255, [3, 32, 32, 3]).astype(np.float32)
  with tf.Graph().as_default():
    # Both calls build the one network and b(z|y): the logits differ by the prior only.
    logits = [wrn_main.eval_logits_fn(p)(tf.constant(images)) for p in (uniform, empirical)]
    with tf1.Session() as session:
      session.run(tf1.global_variables_initializer())
      plain, shifted = session.run(logits)
  np.testing.assert_allclose(shifted - plain,
                             np.broadcast_to(np.log(np.array(COUNTS) / 32.0), (3, 10)),
                             atol=1e-4)


def test_cifar_empirical_prior_is_refused_where_it_cannot_apply():
  f = wrn_main.make_flags(['--model_dir=unused', '--loss=ceb', '--cceb_prior=empirical'])
  with pytest.raises(ValueError, match='--cceb_prior=empirical applies only'):
    wrn_main.validate_flags(f)
  f = wrn_main.make_flags(['--model_dir=unused', '--loss=cceb', '--cceb_prior=empirical']
                          + TINY)
  with pytest.raises(ValueError, match='--cceb_prior'):
    wrn_main.params_from_flags(f, NUM_TRAIN, np.array([32] + [0] * 9))


def test_cifar_trainer_counts_the_labels_it_loads(tmp_path):
  data_dir = write_cifar_python(tmp_path / 'cifar')
  model_dir = str(tmp_path / 'model')
  wrn_main.run(wrn_main.make_flags(
      ['--model_dir=' + model_dir, '--data_dir=' + data_dir, '--loss=cceb',
       '--cceb_prior=empirical', '--num_train_images=160', '--train_epochs=1',
       '--mode=train'] + TINY))
  _, labels = cifar_input.load_dataset(data_dir, 'train')
  params = train_utils.read_params(model_dir)
  # The first 160 of the 320 training images: the ones the pipeline trains on.
  assert params['label_counts'] == np.bincount(labels[:160], minlength=10).tolist()
  assert params['cceb_prior'] == 'empirical'
