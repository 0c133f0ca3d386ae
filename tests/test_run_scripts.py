"""The sweeps of run_cifar.sh and run_imagenet.sh: shards, skipping finished runs, --then_eval.

Most tests replace the python that `all` runs with a recorder (SWEEP_PYTHON), so
that the 26 / 86 runs cost nothing; the slow ones train a real tiny run and
re-run the sweep over it.
"""
import os
import subprocess

from cifar_fixtures import write_cifar_python
import pytest

from resnet_ceb import make_tfrecords

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MATRIX_SIZE = {'run_cifar.sh': 26, 'run_imagenet.sh': 86}
SCRIPTS = sorted(MATRIX_SIZE)
SWEEP_ENV = ('DATA_DIR', 'MODEL_ROOT', 'SWEEP_PYTHON', 'CIFAR10C_DIR', 'IMAGENET_C_DIR',
             'IMAGENET_A_DIR')
# Writes each command it is given to $RECORD_LOG as `python <args>`; exits $RECORD_EXIT.
RECORDER = '#!/bin/sh\nprintf "python %s\\n" "$*" >> "$RECORD_LOG"\nexit "${RECORD_EXIT:-0}"\n'


def _run(script, *args, **env):
  """Runs `bash script args` with only the given sweep variables set."""
  environ = {k: v for k, v in os.environ.items() if k not in SWEEP_ENV}
  environ.update(env)
  return subprocess.run(['bash', os.path.join(REPO_ROOT, script)] + list(args),
                        env=environ, capture_output=True, text=True, timeout=600)


def _lines(script, *args, **env):
  result = _run(script, *args, **env)
  assert result.returncode == 0, result.stderr
  return result.stdout.splitlines()


@pytest.fixture
def recorder(tmp_path):
  """Environment that makes `all` record its commands: (env dict, log path)."""
  stub = tmp_path / 'python_recorder'
  stub.write_text(RECORDER)
  stub.chmod(0o755)
  log = tmp_path / 'commands.log'
  env = {'SWEEP_PYTHON': str(stub), 'RECORD_LOG': str(log),
         'MODEL_ROOT': str(tmp_path / 'runs'), 'DATA_DIR': str(tmp_path / 'data')}
  return env, log


def _recorded(log):
  return log.read_text().splitlines() if log.exists() else []


@pytest.mark.parametrize('script', SCRIPTS)
def test_dry_run_prints_one_distinct_run_per_line(script):
  lines = _lines(script, '--dry_run')
  assert len(lines) == MATRIX_SIZE[script]
  model_dirs = {w for line in lines for w in line.split() if w.startswith('--model_dir=')}
  assert len(model_dirs) == MATRIX_SIZE[script]


@pytest.mark.parametrize('script', SCRIPTS)
@pytest.mark.parametrize('n', [1, 3, 26, 86, 100])
def test_shards_partition_the_matrix_into_its_dry_run_lines(script, n):
  env = {'MODEL_ROOT': '/runs', 'DATA_DIR': '/data'}
  full = _lines(script, '--dry_run', '--train_batch_size=64', **env)
  forms = (lambda s: ['all', '--dry_run', '--shard', s],
           lambda s: ['--dry_run', '--shard=%s' % s],
           lambda s: ['all', '--shard=%s' % s, '--dry_run'])
  union = []
  for k in range(n):
    shard = _lines(script, *forms[k % 3]('%d/%d' % (k, n)), '--train_batch_size=64', **env)
    assert shard == full[k::n]
    union += shard
  assert sorted(union) == sorted(full) and len(union) == MATRIX_SIZE[script]


@pytest.mark.parametrize('script', SCRIPTS)
@pytest.mark.parametrize('shard', [['--shard', '3/3'], ['--shard', '5/3'], ['--shard', '0/0'],
                                   ['--shard', '-1/3'], ['--shard', 'x/2'],
                                   ['--shard', '1/two'], ['--shard', '1.5/3'],
                                   ['--shard', '1/2/3'], ['--shard=1/'], ['--shard='],
                                   ['--shard'], ['--shard', '--then_eval']])
@pytest.mark.parametrize('dry_run', [True, False])
def test_bad_shard_is_an_error_naming_it_before_anything_runs(script, shard, dry_run,
                                                               recorder):
  env, log = recorder
  result = _run(script, 'all', *(['--dry_run'] if dry_run else []), *shard, **env)
  assert result.returncode == 2
  assert result.stdout == ''
  assert result.stderr.startswith('error: --shard')
  assert not _recorded(log)


@pytest.mark.parametrize('script', SCRIPTS)
def test_all_runs_only_its_shard_each_as_the_dry_run_prints_it(script, recorder, tmp_path):
  env, log = recorder
  args = ['--shard', '2/5', '--train_batch_size=64']
  result = _run(script, 'all', *args, **env)
  assert result.returncode == 0, result.stderr
  expected = _lines(script, 'all', '--dry_run', *args, **env)
  assert _recorded(log) == expected
  assert len(expected) == len(range(2, MATRIX_SIZE[script], 5))
  finished = sorted(p.parent.name for p in (tmp_path / 'runs').glob('*/finished_command.txt'))
  assert len(finished) == len(expected)
  assert all('--model_dir=%s/%s' % (tmp_path / 'runs', name) in ' '.join(expected)
             for name in finished)


@pytest.mark.parametrize('script,evaluation', [('run_cifar.sh', 'eval.cifar_suite'),
                                               ('run_imagenet.sh', 'eval.imagenet_suite')])
