"""Figures 1 and 2 of the paper: CIFAR-10 accuracy under PGD, labelled targeted or not.

Figure 1 plots accuracy against rho at one epsilon per norm; Figure 2 plots
accuracy against epsilon per run. The paper calls Figure 1's attack targeted
(L463-464) but its contributions untargeted (L69-70), and a model's accuracy
differs by many points between the two, so Figure 1 has two panels: targeted
PGD (`pgd_<norm>_targeted`) and untargeted PGD (`pgd_<norm>`), each titled so.
Figure 2 plots untargeted PGD (`pgd_<norm>`) only, as its caption says. When a
run has a robustness audit (`audit_linf`, `audit_l2`), its accuracy after
every attack is drawn dashed in the colour of its PGD-20 curve (Figure 1: in
the untargeted panel), so a gap between the two shows at a glance. Both
figures mark the paper's numbers for Madry et al.'s adversarially trained
WRN as grey horizontal lines (`MADRY_MARKS`).
Each figure function returns a matplotlib Figure, or None (logged) without data.
"""
import numpy as np

from eval.report import plotting
from eval.report import runs

# Figure 2: the L2 axis is linear up to this epsilon and logarithmic beyond.
L2_LINEAR_LIMIT = 100.0
# Figure 1's series: (label, evaluation, norm of its epsilon or None, colour, line
# style). A PGD row's evaluation takes its panel's suffix (FIGURE1_PANELS).
FIGURE1_SERIES = (
    ('clean', 'clean', None, 'black', '-'),
    ('PGD L2', 'pgd_l2', 'l2', 'tab:blue', '-'),
    ('audit L2', 'audit_l2', 'l2', 'tab:blue', '--'),
    ('PGD L∞', 'pgd_linf', 'linf', 'tab:red', '-'),
    ('audit L∞', 'audit_linf', 'linf', 'tab:red', '--'),
)
# Figure 1's panels: (attack mode, suffix of its PGD evaluations, draws audits,
# title). The audits are untargeted attack sequences (APGD-T among them).
FIGURE1_PANELS = (
    ('targeted', '_targeted', False, 'targeted PGD (as Figure 1, L463-464)'),
    ('untargeted', '', True, 'untargeted PGD (as L69-70 and Figure 2)'),
)
# The paper's numbers for Madry et al.'s adversarially trained WRN-28x10, in
# percent (Figure 1's caption): (label, value, norm of the panels it belongs to
# or None for every panel, line style). The paper gives no L-inf number for
# that model, so there is no L-inf mark.
MADRY_MARKS = (
    ('Madry et al. (paper, L423): clean', 87.3, None, '-.'),
    ("Madry et al. (paper, L418): Figure 1's L2 attack", 45.7, 'l2', ':'),
)
# The deterministic baseline is a horizontal line: dashed for PGD, dotted for its audit.
_BASELINE_STYLE = {'-': '--', '--': ':'}
# Figure 1's markers, one per CEB-like column (CEB, VIB, ...), so that columns
# sharing a metric's colour still tell apart; audits draw theirs hollow.
COLUMN_MARKERS = ('o', 's', '^', 'D', 'v')
# Figure 2's curves per run: (evaluation prefix, line style, label suffix).
FIGURE2_CURVES = (('pgd_', '-', ''), ('audit_', '--', ' audit'))


def _accuracy(run, evaluation, epsilon=None):
  """Accuracy % of a run: clean, or a PGD or audit curve's at epsilon; None if absent."""
  metrics = run.metrics(evaluation)
  if not metrics:
    return None
  value = metrics['accuracy'] if evaluation == 'clean' else metrics['curve'].get(epsilon)
  return None if value is None else 100.0 * value


def _draw_series(axes, baselines, series, spec, epsilon):
  """Draws one Figure 1 series for every CIFAR column; returns whether anything was drawn."""
  label, evaluation, _, color, style = spec
  drawn = False
  for column, run in baselines.items():
    value = _accuracy(run, evaluation, epsilon)
    if value is not None:
      axes.axhline(value, color=color, linestyle=_BASELINE_STYLE[style],
                   label='%s (Det.): %s' % (column, label))
      drawn = True
  for index, (column, slot) in enumerate(series.items()):
    points = [(rho, _accuracy(slot[rho], evaluation, epsilon)) for rho in sorted(slot)]
    points = [p for p in points if p[1] is not None]
    if points:
      axes.plot(*zip(*points), marker=COLUMN_MARKERS[index % len(COLUMN_MARKERS)],
                fillstyle='full' if style == '-' else 'none', linestyle=style,
                color=color, label='%s: %s' % (column, label))
      drawn = True
  return drawn


