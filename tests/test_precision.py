"""--precision=bfloat16 in both trainers: bfloat16 convs, float32 everything that is kept.

Tiny networks and a few steps: the graph is inspected for what runs in which
dtype, the checkpoints for what is stored, and short runs for training,
resuming and the refusals.
"""
import json
import os
import subprocess
import sys

from absl import flags
from cifar_fixtures import write_cifar_python
from conftest import REPO_ROOT
import numpy as np
import pytest
import tensorflow as tf

from eval import audit
from eval import clean
from eval.audit import command as audit_command
from eval.kit import cli
from eval.kit import runner
from eval.pgd import __main__ as pgd_cli
from eval.report import results_reader
from resnet_ceb import make_tfrecords
from resnet_ceb import precision
from resnet_ceb import resnet_main
from resnet_ceb import train_utils
from wrn_cifar import wrn_main

tf1 = tf.compat.v1

# 64 images at batch 16: 4 steps per epoch.
WRN_TINY = ['--depth=10', '--width=1', '--train_batch_size=16', '--augment_name=none',
            '--eval_batch_size=50', '--iterations_per_loop=2', '--num_train_images=64',
            '--num_eval_images=50', '--loss=ceb']
CEB_TERMS = ('hzx', 'hzy', 'hyz', 'rex')


@pytest.fixture(scope='module')
def data_dir(tmp_path_factory):
  return write_cifar_python(tmp_path_factory.mktemp('cifar'), num_train=64, num_test=50)


def _wrn_run(model_dir, data_dir, *extra):
  return wrn_main.run(wrn_main.make_flags(
      ['--model_dir=%s' % model_dir, '--data_dir=%s' % data_dir] + WRN_TINY + list(extra)))


def _checkpoint_dtypes(model_dir):
  """{variable name: dtype} of model_dir's latest checkpoint."""
  reader = tf1.train.load_checkpoint(tf1.train.latest_checkpoint(model_dir))
  return reader.get_variable_to_dtype_map()


def _wrn_spec(mode, **params):
  """wrn_main's model_fn on placeholders of batch 4, in the current graph."""
  f = wrn_main.make_flags(['--model_dir=unused'] + WRN_TINY)
  params = dict(wrn_main.params_from_flags(f, 64), batch_size=4, **params)
  features = tf1.placeholder(tf.float32, [4, 32, 32, 3])
  labels = tf1.placeholder(tf.int32, [4])
  return wrn_main.wrn_model_fn(features, labels, mode, params)


def _op_types(graph, dtype):
  """The types of the graph's ops whose `T` attribute is `dtype`."""
  types = set()
  for op in graph.get_operations():
    try:
      if op.get_attr('T') == dtype:
        types.add(op.type)
    except ValueError:
      pass
  return types


def test_resolve_defaults_to_bfloat16_on_tpu_only_and_names_the_flag():
  assert precision.resolve(None, use_tpu=True) == 'bfloat16'
  assert precision.resolve(None, use_tpu=False) == 'float32'
  assert precision.resolve('bfloat16', use_tpu=False) == 'bfloat16'
  with pytest.raises(ValueError, match='--precision=float16 must be one of float32, bfloat16'):
    precision.resolve('float16', use_tpu=False)


def test_wrn_train_graph_runs_its_convs_in_bfloat16_and_keeps_variables_float32():
  with tf.Graph().as_default() as graph:
    spec = _wrn_spec(tf.estimator.ModeKeys.TRAIN, precision='bfloat16')
    bf16_ops = _op_types(graph, tf.bfloat16)
    variables = tf1.global_variables()
    summaries = [op for op in graph.get_operations() if op.type == 'ScalarSummary']
  # The forward convs and both of their gradients run in bfloat16.
  assert {'Conv2D', 'Conv2DBackpropInput', 'Conv2DBackpropFilter'} <= bf16_ops
  # int64: the global step and the jump-start's crossing step.
  assert {v.dtype.base_dtype for v in variables} == {tf.float32, tf.int64}
  assert spec.loss.dtype == tf.float32
  assert {op.name for op in summaries} >= set(CEB_TERMS)
  assert all(op.inputs[1].dtype == tf.float32 for op in summaries)


