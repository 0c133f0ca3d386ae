"""The ImageNet trainer end to end on a tiny generated TFRecord set, on CPU.

Training runs use ResNet-18 at 32x32 with batch 2: a ResNet-50 run builds and
checkpoints too slowly for this suite (about 40 s on 2 cores), and the
trainer's code path is the same for every depth. ResNet-50 graphs (x1 and x2)
are built without running.
"""
import glob
import io
import math
import os
import shutil
import subprocess
import sys

from absl import flags
import numpy as np
from PIL import Image
import pytest
import tensorflow as tf

from eval.kit import runner
from resnet_ceb import ceb
from resnet_ceb import fileio
from resnet_ceb import imagenet_input
from resnet_ceb import make_tfrecords
from resnet_ceb import resnet_main
from resnet_ceb import train_utils

tf1 = tf.compat.v1

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
IMAGE_SIZE = 32
TINY = dict(resnet_depth=18, image_size=IMAGE_SIZE, train_batch_size=2,
            eval_batch_size=4, train_steps=1, num_eval_images=6, steps_per_eval=1,
            iterations_per_loop=1)


def _flags(**values):
  """Parsed resnet_main flags on a fresh FlagValues, as the command line would give."""
  flag_values = flags.FlagValues()
  resnet_main.define_flags(flag_values)
  flag_values(['resnet_main'] + ['--%s=%s' % (k, v) for k, v in values.items()])
  return flag_values


@pytest.fixture(scope='module')
def data_dir(tmp_path_factory):
  path = str(tmp_path_factory.mktemp('imagenet'))
  make_tfrecords.write_synthetic_imagenet(path, 6, 40, seed=2)
  return path


@pytest.fixture(scope='module')
def trained(tmp_path_factory, data_dir):
  """A function of loss giving (model_dir, eval metrics) of one tiny run, cached."""
  runs = {}

  def get(loss):
    if loss not in runs:
      model_dir = str(tmp_path_factory.mktemp('run_' + loss))
      metrics = resnet_main.run(_flags(data_dir=data_dir, model_dir=model_dir,
                                       loss=loss, rho=2.0, **TINY))
      runs[loss] = (model_dir, metrics)
    return runs[loss]

  return get


def test_defaults_are_the_papers_schedule():
  f = _flags()
  assert f.train_batch_size == 8192
  assert f.base_learning_rate * f.train_batch_size / 256 == pytest.approx(1.6)
  assert f.train_steps == 42226 == math.ceil(270 * 1281167 / 8192)
  assert f.anneal_rho == 12000 and f.momentum == 0.9 and f.weight_decay == 1e-4
  assert resnet_main.params_from_flags(f)['precision'] == 'float32'


def test_learning_rate_at_warmup_end_and_each_drop():
  params = resnet_main.params_from_flags(_flags(fake_data=True, model_dir='unused'))
  steps = [0, 391, 781, 782, 14075, 14076, 28150, 28151, 37534, 37535, 42225]
  expected = [0.0, 1.6 * 391 / (5 * 1281167 / 8192), 1.6 * 781 / (5 * 1281167 / 8192),
              1.6, 1.6, 0.16, 0.16, 0.016, 0.016, 0.0016, 0.0016]
  with tf.Graph().as_default():
    step = tf1.placeholder(tf.int64, [])
    rate = resnet_main.learning_rate_schedule(
        params, resnet_main.current_epoch(params, step))
    with tf1.Session() as sess:
      got = [sess.run(rate, {step: s}) for s in steps]
  np.testing.assert_allclose(got, expected, rtol=1e-5)


def _rates(params, steps):
  with tf.Graph().as_default():
    step = tf1.placeholder(tf.int64, [])
    rate = resnet_main.learning_rate_schedule(
        params, resnet_main.current_epoch(params, step))
    with tf1.Session() as sess:
      return [sess.run(rate, {step: s}) for s in steps]