def draw_madry_marks(axes, norms):
  """Draws the MADRY_MARKS that belong to a panel showing `norms`, labelled."""
  for label, value, norm, style in MADRY_MARKS:
    if norm is None or norm in norms:
      axes.axhline(value, color='grey', linestyle=style, linewidth=1.2,
                   label='%s %.1f%%' % (label, value))


def _figure1_panel(axes, groups, epsilons, panel):
  """Draws one Figure 1 panel; returns the evaluations it found data for."""
  baselines, series = runs.cifar_groups(groups)
  mode, suffix, audits, title = panel
  drawn = []
  for label, evaluation, norm, color, style in FIGURE1_SERIES:
    if evaluation.startswith('audit_') and not audits:
      continue
    if evaluation.startswith('pgd_'):
      evaluation, label = evaluation + suffix, '%s %s' % (label, mode)
    name = label if norm is None else '%s ε=%g' % (label, epsilons[norm])
    if _draw_series(axes, baselines, series, (name, evaluation, norm, color, style),
                    epsilons.get(norm)):
      drawn.append(evaluation)
  if not [e for e in drawn if e.startswith('pgd_')]:
    axes.text(0.5, 0.5, 'no %s PGD results' % mode, transform=axes.transAxes,
              ha='center', va='center', color='grey')
  draw_madry_marks(axes, ('l2', 'linf'))
  axes.set(xlabel='ρ', ylabel='accuracy (%)', title=title)
  # Below the plot: with every objective's clean, PGD and audit lines it covers the curves.
  axes.legend(fontsize='x-small', loc='upper center', bbox_to_anchor=(0.5, -0.12), ncol=2)
  return drawn


def _figure1_log_line(drawn):
  """The log line naming what each Figure 1 panel drew, and the Madry marks."""
  panels = ['%s panel: %s' % (panel[0], ', '.join(e for e in evaluations if e != 'clean')
                              or 'no PGD results')
            for panel, evaluations in zip(FIGURE1_PANELS, drawn)]
  marks = ['%s %.1f%%' % (label.split(': ')[-1], value) for label, value, _, _ in MADRY_MARKS]
  return 'figure1.png: %s; Madry et al. marks from the paper: %s (it gives no L∞ value)' % (
      '; '.join(panels), ', '.join(marks))


def figure1(groups, epsilons, log):
  """Figure 1: CIFAR-10 accuracy vs rho, clean and under PGD L2 and L-inf, per mode.

  Two panels, targeted and untargeted PGD (FIGURE1_PANELS), each with one line
  per metric and CEB-like column over rho (one marker per column; audits
  dashed, their markers hollow, in the untargeted panel); the deterministic
  baseline's (XEnt) values are horizontal lines of the same colours, and the
  paper's Madry et al. values grey ones. A panel without its mode's results
  says so; a log line names the evaluations each panel drew.

  Args:
    groups: runs.group_runs' groups.
    epsilons: {'linf': eps, 'l2': eps}, pixel units.
    log: called with a line naming the PGD plotted, or why the figure is skipped.

  Returns:
    A Figure, or None (logged) when no CIFAR run has any of these values.
  """
  figure = plotting.new_figure((14, 7.5))
  drawn = [_figure1_panel(axes, groups, epsilons, panel)
           for axes, panel in zip(figure.subplots(1, 2), FIGURE1_PANELS)]
  if not any(drawn):
    log('figure1.png skipped: no CIFAR-10 clean or PGD (L2 eps=%g, L-inf eps=%g) results'
        % (epsilons['l2'], epsilons['linf']))
    return None
  log(_figure1_log_line(drawn))
  figure.suptitle('CIFAR-10: accuracy vs ρ')
  return figure


def l2_axis_forward(epsilon):
  """Figure 2's L2 axis: linear up to L2_LINEAR_LIMIT, logarithmic beyond.

  x -> L*(1 + ln(x/L)) above L is continuous with the same slope at L, so the
  two parts join smoothly.
  """
  epsilon = np.asarray(epsilon, dtype=float)
  above = L2_LINEAR_LIMIT * (1.0 + np.log(np.maximum(epsilon, L2_LINEAR_LIMIT) / L2_LINEAR_LIMIT))
  return np.where(epsilon <= L2_LINEAR_LIMIT, epsilon, above)