def test_wrn_float32_graph_has_no_bfloat16_op():
  with tf.Graph().as_default() as graph:
    _wrn_spec(tf.estimator.ModeKeys.TRAIN, precision='float32')
    assert not _op_types(graph, tf.bfloat16)


def test_wrn_ceb_terms_are_float32_tensors_under_bfloat16():
  with tf.Graph().as_default() as graph:
    spec = _wrn_spec(tf.estimator.ModeKeys.EVAL, precision='bfloat16')
    assert 'Conv2D' in _op_types(graph, tf.bfloat16)
  _, tensors = spec.eval_metrics
  logits, terms = tensors[1], tensors[2:]
  # The per-example hzx, hzy, hyz and rex the eval metrics average.
  assert len(terms) == len(CEB_TERMS)
  assert all(t.dtype == tf.float32 and t.shape.as_list() == [4] for t in terms)
  assert logits.dtype == tf.float32 and spec.loss.dtype == tf.float32


def test_wrn_predict_and_eval_logits_are_float32_by_default():
  with tf.Graph().as_default() as graph:
    _wrn_spec(tf.estimator.ModeKeys.PREDICT, precision='bfloat16')
    params = dict(wrn_main.params_from_flags(
        wrn_main.make_flags(['--model_dir=unused'] + WRN_TINY), 64), precision='bfloat16')
    wrn_main.eval_logits_fn(params)(tf1.placeholder(tf.float32, [2, 32, 32, 3]))
    assert not _op_types(graph, tf.bfloat16)
    # Asked for, the evaluation network runs in bfloat16 with float32 logits out.
    logits = wrn_main.eval_logits_fn(params, 'bfloat16')(
        tf1.placeholder(tf.float32, [2, 32, 32, 3]))
    assert 'Conv2D' in _op_types(graph, tf.bfloat16) and logits.dtype == tf.float32


def _rewind(model_dir, step):
  """Makes model_dir's checkpoint at `step` its latest, as if training had stopped there."""
  path = os.path.join(model_dir, 'model.ckpt-%d' % step)
  tf1.train.update_checkpoint_state(model_dir, path)
  return path


@pytest.mark.slow
def test_wrn_bfloat16_trains_resumes_and_saves_only_float32(tmp_path, data_dir, caplog):
  model_dir = str(tmp_path / 'bf16')
  argv = ['--train_epochs=3', '--save_checkpoints_steps=4']
  metrics = _wrn_run(model_dir, data_dir, '--precision=bfloat16', *argv)
  assert metrics['global_step'] == 12 and np.isfinite(metrics['loss'])
  assert train_utils.read_params(model_dir)['precision'] == 'bfloat16'
  dtypes = _checkpoint_dtypes(model_dir)
  assert any(name.startswith('wrn/') for name in dtypes)
  assert set(dtypes.values()) == {tf.float32, tf.int64}  # int64: global and jump-start steps.
  caplog.set_level('INFO')
  restored = _rewind(model_dir, 4)
  metrics = _wrn_run(model_dir, data_dir, '--precision=bfloat16', *argv)
  assert metrics['global_step'] == 12
  assert 'Restoring parameters from %s' % restored in caplog.text
  assert 'resuming in --precision' not in caplog.text
  # Another precision resumes the same float32 checkpoint, and says so.
  restored = _rewind(model_dir, 8)
  metrics = _wrn_run(model_dir, data_dir, '--precision=float32', *argv)
  assert metrics['global_step'] == 12
  assert 'Restoring parameters from %s' % restored in caplog.text
  assert 'trained in bfloat16 so far; resuming in --precision=float32' in caplog.text
  assert train_utils.read_params(model_dir)['precision'] == 'float32'


