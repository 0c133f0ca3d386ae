"""Figures 3 (ResNet50) and 4 (ResNet152) of the paper: every Table 1 error across rho.

As in the paper: one band per row of Table 1 (clean, mCE, average CE in red
at the top; the 15 corruptions, ImageNet-A, PGD L2 and L-inf in blue); three
network pairs in light (no AutoAugment, CEB), medium (AutoAugment, CEB) and
dark (twice as wide, AutoAugment, cCEB) shades; the XEnt baseline as a
vertical line; the CEB errors as a line over rho, highest rho at the top of
the band; a dot at rho*.
"""
from eval.report import plotting
from eval.report import runs
from eval.report import table1

# The paper's three pairs of networks, lightest to darkest.
FIGURE_IMAGENET_SETS = (('ResNet%d-aa', 'CEB'), ('ResNet%d', 'CEB'), ('ResNet%dx2', 'cCEB'))
BLUES = ('#9ecae1', '#3182bd', '#08306b')
REDS = ('#fc9272', '#de2d26', '#67000d')
SUMMARY_ROWS = ('clean', 'mce', 'average_ce')


def _figure_sets(groups, depth):
  """The network pairs: [(name, {rho: CEB Run}, XEnt Run or None)]."""
  sets = []
  for pattern, objective in FIGURE_IMAGENET_SETS:
    architecture = pattern % depth
    ceb = groups.get(('imagenet', '%s/%s' % (architecture, objective)), {})
    xent = groups.get(('imagenet', architecture + '/XEnt'), {}).get(None)
    sets.append(('%s %s' % (architecture, objective), ceb, xent))
  return sets


def _rho_position(row, rho, rho_range):
  """Vertical position of a rho inside a row's band: highest rho on top."""
  low, high = rho_range
  fraction = 0.5 if high == low else (high - rho) / (high - low)
  return row - 0.4 + 0.8 * fraction


def _draw_set(axes, index, ceb, xent, rho_range):
  """Draws one network pair on every row; returns whether anything was drawn."""
  rho_star, _ = runs.choose_run(ceb) if ceb else (None, None)
  ceb_errors = {rho: table1.run_errors(run) for rho, run in ceb.items()}
  xent_errors = table1.run_errors(xent) if xent else {}
  drawn = False
  for row, name in enumerate(table1.ERROR_ROWS):
    color = (REDS if name in SUMMARY_ROWS else BLUES)[index]
    if xent_errors.get(name) is not None:
      axes.vlines(xent_errors[name], row - 0.45, row + 0.45, color=color, linewidth=1.5)
      drawn = True
    points = [(ceb_errors[rho][name], _rho_position(row, rho, rho_range))
              for rho in sorted(ceb) if ceb_errors[rho][name] is not None]
    if points:
      axes.plot(*zip(*points), color=color, linewidth=1, marker='.', markersize=3)
      drawn = True
    if rho_star in ceb_errors and ceb_errors[rho_star][name] is not None:
      axes.plot(ceb_errors[rho_star][name], _rho_position(row, rho_star, rho_range),
                'o', color=color, markersize=6)
  return drawn


def _label_axes(axes, sets, depth, rho_range):
  """Row labels, band separators, the legend and the title."""
  rows = table1.ERROR_ROWS
  axes.set_yticks(range(len(rows)), [table1.ROW_LABELS[row] for row in rows])
  axes.set_ylim(len(rows) - 0.5, -0.5)
  for row in range(len(rows) - 1):
    axes.axhline(row + 0.5, color='0.9', linewidth=0.5)
  handles = [axes.plot([], [], color=BLUES[i], label='%s (line: XEnt; dot: ρ*)' % label)[0]
             for i, (label, _, _) in enumerate(sets)]
  axes.legend(handles=handles, fontsize='small', loc='lower left')
  axes.set(xlabel='top-1 error (%)', title='ResNet%d: errors across ρ (top of each band: '
           'ρ=%g, bottom: ρ=%g)' % (depth, rho_range[1], rho_range[0]))


def figure_imagenet(groups, depth, log, name):
  """Figure 3 (depth 50) or 4 (depth 152) as a Figure.

  Returns:
    A Figure, or None (logged under `name`) without results of any of these networks.
  """
  sets = _figure_sets(groups, depth)
  rhos = [rho for _, ceb, _ in sets for rho in ceb]
  rho_range = (min(rhos), max(rhos)) if rhos else (0.0, 0.0)
  figure = plotting.new_figure((8, 12))
  axes = figure.add_subplot()
  drawn = [_draw_set(axes, i, ceb, xent, rho_range) for i, (_, ceb, xent) in enumerate(sets)]
  if not any(drawn):
    log('%s skipped: no ImageNet ResNet%d results' % (name, depth))
    return None
  _label_axes(axes, sets, depth, rho_range)
  return figure