def test_then_eval_follows_each_run_in_the_same_task(script, evaluation, recorder):
  env, log = recorder
  env.update(CIFAR10C_DIR='/c10c', IMAGENET_C_DIR='/inc', IMAGENET_A_DIR='/ina')
  args = ['--shard', '4/40', '--then_eval', '--then_audit']
  assert _run(script, 'all', *args, **env).returncode == 0
  commands = _recorded(log)
  assert commands == _lines(script, 'all', '--dry_run', *args, **env)
  runs = range(4, MATRIX_SIZE[script], 40)
  assert len(commands) == 4 * len(runs)
  data = '--data_dir=%s' % env['DATA_DIR']
  extra = (['--cifar10c_dir=/c10c'] if script == 'run_cifar.sh'
           else ['--imagenet_c_dir=/inc', '--imagenet_a_dir=/ina'])
  dataset = 'cifar10' if script == 'run_cifar.sh' else 'imagenet'
  for i in range(len(runs)):
    train, evaluate, audit_linf, audit_l2 = commands[4 * i:4 * i + 4]
    model_dir, = [w for w in train.split() if w.startswith('--model_dir=')]
    assert evaluate.split() == ['python', '-m', evaluation, model_dir, data] + extra
    for audit, norm in ((audit_linf, 'linf'), (audit_l2, 'l2')):
      assert audit.split() == ['python', '-m', 'eval.audit', '--dataset', dataset,
                               model_dir, data, '--norm=%s' % norm]


@pytest.mark.parametrize('script', SCRIPTS)
def test_failed_run_stops_the_task_unmarked(script, recorder, tmp_path):
  env, log = recorder
  result = _run(script, 'all', '--shard', '0/13', '--then_eval', RECORD_EXIT='3', **env)
  assert result.returncode == 3
  assert len(_recorded(log)) == 1  # the first training run, no evaluation after it
  assert not list((tmp_path / 'runs').glob('*/finished_command.txt'))


@pytest.mark.parametrize('script', SCRIPTS)
def test_usage_documents_shards_on_slurm_and_kubernetes(script):
  usage = '\n'.join(_lines(script, '--help'))
  for word in ('--shard K/N', '--then_eval', '--then_audit', 'SLURM_ARRAY_TASK_ID',
               'JOB_COMPLETION_INDEX', 'SWEEP_PYTHON'):
    assert word in usage


def _rerun_is_skipped(script, run_dir, args, recorder):
  """Re-runs a finished run's shard through the recorder: only its evaluation runs."""
  env, log = recorder
  env.update(DATA_DIR=args['DATA_DIR'], MODEL_ROOT=args['MODEL_ROOT'])
  result = _run(script, 'all', *args['flags'], '--then_eval', **env)
  assert result.returncode == 0, result.stderr
  assert '== skip %s: finished at step' % run_dir in result.stdout
  assert [line.split()[2] for line in _recorded(log)] == [
      'eval.cifar_suite' if script == 'run_cifar.sh' else 'eval.imagenet_suite']
  # A command that trains it further is not "finished": it goes to the trainer.
  log.unlink()
  assert _run(script, 'all', *args['flags'], args['longer'], **env).returncode == 0
  command, = _recorded(log)
  assert '--model_dir=%s' % run_dir in command


def _train_for_real(script, args):
  result = _run(script, 'all', *args['flags'], DATA_DIR=args['DATA_DIR'],
                MODEL_ROOT=args['MODEL_ROOT'])
  assert result.returncode == 0, result.stderr[-3000:]


@pytest.mark.slow
def test_finished_cifar_run_is_skipped_on_rerun(tmp_path, recorder):
  root = tmp_path / 'real'
  args = {'DATA_DIR': write_cifar_python(tmp_path / 'cifar'), 'MODEL_ROOT': str(root),
          'flags': ['--shard', '25/26', '--train_epochs=1', '--depth=10', '--width=1',
                    '--num_train_images=64', '--num_eval_images=16', '--train_batch_size=32',
                    '--eval_batch_size=16', '--augment_name=none'],
          'longer': '--num_train_images=96'}
  _train_for_real('run_cifar.sh', args)
  run_dir = root / 'xent'
  assert 'model.ckpt-2"' in (run_dir / 'checkpoint').read_text().splitlines()[0]
  _rerun_is_skipped('run_cifar.sh', run_dir, args, recorder)


@pytest.mark.slow
def test_finished_imagenet_run_is_skipped_on_rerun(tmp_path, recorder):
  data_dir = str(tmp_path / 'imagenet')
  make_tfrecords.write_synthetic_imagenet(data_dir, 6, 40, seed=2)
  root = tmp_path / 'real'
  # The extra flags come last, so --resnet_depth=18 makes the first run small.
  args = {'DATA_DIR': data_dir, 'MODEL_ROOT': str(root),
          'flags': ['--shard', '0/86', '--resnet_depth=18', '--image_size=32',
                    '--train_batch_size=2', '--eval_batch_size=4', '--train_steps=2',
                    '--num_eval_images=6', '--steps_per_eval=2', '--iterations_per_loop=1'],
          'longer': '--train_steps=4'}
  _train_for_real('run_imagenet.sh', args)
  run_dir = root / 'r50_w1_xent'
  assert 'model.ckpt-2"' in (run_dir / 'checkpoint').read_text().splitlines()[0]
  _rerun_is_skipped('run_imagenet.sh', run_dir, args, recorder)