@pytest.mark.parametrize('warmup, expected', [
    # 5 epochs = 781.9 steps at batch 8192; the top rate 1.6 from its end to epoch 90.
    (5, [0.0, 1.6 * 391 / 781.9, 1.6, 1.6, 0.16]),
    (0, [1.6, 1.6, 1.6, 1.6, 0.16]),
    (1, [0.0, 1.6, 1.6, 1.6, 0.16])])
def test_warmup_epochs_sets_the_linear_warmup(warmup, expected):
  steps = [0, 391, 782, 14075, 14076]
  params = resnet_main.params_from_flags(_flags(fake_data=True, model_dir='unused',
                                                warmup_epochs=warmup))
  np.testing.assert_allclose(_rates(params, steps), expected, rtol=2e-4)


def test_default_warmup_is_the_schedule_before_the_flag_bit_for_bit(tmp_path):
  params = resnet_main.params_from_flags(_flags(fake_data=True, model_dir=str(tmp_path)))
  assert params['warmup_epochs'] == 5
  steps = [0, 1, 391, 781, 782, 14075, 14076]
  old = {k: v for k, v in params.items() if k != 'warmup_epochs'}
  assert _rates(params, steps) == _rates(old, steps)
  # A model_dir from before the flag resumes as the 5-epoch warm-up, no other.
  identity = resnet_main.run_identity(params)
  train_utils.write_params(str(tmp_path), {k: v for k, v in identity.items()
                                           if k != 'warmup_epochs'}, old)
  check = train_utils.check_model_dir
  check(str(tmp_path), identity, None, resnet_main.ABSENT_IDENTITY)
  with pytest.raises(train_utils.ModelDirError, match='warmup_epochs'):
    check(str(tmp_path), dict(identity, warmup_epochs=0.0), None, resnet_main.ABSENT_IDENTITY)


@pytest.mark.parametrize('loss,anneal', [('ceb', 12000), ('cceb', 12000), ('vib', 12000),
                                         ('ceb', 0)])
def test_gamma_jump_start_is_linear_in_gamma(loss, anneal):
  params = resnet_main.params_from_flags(
      _flags(fake_data=True, model_dir='unused', loss=loss, rho=3.0, anneal_rho=anneal))
  start, end = ceb.rho_weight(loss, 100.0), ceb.rho_weight(loss, 3.0)
  steps = [0, 3000, 6000, 12000, 30000]
  with tf.Graph().as_default():
    step = tf1.placeholder(tf.int64, [])
    weight = resnet_main.rho_weight_schedule(params, step)
    rho = ceb.weight_to_rho(loss, weight)
    with tf1.Session() as sess:
      got = [sess.run([weight, rho], {step: s}) for s in steps]
  if anneal:
    expected = [start + (end - start) * min(s / anneal, 1.0) for s in steps]
  else:
    expected = [end] * len(steps)
  # e^-100 is a float32 denormal, which the CPU flushes to 0: hence atol.
  np.testing.assert_allclose([g[0] for g in got], expected, rtol=1e-5, atol=1e-43)
  assert end == pytest.approx(math.exp(-3.0) if loss != 'vib' else 1 / (1 + math.exp(3.0)))
  assert got[-1][1] == pytest.approx(3.0, rel=1e-4)
  if anneal:
    assert got[0][1] > 87.0  # rho 100 (or inf once gamma flushes to 0).


@pytest.mark.slow
@pytest.mark.parametrize('loss', ['xent', 'ceb', 'cceb', 'vib'])
def test_each_objective_trains_one_step_and_evaluates(trained, loss):
  model_dir, metrics = trained(loss)
  assert resnet_main.latest_step(model_dir) == 1
  assert metrics['global_step'] == 1
  for name in ('top_1_accuracy', 'top_5_accuracy', 'loss', 'hyz'):
    assert np.isfinite(metrics[name]), name
  if loss != 'xent':
    assert {'hzx', 'hzy', 'rex'} <= set(metrics)
  recorded = train_utils.read_params(model_dir)
  assert recorded['trainer'] == 'resnet_ceb' and recorded['loss'] == loss
  assert recorded['image_size'] == IMAGE_SIZE
  assert glob.glob(os.path.join(model_dir, 'events.out.tfevents.*'))


