"""The second study's output: summary.json, summary.md, figures, command (no TensorFlow).

Writes to one folder (and copies to --docs_dir):
  summary.json         the issue-23 schema (design, models, rho_star, gates,
                       delta, verdict), every unmeasured value null;
  summary.md           the same in tables, the gates and the verdict first;
  robustness_rho.png   audit and PGD-20 accuracy at each radius against rho
                       (seed 0), with XEnt's range over seeds as a band;
  delta_pairs.png      the paired audit Delta per seed at L-inf eps=2, its
                       mean and the 95% bootstrap CI;
  training.png         train and test accuracy over training, every model;
  command.txt          the exact command that produced it.
"""
import json
import os
import shutil

from eval.report import plotting
from resnet_ceb import fileio

RADII = ('linf_1', 'linf_2', 'linf_4', 'l2_32', 'l2_64')


def _fmt(value, spec='%.3f'):
  return 'n/a' if value is None else spec % value


def _label(model):
  return 'xent' if model['objective'] == 'xent' else 'ceb rho=%g' % model['rho']


def _keys(models):
  """The radius keys some model has an audit number for, in RADII order first."""
  found = {key for m in models for key, value in (m['audit'] or {}).items()
           if value is not None}
  return [k for k in RADII if k in found] + sorted(found - set(RADII))


def summary_markdown(summary):
  """summary.md: verdict, gates, Delta, then one row per model."""
  delta, design = summary['delta'], summary['design']
  lines = ['# Study 2: CEB against XEnt in the interpolating regime', '',
           '**Verdict: `%s`** (%s)' % (summary['verdict'], summary['verdict_reason']), '',
           'rho* = %s; gates: %s' % (_fmt(summary['rho_star'], '%g'), ', '.join(
               '%s %s' % (k, {True: 'holds', False: 'fails', None: 'not measured'}[v])
               for k, v in summary['gates'].items())), '',
           'Delta (audit, CEB rho* - XEnt, L-inf eps=2): pairs %s, mean %s, 95%% CI %s; '
           'PGD-20 mean %s; audit L2 eps=64 mean %s' % (
               '[' + ', '.join(_fmt(p, '%+.3f') for p in delta['pairs'] or []) + ']',
               _fmt(delta['mean'], '%+.3f'),
               'n/a' if delta['ci95'] is None else '[%+.3f, %+.3f]' % tuple(delta['ci95']),
               _fmt(delta['pgd20_linf_2_mean'], '%+.3f'),
               _fmt(delta['audit_l2_64_mean'], '%+.3f')), '',
           'Design: %s, %s training images, %s epochs (%s steps of %s), %s, %s; %s minutes '
           'of wall time over %s invocation(s).'
           % (design['net'], design['images'], design['epochs'], design['steps'],
              design['batch_size'], design['augmentation'], design['precision'],
              design['wall_time_minutes'], design['invocations']), '',
           'Command: `%s`' % design['command'], '']
  keys = _keys(summary['models'])
  lines += ['| model | seed | train | test | train gain, last 20% | '
            + ' | '.join('audit %s (PGD-20)' % k for k in keys) + ' |',
            '|' + '---|' * (5 + len(keys))]
  for model in summary['models']:
    audit, pgd20 = model['audit'] or {}, model['pgd20'] or {}
    lines.append('| %s | %d | %s | %s | %s | %s |' % (
        _label(model), model['seed'], _fmt(model['train_accuracy']),
        _fmt(model['test_accuracy']), _fmt(model['train_gain_last_20pct'], '%+.3f'),
        ' | '.join('%s (%s)' % (_fmt(audit.get(k)), _fmt(pgd20.get(k))) for k in keys)))
  return '\n'.join(lines) + '\n'


