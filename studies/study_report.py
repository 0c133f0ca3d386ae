"""The study's figures and summary from its result files (no TensorFlow).

Reads every model's `results/checkpoint_curve.json` (eval.checkpoint_curve)
and final result files (eval.report.results_reader) under model_root/seed<S>,
and writes to model_root/study:
  training.png    train and test accuracy over training, every model;
  robustness.png  PGD L-inf 4 and L2 128 accuracy over training;
  frontier.png    every checkpoint of every model as (clean, robust) accuracy;
  summary.md      the final models' table: mean and spread over seeds.
"""
import glob
import os
import shutil

import numpy as np

from eval.report import plotting
from eval.report import results_reader
from resnet_ceb import fileio

CURVE_KEYS = (('pgd_linf_4', 'PGD L∞ ε=4'), ('pgd_l2_128', 'PGD L2 ε=128'))
FINAL_COLUMNS = (('pgd_linf', (2.0, 4.0, 8.0)), ('pgd_l2', (32.0, 128.0, 512.0)),
                 ('pgd_linf_targeted', (2.0, 4.0, 8.0)), ('pgd_l2_targeted', (32.0, 128.0, 512.0)))


def _run_dirs(model_root):
  """{run name: [model_dir of each seed, seed order]}."""
  runs = {}
  for seed_dir in sorted(glob.glob(os.path.join(model_root, 'seed*'))):
    for model_dir in sorted(glob.glob(os.path.join(seed_dir, '*'))):
      if os.path.exists(os.path.join(model_dir, 'params.json')):
        runs.setdefault(os.path.basename(model_dir), []).append(model_dir)
  return dict(sorted(runs.items(), key=lambda kv: (kv[0] != 'xent', kv[0])))


def _curve(model_dir):
  path = os.path.join(model_dir, 'results', 'checkpoint_curve.json')
  return fileio.read_json(path)['points'] if os.path.exists(path) else []


def _finals(model_dir):
  """{evaluation: metrics} of the model's latest evaluated checkpoint."""
  _, complete, _ = results_reader.read_all(os.path.join(model_dir, 'results'))
  latest = {}
  for result in complete:
    if result.evaluation not in latest or result.step > latest[result.evaluation].step:
      latest[result.evaluation] = result
  return {name: result.metrics for name, result in latest.items()}


def _colours(names):
  palette = ['black', 'tab:blue', 'tab:orange', 'tab:green', 'tab:red', 'tab:purple']
  return {name: palette[i % len(palette)] for i, name in enumerate(names)}


def _over_training(runs, keys, title):
  figure = plotting.new_figure((5 * len(keys), 3.6))
  colours = _colours(runs)
  for index, (key, label) in enumerate(keys):
    axes = figure.add_subplot(1, len(keys), index + 1)
    for name, dirs in runs.items():
      for seed, model_dir in enumerate(dirs):
        points = _curve(model_dir)
        axes.plot([p['step'] for p in points], [p[key] for p in points],
                  color=colours[name], linestyle='-' if seed == 0 else '--',
                  marker='.', label=name if seed == 0 else None)
    axes.set(title=label, xlabel='training step', ylabel='accuracy')
    axes.grid(alpha=0.3)
  axes.legend(fontsize=8)
  figure.suptitle(title)
  return plotting.png(figure)


def _frontier(runs):
  figure = plotting.new_figure((10, 4))
  colours = _colours(runs)
  for index, (key, label) in enumerate(CURVE_KEYS):
    axes = figure.add_subplot(1, 2, index + 1)
    for name, dirs in runs.items():
      for seed, model_dir in enumerate(dirs):
        points = _curve(model_dir)
        clean = [p['test_accuracy'] for p in points]
        robust = [p[key] for p in points]
        axes.scatter(clean, robust, s=14, color=colours[name], marker='o' if seed == 0 else 'x',
                     label=name if seed == 0 else None)
        if points:  # The final checkpoint, ringed.
          axes.scatter(clean[-1:], robust[-1:], s=80, facecolors='none', edgecolors=colours[name])
    axes.set(title='every checkpoint: %s' % label, xlabel='clean test accuracy',
             ylabel='robust accuracy (first test images)')
    axes.grid(alpha=0.3)
  axes.legend(fontsize=8)
  return plotting.png(figure)


def _cell(values):
  """'mean' or 'mean ± half-range' over seeds, in percent."""
  values = [v for v in values if v is not None]
  if not values:
    return '–'
  mean = 100 * float(np.mean(values))
  if len(values) == 1:
    return '%.1f' % mean
  return '%.1f ± %.1f' % (mean, 50 * (max(values) - min(values)))


def _row_values(model_dir):
  """The final model's numbers, keyed as the summary's columns."""
  finals, curve = _finals(model_dir), _curve(model_dir)
  values = {'train': curve[-1]['train_accuracy'] if curve else None,
            'clean': finals.get('clean', {}).get('accuracy')}
  for evaluation, epsilons in FINAL_COLUMNS:
    for epsilon in epsilons:
      values['%s %g' % (evaluation, epsilon)] = finals.get(evaluation, {}).get(
          'curve', {}).get(epsilon)
  for norm in ('linf', 'l2'):
    audit = finals.get('audit_' + norm, {})
    for epsilon, accuracy in sorted(audit.get('curve', {}).items()):
      values['audit_%s %g' % (norm, epsilon)] = accuracy
    values['verdict_' + norm] = audit.get('verdict')
  errors = finals.get('cifar10_c', {}).get('corruption_errors')
  values['cifar10_c'] = float(np.mean(list(errors.values()))) if errors else None
  extras = finals.get('cifar10_c', {}).get('extra_errors')
  values['cifar10_c_extra'] = float(np.mean(list(extras.values()))) if extras else None
  return values