@pytest.mark.slow
def test_resnet50_ceb_trains_and_evaluates_on_cpu(data_dir, tmp_path):
  # The newcomer's path of docs/IMAGENET.md, at a small image size.
  model_dir = str(tmp_path / 'r50')
  metrics = resnet_main.run(_flags(**dict(TINY, resnet_depth=50, train_steps=2),
                                   data_dir=data_dir, model_dir=model_dir,
                                   loss='ceb', rho=3.0, anneal_rho=2))
  assert metrics['global_step'] == 2
  assert {'top_1_accuracy', 'top_5_accuracy', 'hzx', 'hzy', 'hyz', 'rex'} <= set(metrics)
  assert train_utils.read_params(model_dir)['resnet_depth'] == 50
  model = runner.load_model(model_dir)
  with tf.Graph().as_default():
    logits = model.logits_fn(tf.zeros([2, IMAGE_SIZE, IMAGE_SIZE, 3]))
    assert logits.shape.as_list() == [2, 1000]


def _pixels(count, seed=0):
  return np.random.RandomState(seed).uniform(
      0, 255, (count, IMAGE_SIZE, IMAGE_SIZE, 3)).astype(np.float32)


@pytest.mark.slow
@pytest.mark.parametrize('loss', ['ceb', 'xent'])
def test_load_model_gives_the_estimators_logits(trained, loss):
  model_dir, _ = trained(loss)
  images = _pixels(3)
  params = train_utils.read_params(model_dir)
  estimator = train_utils.make_estimator(
      resnet_main.resnet_model_fn, model_dir, params, train_batch_size=2,
      eval_batch_size=3, save_checkpoints_steps=600)
  predictions = next(estimator.predict(
      lambda params: tf.data.Dataset.from_tensor_slices(images).batch(params['batch_size']),
      yield_single_examples=False))
  model = runner.load_model(model_dir)
  assert model.step == 1
  restored = runner.predict(model, lambda _: tf.data.Dataset.from_tensor_slices(
      {'image': images, 'label': np.zeros(3, np.int32)}).batch(3))
  assert restored['logits'].shape == (3, 1000)
  np.testing.assert_allclose(restored['logits'], predictions['logits'],
                             rtol=1e-4, atol=1e-4)


def test_eval_logits_fn_reuses_variables_inside_a_while_loop():
  params = resnet_main.params_from_flags(
      _flags(fake_data=True, model_dir='unused', loss='cceb', **TINY))
  logits_fn = resnet_main.eval_logits_fn(params)
  with tf.Graph().as_default():
    images = tf.constant(_pixels(2))
    first = logits_fn(images)
    names = sorted(v.op.name for v in tf1.global_variables())
    looped = tf.while_loop(lambda i, x: i < 2,
                           lambda i, x: (i + 1, x + 0.0 * logits_fn(x)[0, 0]),
                           [tf.constant(0), images])[1]
    assert sorted(v.op.name for v in tf1.global_variables()) == names
    assert not tf1.get_collection(tf1.GraphKeys.UPDATE_OPS)
    with tf1.Session() as sess:
      sess.run(tf1.global_variables_initializer())
      out, again = sess.run([first, logits_fn(looped)])
  assert out.shape == (2, 1000)
  np.testing.assert_allclose(out, again, rtol=1e-5, atol=1e-5)


def test_bfloat16_graph_has_the_float32_variables():
  params = resnet_main.params_from_flags(
      _flags(fake_data=True, model_dir='unused', **TINY))

  def variables(precision):
    with tf.Graph().as_default():
      features = tf1.placeholder(tf.float32, [None, IMAGE_SIZE, IMAGE_SIZE, 3])
      labels = tf1.placeholder(tf.int32, [None])
      resnet_main.resnet_model_fn(features, labels, tf.estimator.ModeKeys.TRAIN,
                                  dict(params, precision=precision))
      return {v.op.name: (v.shape.as_list(), v.dtype) for v in tf1.global_variables()}

  assert variables('bfloat16') == variables('float32')