def _robustness_figure(models):
  keys = _keys(models)
  figure = plotting.new_figure((3.2 * max(1, len(keys)), 3.4))
  xents = [m for m in models if m['objective'] == 'xent']
  cebs = sorted((m for m in models if m['objective'] == 'ceb' and m['seed'] == 0),
                key=lambda m: m['rho'])
  for index, key in enumerate(keys):
    axes = figure.add_subplot(1, len(keys), index + 1)
    for family, style in (('audit', '-'), ('pgd20', ':')):
      values = [(m['rho'], (m[family] or {}).get(key)) for m in cebs]
      values = [(r, v) for r, v in values if v is not None]
      axes.plot([r for r, _ in values], [v for _, v in values], 'o' + style,
                color='tab:blue' if family == 'audit' else 'tab:gray',
                label='CEB %s' % family)
      band = [(m[family] or {}).get(key) for m in xents]
      band = [v for v in band if v is not None]
      if band:
        axes.axhspan(min(band), max(band) + 1e-3, alpha=0.2,
                     color='black' if family == 'audit' else 'gray',
                     label='XEnt %s (seeds)' % family)
    axes.set(title=key, xlabel='rho', ylabel='robust accuracy')
    axes.grid(alpha=0.3)
  axes.legend(fontsize=7)
  return plotting.png(figure)


def _delta_figure(summary):
  delta = summary['delta']
  figure = plotting.new_figure((4.5, 3.4))
  axes = figure.add_subplot(1, 1, 1)
  if delta['pairs']:
    axes.bar([str(s) for s in delta['seeds']], delta['pairs'], color='tab:blue')
    axes.axhline(delta['mean'], color='black', label='mean %+.3f' % delta['mean'])
    axes.axhspan(delta['ci95'][0], delta['ci95'][1], alpha=0.2, color='black',
                 label='95% bootstrap CI')
    axes.legend(fontsize=8)
  axes.axhline(0.0, color='gray', linewidth=0.8)
  axes.set(title='audit, L-inf eps=2: CEB rho*=%s - XEnt' % _fmt(summary['rho_star'], '%g'),
           xlabel='seed', ylabel='Delta')
  return plotting.png(figure)


def _training_figure(curves):
  figure = plotting.new_figure((10, 3.6))
  for index, key in enumerate(('train_accuracy', 'test_accuracy')):
    axes = figure.add_subplot(1, 2, index + 1)
    for label, points in sorted(curves.items()):
      axes.plot([p['step'] for p in points], [p[key] for p in points], marker='.',
                linestyle='-' if label.startswith('xent') else '--', label=label)
    axes.set(title=key.replace('_', ' '), xlabel='training step', ylabel='accuracy')
    axes.grid(alpha=0.3)
  axes.legend(fontsize=7)
  return plotting.png(figure)


def write(summary, curves, out_dir, docs_dir=None):
  """Writes every output file atomically to out_dir (and copies them to docs_dir).

  Args:
    summary: the summary.json dict (studies.study2 builds it).
    curves: {run label: checkpoint-curve points} for the training figure.
    out_dir: the folder written.
    docs_dir: also copy every file here, or None.

  Returns:
    The names written, sorted.
  """
  files = {'summary.json': (json.dumps(summary, indent=1, allow_nan=False) + '\n').encode(),
           'summary.md': summary_markdown(summary).encode('utf-8'),
           'command.txt': (summary['design']['command'] + '\n').encode()}
  if plotting.AVAILABLE:
    files['robustness_rho.png'] = _robustness_figure(summary['models'])
    files['delta_pairs.png'] = _delta_figure(summary)
    files['training.png'] = _training_figure(curves)
  os.makedirs(out_dir, exist_ok=True)
  for name, data in files.items():
    fileio.atomic_write_bytes(os.path.join(out_dir, name), data)
  if docs_dir:
    os.makedirs(docs_dir, exist_ok=True)
    for name in files:
      shutil.copyfile(os.path.join(out_dir, name), os.path.join(docs_dir, name))
  return sorted(files)