def _columns(all_values):
  """The table's columns that hold a number for some model, in reading order."""
  def audited(norm):
    radii = {k for values in all_values for k in values if k.startswith('audit_%s ' % norm)}
    return sorted(radii, key=lambda k: float(k.split(' ')[1]))
  pgd = {evaluation: ['%s %g' % (evaluation, e) for e in epsilons]
         for evaluation, epsilons in FINAL_COLUMNS}
  ordered = (['train', 'clean'] + pgd['pgd_linf'] + audited('linf') + pgd['pgd_linf_targeted']
             + pgd['pgd_l2'] + audited('l2') + pgd['pgd_l2_targeted']
             + ['cifar10_c', 'cifar10_c_extra'])
  return [c for c in ordered if any(values.get(c) is not None for values in all_values)]


def frontier_gaps(runs, key):
  """Each CEB run's robust accuracy minus XEnt's at the same clean accuracy.

  XEnt's frontier is the linear interpolation of all its checkpoints (every
  seed pooled) over clean test accuracy; a CEB checkpoint outside XEnt's clean
  range has no gap. Returns {run: (gap at the final checkpoint, mean of each
  seed's), mean gap over all checkpoints in range, checkpoints in range)}.
  """
  xent = sorted((p['test_accuracy'], p[key]) for d in runs.get('xent', ()) for p in _curve(d))
  if not xent:
    return {}
  clean, robust = np.array(xent).T
  gaps = {}
  for name, dirs in runs.items():
    if name == 'xent':
      continue
    finals, every = [], []
    for model_dir in dirs:
      curve = _curve(model_dir)
      points = [p for p in curve if clean[0] <= p['test_accuracy'] <= clean[-1]]
      every += [p[key] - np.interp(p['test_accuracy'], clean, robust) for p in points]
      last = curve[-1:]
      if last and last[0] in points:
        finals.append(last[0][key] - np.interp(last[0]['test_accuracy'], clean, robust))
    gaps[name] = (float(np.mean(finals)) if finals else None,
                  float(np.mean(every)) if every else None, len(every))
  return gaps


def _frontier_lines(runs):
  lines = ['', '## Against XEnt at the same clean accuracy (the frontier)', '',
           'Robust accuracy minus XEnt\'s, XEnt interpolated over clean test accuracy through '
           'all its checkpoints (seeds pooled); points, percent. Positive: above XEnt.', '',
           '| run | attack | final checkpoint (mean over seeds) | all checkpoints in range '
           '(mean) | checkpoints in range |', '|---|---|---|---|---|']
  for key, label in CURVE_KEYS:
    for name, (final, mean, count) in frontier_gaps(runs, key).items():
      show = lambda v: '–' if v is None else '%+.1f' % (100 * v)  # noqa: E731
      lines.append('| %s | %s | %s | %s | %d |' % (name, label, show(final), show(mean), count))
  return lines


def summary_markdown(runs, best, minutes):
  """The final models' table (percent; mean ± half the range over seeds) and verdicts."""
  rows = {name: [_row_values(d) for d in dirs] for name, dirs in runs.items()}
  columns = _columns([v for per_seed in rows.values() for v in per_seed])
  lines = ['# The CIFAR-10 study: summary', '',
           'Final models; accuracies and errors in %%; "a ± b" is the mean and half the range '
           'over seeds. Most robust CEB at seed 0: `%s`. Wall time, summed over every '
           'invocation of this study (a re-run resumes and adds its own): %.0f min.'
           % (best, minutes), '',
           '| run | seeds | ' + ' | '.join(columns) + ' |',
           '|---|---|' + '---|' * len(columns)]
  for name, per_seed in rows.items():
    lines.append('| %s | %d | %s |' % (name, len(per_seed), ' | '.join(
        _cell([v.get(c) for v in per_seed]) for c in columns)))
  lines += _frontier_lines(runs)
  lines += ['', '## Audit verdicts', '']
  for name, per_seed in rows.items():
    for seed, values in enumerate(per_seed):
      lines.append('- %s seed %d: L∞ %s; L2 %s' % (name, seed, values.get('verdict_linf'),
                                                  values.get('verdict_l2')))
  return '\n'.join(lines) + '\n'


def write(model_root, best, *, minutes, docs_dir=None):
  """Writes the figures and summary.md to model_root/study (and docs_dir)."""
  runs = _run_dirs(model_root)
  files = {'summary.md': summary_markdown(runs, best, minutes).encode('utf-8')}
  if plotting.AVAILABLE:
    files['training.png'] = _over_training(runs, (('train_accuracy', 'train (8,336 clean)'),
                                                  ('test_accuracy', 'test')), 'accuracy')
    files['robustness.png'] = _over_training(runs, CURVE_KEYS, 'robust accuracy')
    files['frontier.png'] = _frontier(runs)
  out = os.path.join(model_root, 'study')
  os.makedirs(out, exist_ok=True)
  for name, data in files.items():
    fileio.atomic_write_bytes(os.path.join(out, name), data)
  if docs_dir:
    os.makedirs(docs_dir, exist_ok=True)
    sources = [os.path.join(out, n) for n in files] + sorted(
        glob.glob(os.path.join(model_root, 'report', '*.png')))
    for path in sources:
      shutil.copyfile(path, os.path.join(docs_dir, os.path.basename(path)))
  return sorted(files)