def test_weight_decay_skips_batch_norm_variables():
  params = resnet_main.params_from_flags(_flags(fake_data=True, model_dir='unused', **TINY))
  with tf.Graph().as_default():
    features = tf1.placeholder(tf.float32, [None, IMAGE_SIZE, IMAGE_SIZE, 3])
    resnet_main.build_network(features, True, params, 'float32')
    decay = train_utils.weight_decay_loss(1.0)
    variables = tf1.trainable_variables()
    with tf1.Session() as sess:
      sess.run(tf1.global_variables_initializer())
      values = sess.run({v.op.name: v for v in variables})
      total = sess.run(decay)
  expected = sum(0.5 * np.sum(np.square(v)) for n, v in values.items()
                 if 'batch_normalization' not in n)
  assert any('batch_normalization' in n for n in values)
  assert total == pytest.approx(expected, rel=1e-4)


def test_host_call_writes_the_scalars(tmp_path):
  with tf.Graph().as_default():
    step = tf1.train.get_or_create_global_step()
    params = {'model_dir': str(tmp_path), 'iterations_per_loop': 1}
    host_call_fn, tensors = resnet_main.summary_host_call(
        params, step, {'gamma': tf.constant(0.25), 'learning_rate': tf.constant(1.6)})
    summary_ops = host_call_fn(*tensors)
    with tf1.Session() as sess:
      sess.run(tf1.global_variables_initializer())
      # The writer initializers TPUEstimator's host-call hook runs.
      sess.run(tf1.get_collection('_SUMMARY_WRITER_V2'))
      sess.run(summary_ops)
  values = {}
  for path in glob.glob(str(tmp_path / 'events.out.tfevents.*')):
    for event in tf1.train.summary_iterator(path):
      for value in event.summary.value:
        values[value.tag] = float(tf.make_ndarray(value.tensor))
  assert values == pytest.approx({'gamma': 0.25, 'learning_rate': 1.6})


@pytest.mark.slow
def test_rerun_resumes_and_exports_a_jpeg_saved_model(trained, data_dir, tmp_path):
  model_dir, _ = trained('vib')
  export_dir = str(tmp_path / 'export')
  values = dict(TINY, train_steps=2, mode='train')
  resnet_main.run(_flags(data_dir=data_dir, model_dir=model_dir, loss='vib', rho=2.0,
                         export_dir=export_dir, **values))
  assert resnet_main.latest_step(model_dir) == 2
  exported, = glob.glob(os.path.join(export_dir, '*'))
  buffer = io.BytesIO()
  Image.new('RGB', (50, 40), (90, 120, 30)).save(buffer, format='JPEG')
  serve = tf.saved_model.load(exported).signatures['serving_default']
  outputs = serve(image_bytes=tf.constant([buffer.getvalue()]))
  assert outputs['logits'].shape == (1, 1000)
  np.testing.assert_allclose(np.sum(outputs['probabilities']), 1.0, rtol=1e-5)


def _write_the_old_class_count_key(model_dir):
  """Rewrites params.json as the trainer did before the key was shared."""
  path = os.path.join(model_dir, train_utils.PARAMS_FILE)
  record = fileio.read_json(path)
  for part in ('identity', 'params'):
    record[part]['num_label_classes'] = record[part].pop('num_classes')
  fileio.atomic_write_json(path, record)


def test_params_json_with_the_old_class_count_key_still_matches(tmp_path):
  model_dir = str(tmp_path)
  params = resnet_main.params_from_flags(_flags(fake_data=True, model_dir=model_dir,
                                                **TINY))
  identity = resnet_main.run_identity(params)
  assert params['num_classes'] == identity['num_classes'] == 1000
  train_utils.write_params(model_dir, identity, params)
  _write_the_old_class_count_key(model_dir)
  assert train_utils.read_params(model_dir) == params
  # No checkpoint here, so the variables are never built.
  train_utils.check_model_dir(model_dir, identity, build_variables=None)
  with pytest.raises(train_utils.ModelDirError, match='num_classes=1000'):
    train_utils.check_model_dir(model_dir, dict(identity, num_classes=10), None)