def l2_axis_inverse(position):
  """The inverse of `l2_axis_forward` (the exponent is capped against overflow)."""
  position = np.asarray(position, dtype=float)
  exponent = np.minimum(position / L2_LINEAR_LIMIT - 1.0, 700.0)
  return np.where(position <= L2_LINEAR_LIMIT, position, L2_LINEAR_LIMIT * np.exp(exponent))


def _l2_ticks(largest):
  """Ticks of the L2 axis: every 50 up to the joint, then 2-5-10 steps."""
  ticks = [0.0, L2_LINEAR_LIMIT / 2, L2_LINEAR_LIMIT]
  decade = L2_LINEAR_LIMIT
  while decade * 2 <= largest:
    ticks += [t for t in (decade * 2, decade * 5, decade * 10) if t <= largest]
    decade *= 10
  return ticks


def _figure2_curves(groups, rhos, log):
  """[(label, run)] of Figure 2: the baselines, then CEB-like runs at `rhos` (None: all)."""
  baselines, series = runs.cifar_groups(groups)
  curves = [('%s (Det.)' % column, run) for column, run in baselines.items()]
  for column, slot in series.items():
    curves += [('%s ρ=%g' % (column, rho), slot[rho]) for rho in sorted(slot)
               if rhos is None or rho in rhos]
  found = {rho for slot in series.values() for rho in slot}
  for rho in sorted(set(rhos or ()) - found):
    log('figure2.png: no CIFAR-10 run at rho=%g (--figure2_rhos)' % rho)
  return curves


def _plot_curves(axes, curves, norm):
  """Plots each run's PGD and audit curves of one norm; returns the largest epsilon drawn."""
  largest = None
  for label, run in curves:
    color = None  # The first curve of a run picks its colour; its audit reuses it.
    for prefix, style, suffix in FIGURE2_CURVES:
      metrics = run.metrics(prefix + norm)
      if metrics and metrics['curve']:
        epsilons = sorted(metrics['curve'])
        line, = axes.plot(epsilons, [100.0 * metrics['curve'][e] for e in epsilons],
                          marker='.', linestyle=style, color=color, label=label + suffix)
        color = line.get_color()
        largest = max(largest or 0.0, epsilons[-1])
  return largest


def figure2(groups, rhos, log):
  """Figure 2: CIFAR-10 accuracy vs epsilon of untargeted PGD, L-inf left, L2 right.

  The L2 axis uses matplotlib's 'function' scale with `l2_axis_forward`:
  linear up to epsilon 100, logarithmic beyond (the paper's switch), marked by a
  dotted line. Audits are dashed in their run's colour. The paper's Madry et
  al. values are grey horizontal lines: clean on both panels, Figure 1's L2
  attack on the L2 one (its epsilon is not given, so it is a level, not a point).

  Returns:
    A Figure, or None (logged) without any CIFAR PGD sweep or audit.
  """
  curves = _figure2_curves(groups, rhos, log)
  figure = plotting.new_figure((11, 4.5))
  linf_axes, l2_axes = figure.subplots(1, 2)
  linf_largest = _plot_curves(linf_axes, curves, 'linf')
  l2_largest = _plot_curves(l2_axes, curves, 'l2')
  if linf_largest is None and l2_largest is None:
    log('figure2.png skipped: no untargeted CIFAR-10 PGD results (pgd_linf, pgd_l2)')
    return None
  linf_axes.set(xlabel='L∞ ε (pixels, 0-255)', ylabel='accuracy (%)',
                title='untargeted PGD L∞')
  l2_axes.set_xscale('function', functions=(l2_axis_forward, l2_axis_inverse))
  l2_axes.set_xticks(_l2_ticks(l2_largest or L2_LINEAR_LIMIT))
  l2_axes.axvline(L2_LINEAR_LIMIT, color='grey', linestyle=':', linewidth=1)
  l2_axes.set(xlabel='L2 ε (pixels; log scale beyond 100)', ylabel='accuracy (%)',
              title='untargeted PGD L2')
  draw_madry_marks(linf_axes, ('linf',))
  draw_madry_marks(l2_axes, ('l2',))
  for axes in (linf_axes, l2_axes):
    axes.legend(fontsize='small')
  return figure
