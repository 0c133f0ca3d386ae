"""The training benchmarks run end to end at tiny settings and print their ratios.

Speed itself is never asserted (the machine is shared); each benchmark runs in
its own process, as from the command line, because XLA's CPU flag is read once
per process.
"""
import math
import re
import subprocess
import sys

from cifar_fixtures import write_cifar_python
from conftest import REPO_ROOT
import pytest

from benchmarks import common
from benchmarks import precision

TINY_WRN = ['--depth', '10', '--width', '1', '--rounds', '1']


def run_benchmark(module, *args):
  """Runs `python -m benchmarks.<module> args` and returns its stdout."""
  result = subprocess.run([sys.executable, '-m', 'benchmarks.' + module] + list(args),
                          cwd=REPO_ROOT, capture_output=True, text=True, timeout=900)
  assert result.returncode == 0, result.stderr[-3000:]
  return result.stdout


def ratios(stdout, name):
  """Every `name=R` the benchmark printed, as floats."""
  return [float(value) for value in re.findall(r'%s=([0-9.]+)' % name, stdout)]


def test_paired_rounds_alternate_order_and_pair_by_round():
  calls = []
  clock = iter(range(1, 100))

  def contender(name):
    def run():
      calls.append(name)
      return next(clock)
    return run

  results = common.paired_rounds({'a': contender('a'), 'b': contender('b')}, 3)
  assert calls == ['a', 'b', 'b', 'a', 'a', 'b']
  assert results == {'a': [1, 4, 5], 'b': [2, 3, 6]}
  assert common.median_ratio(results['b'], results['a']) == pytest.approx(1.2)


@pytest.mark.slow
def test_estimator_overhead_prints_its_ratios():
  stdout = run_benchmark('estimator_overhead', *TINY_WRN, '--batch_size', '8',
                         '--steps', '3')
  # Batch 8: the trainer's call is 10 epochs of 50000 // 8 steps.
  assert 'Estimator, call of 62500 steps (projected)' in stdout
  for name in ('estimator_over_raw_ratio', 'estimator_over_raw_cpu_ratio'):
    [ratio] = ratios(stdout, name)
    assert math.isfinite(ratio) and ratio > 0


@pytest.mark.slow
def test_train_input_prints_its_ratio(tmp_path):
  data_dir = write_cifar_python(tmp_path, num_train=64, num_test=10)
  stdout = run_benchmark('train_input', *TINY_WRN, '--data_dir', data_dir,
                         '--batch_size', '8', '--steps', '2', '--warmup_steps', '0')
  assert '64 training images (autoaugment)' in stdout
  for name in ('real_over_constant_input_ratio', 'real_over_constant_cpu_ratio'):
    [ratio] = ratios(stdout, name)
    assert math.isfinite(ratio) and ratio > 0


@pytest.mark.slow
def test_xla_clusters_form_and_both_ratios_print():
  stdout = run_benchmark('xla', *TINY_WRN, '--batch_size', '4', '--image_size', '32',
                         '--resnet_batch_size', '2', '--steps', '2')
  clusters = re.findall(r'(\d+) / (\d+)', stdout)
  assert len(clusters) == 2
  for plain, xla in clusters:
    assert int(plain) == 0 and int(xla) > 0
  values = ratios(stdout, 'xla_over_plain_step_time_ratio')
  assert len(values) == 2 and all(math.isfinite(v) and v > 0 for v in values)


@pytest.mark.slow
def test_protobuf_impl_runs_both_implementations_and_prints_its_ratios():
  stdout = run_benchmark('protobuf_impl', '--rounds', '1', '--steps', '2')
  # Each child process really got the implementation its row names.
  assert re.search(r'^python +python ', stdout, re.M)
  assert re.search(r'^compiled +(upb|cpp) ', stdout, re.M)
  for name in ('python_over_compiled_wall', 'python_over_compiled_cpu'):
    [ratio] = ratios(stdout, name)
    assert math.isfinite(ratio) and ratio > 0


@pytest.mark.slow
def test_audit_cost_prints_both_ways_its_floor_and_the_per_pass_ratios():
  stdout = run_benchmark('audit_cost', '--depth', '10', '--width', '1', '--norms', 'linf',
                         '--num_examples', '6', '--batch_size', '6', '--apgd_steps', '3',
                         '--apgd_targets', '2', '--fab_targets', '2', '--fab_steps', '3',
                         '--square_queries', '4', '--rounds', '1',
                         '--timing_batch', '4')
  assert 'audit_never_higher=True' in stdout
  [audit_passes] = [int(n) for n in re.findall(r'audit +accuracy .* fwd\+bwd passes (\d+)',
                                               stdout)]
  floor, spent = [int(n) for n in re.search(
      r'floor: (\d+) fwd\+bwd passes .* \(the audit spent (\d+)\)', stdout).groups()]
  # The audit pays the floor's passes and more; the bound is a real ceiling.
  assert spent == audit_passes and 0 < floor <= audit_passes
  [bound] = ratios(stdout, 'bound_everything_over_floor')
  [apgd_ratio] = ratios(stdout, 'apgd100_over_100_fwd_bwd')
  [fab_ratio] = ratios(stdout, 'fab100_over_100_fwd_bwd')
  [fab_share] = ratios(stdout, 'fab_t_share_of_audit_wall')
  assert 0 <= fab_share <= 1
  assert all(math.isfinite(r) and r > 0 for r in (apgd_ratio, fab_ratio, bound))
  [checks_share] = ratios(stdout, 'checks_share_of_audit_wall')
  assert 0 < checks_share < 1
  # At radius 0 FAB never stops: one pass per example and iteration, plus the backward steps'.
  [fab_passes] = ratios(stdout, 'fab_passes_per_example_iteration')
  assert 1 <= fab_passes < 2
  [projection_share] = ratios(stdout, 'projection_share_of_fab100')
  assert math.isfinite(projection_share) and projection_share > 0


def test_cpu_bf16_flags_reads_the_flags_line(tmp_path):
  cpuinfo = tmp_path / 'cpuinfo'
  cpuinfo.write_text('processor\t: 0\nflags\t\t: fpu avx512f avx512_bf16 sse2\n'
                     'processor\t: 1\nflags\t\t: fpu amx_bf16\n')
  assert precision.cpu_bf16_flags(str(cpuinfo)) == {'avx512_bf16': True, 'amx_bf16': False}
  assert precision.cpu_bf16_flags(str(tmp_path / 'absent')) == {
      'avx512_bf16': False, 'amx_bf16': False}


@pytest.mark.slow
def test_precision_prints_the_cpu_flags_every_pair_and_last_its_ratio(tmp_path):
  data_dir = write_cifar_python(tmp_path, num_train=64, num_test=10)
  stdout = run_benchmark('precision', *TINY_WRN, '--data_dir', data_dir, '--batch_size', '8',
                         '--resnet_depth', '18', '--image_size', '32',
                         '--resnet_batch_size', '2', '--steps', '1', '--warmup_steps', '0')
  assert re.search(r'^CPU reports: avx512_bf16=(yes|no), amx_bf16=(yes|no)$', stdout, re.M)
  assert 'WRN-10-1 CEB, batch 8, AutoAugment input (64 images)' in stdout
  others = ratios(stdout, 'bfloat16_over_float32')
  last = stdout.strip().splitlines()[-1]
  [ratio] = ratios(last, 'bfloat16_over_float32_step_time')
  assert len(others) == 2 and all(math.isfinite(r) and r > 0 for r in others + [ratio])