@pytest.mark.slow
def test_model_dir_with_the_old_class_count_key_loads_and_resumes(trained, data_dir,
                                                                   tmp_path):
  model_dir = str(tmp_path / 'old')
  shutil.copytree(trained('ceb')[0], model_dir)
  _write_the_old_class_count_key(model_dir)
  model = runner.load_model(model_dir)
  with tf.Graph().as_default():
    assert model.logits_fn(tf.zeros([1, IMAGE_SIZE, IMAGE_SIZE, 3])).shape[-1] == 1000
  resnet_main.run(_flags(data_dir=data_dir, model_dir=model_dir, loss='ceb', rho=2.0,
                         **dict(TINY, train_steps=2, mode='train')))
  assert resnet_main.latest_step(model_dir) == 2
  recorded = fileio.read_json(os.path.join(model_dir, train_utils.PARAMS_FILE))
  assert recorded['params']['num_classes'] == 1000
  assert 'num_label_classes' not in recorded['params']


def test_another_runs_model_dir_is_refused(trained, data_dir):
  model_dir, _ = trained('ceb')
  with pytest.raises(train_utils.ModelDirError, match='rho'):
    resnet_main.run(_flags(data_dir=data_dir, model_dir=model_dir, loss='ceb',
                           rho=5.0, **TINY))


@pytest.mark.parametrize('values,error,match', [
    (dict(resnet_depth=51), ValueError, '--resnet_depth'),
    (dict(width_multiplier=0), ValueError, '--width_multiplier'),
    (dict(loss='bogus'), ValueError, '--loss'),
    (dict(rho='nan'), ValueError, '--rho'),
    (dict(rho='inf'), ValueError, '--rho'),
    (dict(precision='float16'), ValueError, '--precision=float16'),
    (dict(label_smoothing=0.1), ValueError, '--label_smoothing'),
    (dict(augment_name='randaugment'), ValueError, '--augment_name'),
    (dict(train_steps=0), ValueError, '--train_steps'),
    (dict(warmup_epochs=-1), ValueError, '--warmup_epochs'),
    (dict(warmup_epochs=91), ValueError, '--warmup_epochs'),
    # The ImageNet trainer has no label counts: empirical is an error, not uniform.
    (dict(loss='cceb', cceb_prior='empirical'), ValueError, '--cceb_prior=empirical'),
])
def test_bad_flags_fail_before_anything_is_written(data_dir, tmp_path, values, error,
                                                   match):
  model_dir = str(tmp_path / 'model')
  with pytest.raises(error, match=match):
    resnet_main.run(_flags(data_dir=data_dir, model_dir=model_dir,
                           **dict(TINY, **values)))
  assert not os.path.exists(model_dir)


def test_missing_data_dir_or_files_are_clear_errors(tmp_path):
  model_dir = str(tmp_path / 'model')
  with pytest.raises(ValueError, match='--data_dir is required'):
    resnet_main.run(_flags(model_dir=model_dir, **TINY))
  with pytest.raises(FileNotFoundError, match='--data_dir=.*nowhere'):
    resnet_main.run(_flags(data_dir=str(tmp_path / 'nowhere'), model_dir=model_dir,
                           **TINY))
  with pytest.raises(FileNotFoundError, match='no files matching .*train-\\*'):
    resnet_main.run(_flags(data_dir=str(tmp_path), model_dir=model_dir, **TINY))
  assert not os.path.exists(model_dir)