@pytest.mark.slow
def test_bad_precision_on_the_command_line_exits_2_and_writes_nothing(tmp_path, data_dir):
  model_dir = tmp_path / 'model'
  result = subprocess.run(
      [sys.executable, '-m', 'wrn_cifar.wrn_main', '--model_dir=%s' % model_dir,
       '--data_dir=%s' % data_dir, '--precision=float16'] + WRN_TINY,
      cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
  assert result.returncode == 2, result.stderr[-2000:]
  assert 'error: --precision=float16 must be one of float32, bfloat16' in result.stderr
  assert not model_dir.exists()


XLA_BFLOAT16_STEP = """
from benchmarks import common, xla
from wrn_cifar import wrn_main
f = wrn_main.make_flags(['--model_dir=unused', '--precision=bfloat16'] + {tiny!r})
params = dict(wrn_main.params_from_flags(f, 64), batch_size=4)
loop = common.RawLoop(wrn_main.wrn_model_fn, common.constant_batch_input_fn(32, 10),
                      params, xla.session_config(xla.JIT_LEVELS['xla']))
clusters = xla.xla_clusters(loop)
loop.run(3)
print('clusters=%d' % clusters)
"""


@pytest.mark.slow
def test_bfloat16_runs_under_xla_clusters():
  # In its own process: TensorFlow reads the XLA CPU flag once per process.
  result = subprocess.run([sys.executable, '-c', XLA_BFLOAT16_STEP.format(tiny=WRN_TINY)],
                          cwd=REPO_ROOT, capture_output=True, text=True, timeout=600)
  assert result.returncode == 0, result.stderr[-3000:]
  [clusters] = [int(line.split('=')[1]) for line in result.stdout.splitlines()
                if line.startswith('clusters=')]
  assert clusters > 0


RESNET_TINY = ['--resnet_depth=18', '--image_size=32', '--train_batch_size=2',
               '--eval_batch_size=4', '--train_steps=2', '--num_eval_images=4',
               '--steps_per_eval=2', '--iterations_per_loop=1', '--loss=ceb', '--rho=2']


@pytest.mark.slow
def test_resnet_bfloat16_trains_off_tpu_with_float32_checkpoints(tmp_path):
  data_dir = str(tmp_path / 'imagenet')
  make_tfrecords.write_synthetic_imagenet(data_dir, 4, 40, seed=3)
  model_dir = str(tmp_path / 'model')
  f = flags.FlagValues()
  resnet_main.define_flags(f)
  f(['resnet_main', '--data_dir=' + data_dir, '--model_dir=' + model_dir,
     '--precision=bfloat16'] + RESNET_TINY)
  metrics = resnet_main.run(f)
  assert metrics['global_step'] == 2 and np.isfinite(metrics['loss'])
  with open(os.path.join(model_dir, train_utils.PARAMS_FILE)) as params_file:
    assert json.load(params_file)['params']['precision'] == 'bfloat16'
  dtypes = _checkpoint_dtypes(model_dir)
  assert any('batch_normalization' in name for name in dtypes)
  assert set(dtypes.values()) == {tf.float32, tf.int64}


def test_resnet_bfloat16_graph_runs_convs_and_batch_norm_in_bfloat16():
  f = flags.FlagValues()
  resnet_main.define_flags(f)
  f(['resnet_main', '--fake_data', '--model_dir=unused', '--precision=bfloat16']
    + RESNET_TINY)
  params = dict(resnet_main.params_from_flags(f), batch_size=2)
  with tf.Graph().as_default() as graph:
    features = tf1.placeholder(tf.float32, [2, 32, 32, 3])
    labels = tf1.placeholder(tf.int32, [2])
    spec = resnet_main.resnet_model_fn(features, labels, tf.estimator.ModeKeys.TRAIN, params)
    assert {'Conv2D', 'Conv2DBackpropFilter', 'FusedBatchNormV3'} <= _op_types(
        graph, tf.bfloat16)
    assert {v.dtype.base_dtype for v in tf1.global_variables()} == {tf.float32, tf.int64}
  assert spec.loss.dtype == tf.float32


# --- Evaluation: float32 by default, bfloat16 only where no attack runs -------

@pytest.fixture(scope='module')
def bf16_model(tmp_path_factory, data_dir):
  """A tiny WRN CEB model trained in bfloat16 (4 steps)."""
  model_dir = str(tmp_path_factory.mktemp('bf16_model'))
  _wrn_run(model_dir, data_dir, '--precision=bfloat16', '--train_epochs=1')
  return model_dir


def test_a_bfloat16_trained_model_restores_as_float32(bf16_model):
  model = runner.load_model(bf16_model)
  assert model.precision == 'float32' and model.params['precision'] == 'bfloat16'
  with tf.Graph().as_default() as graph:
    logits = model.logits_fn(tf1.placeholder(tf.float32, [2, 32, 32, 3]))
    assert logits.dtype == tf.float32 and not _op_types(graph, tf.bfloat16)


def _results(model_dir):
  folder = os.path.join(model_dir, 'results')
  return sorted(os.listdir(folder)) if os.path.isdir(folder) else []


@pytest.mark.parametrize('main,extra', [
    (pgd_cli.main, ['--epsilons=0,4', '--num_steps=2']),
    (audit_command.main, ['--epsilons=4', '--num_examples=4']),
])
def test_attacks_refuse_bfloat16_and_write_nothing(bf16_model, data_dir, capsys, main, extra):
  before = _results(bf16_model)
  capsys.readouterr()
  with pytest.raises(SystemExit) as exit_info:
    main(['--model_dir=' + bf16_model, '--data_dir=' + data_dir, '--precision=bfloat16']
         + extra)
  assert exit_info.value.code == 2
  error = capsys.readouterr().err
  assert 'error: argument --precision: %s' % cli.ATTACK_PRECISION_ERROR in error
  assert _results(bf16_model) == before


def test_evaluations_name_a_bad_precision(bf16_model, data_dir, capsys):
  with pytest.raises(SystemExit) as exit_info:
    clean.main(['--model_dir=' + bf16_model, '--data_dir=' + data_dir,
                '--precision=float16'])
  assert exit_info.value.code == 2
  assert "--precision: 'float16' must be one of float32, bfloat16" in capsys.readouterr().err


@pytest.mark.slow
def test_clean_accuracy_in_bfloat16_has_its_own_result_the_report_skips(bf16_model, data_dir):
  argv = ['--model_dir=' + bf16_model, '--data_dir=' + data_dir, '--batch_size=25']
  float32 = clean.main(argv)
  bfloat16 = clean.main(argv + ['--precision=bfloat16'])
  assert _results(bf16_model) == ['clean-bfloat16-step4.json', 'clean-step4.json']
  folder = os.path.join(bf16_model, 'results')
  assert 'precision' not in float32['header']
  assert bfloat16['header']['precision'] == 'bfloat16'
  # 50 images: bfloat16 rounding may flip a near-tie, hardly more.
  assert abs(bfloat16['summary']['accuracy'] - float32['summary']['accuracy']) <= 0.1
  assert results_reader.read_result(os.path.join(folder, 'clean-bfloat16-step4.json')) is None
  assert results_reader.read_result(os.path.join(folder, 'clean-step4.json')) is not None


def test_the_audit_refuses_a_bfloat16_network(bf16_model):
  params = train_utils.read_params(bf16_model)
  rng = np.random.RandomState(0)
  images = rng.randint(0, 256, (2, 32, 32, 3)).astype(np.float32)
  with pytest.raises(ValueError, match='re-checks its witnesses in float32 only'):
    audit.run_audit(wrn_main.eval_logits_fn(params, 'bfloat16'), images, np.array([0, 1]),
                    norm='linf', epsilon=4.0, attacks=['pgd20'])