@pytest.mark.slow
def test_corrupt_record_stops_training_naming_the_data_dir(data_dir, tmp_path):
  """Through Estimator.train; labels outside 1..1000 are checked in test_imagenet_input."""
  bad_dir = str(tmp_path / 'bad')
  os.makedirs(bad_dir)
  with open(os.path.join(data_dir, 'train-00000-of-00001'), 'rb') as f:
    data = bytearray(f.read())
  data[100] ^= 0xFF
  with open(os.path.join(bad_dir, 'train-00000-of-00001'), 'wb') as f:
    f.write(bytes(data))
  with pytest.raises(imagenet_input.ImageNetDataError,
                     match='--data_dir=%s.*DataLossError: corrupted record' % bad_dir):
    resnet_main.run(_flags(data_dir=bad_dir, model_dir=str(tmp_path / 'model'),
                           **dict(TINY, mode='train')))


def test_main_prints_error_and_exits_2(tmp_path):
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL='3')
  result = subprocess.run(
      [sys.executable, '-m', 'resnet_ceb.resnet_main', '--fake_data',
       '--model_dir=%s' % (tmp_path / 'model'), '--loss=bogus'],
      cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=120)
  assert result.returncode == 2
  assert result.stderr.strip().splitlines()[-1].startswith("error: --loss='bogus'")


def test_dry_run_prints_the_86_run_matrix():
  env = dict(os.environ, MODEL_ROOT='/runs', DATA_DIR='/data')
  result = subprocess.run(['bash', os.path.join(REPO_ROOT, 'run_imagenet.sh'), '--dry_run'],
                          env=env, capture_output=True, text=True, timeout=60, check=True)
  lines = result.stdout.strip().splitlines()
  assert len(lines) == 86
  model_dirs = set()
  for line in lines:
    words = line.split()
    assert words[:3] == ['python', '-m', 'resnet_ceb.resnet_main']
    assert '--data_dir=/data' in words
    model_dir, = [w for w in words if w.startswith('--model_dir=/runs/')]
    model_dirs.add(model_dir)
  assert len(model_dirs) == 86

  def count(*parts):
    return sum(all(p in line.split() for p in parts) for line in lines)

  assert count('--resnet_depth=50') == count('--resnet_depth=152') == 43
  assert count('--loss=xent') == 6
  assert count('--loss=cceb', '--width_multiplier=2') == count('--loss=cceb') == 20
  assert count('--augment_name=autoaugment') == 64
  assert count('--width_multiplier=2') == 42
  for rho in range(1, 11):
    assert count('--loss=ceb', '--rho=%d' % rho) == 6


def test_dry_run_needs_no_setup_and_help_works():
  script = os.path.join(REPO_ROOT, 'run_imagenet.sh')
  env = {'PATH': '/usr/bin:/bin'}  # No venv, no python needed.
  dry = subprocess.run(['bash', script, '--dry_run'], env=env, capture_output=True,
                       text=True, timeout=60, check=True)
  assert '--data_dir=$DATA_DIR' in dry.stdout.splitlines()[0]
  assert 'runs/imagenet/r50_w1_xent' in dry.stdout.splitlines()[0]
  usage = subprocess.run(['bash', script, '--help'], env=env, capture_output=True,
                         text=True, timeout=60, check=True)
  assert '--dry_run' in usage.stdout


def test_wide_resnet50_head_takes_4096_dims():
  """Listing 3's bzy_dist default z_dims=2048 would not fit the x2 model's f(x)."""
  params = resnet_main.params_from_flags(_flags(
      fake_data=True, model_dir='unused', resnet_depth=50, width_multiplier=2,
      loss='ceb', image_size=IMAGE_SIZE))
  with tf.Graph().as_default():
    features = tf1.placeholder(tf.float32, [None, IMAGE_SIZE, IMAGE_SIZE, 3])
    labels = tf1.placeholder(tf.int32, [None])
    resnet_main.resnet_model_fn(features, labels, tf.estimator.ModeKeys.TRAIN, params)
    shapes = {v.op.name: v.shape.as_list() for v in tf1.trainable_variables()}
  assert shapes['bzy/dense/kernel'] == [1000, 4096]
  assert shapes['cyz/dense/kernel'] == [4096, 1000]
