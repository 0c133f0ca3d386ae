"""Figures 1-4 as PNG bytes, for those that have data."""
from eval.report import figures_cifar
from eval.report import figures_imagenet
from eval.report import plotting


def render_figures(groups, figure1_epsilons, figure2_rhos, log):
  """{file name: PNG bytes} of the figures that have data.

  Args:
    groups: runs.group_runs' groups.
    figure1_epsilons: {'linf': eps, 'l2': eps} of Figure 1, pixel units.
    figure2_rhos: the rho values Figure 2 draws; None for all.
    log: called with a line for every figure skipped.
  """
  if not plotting.AVAILABLE:
    log('figures skipped: matplotlib is not installed (pip install .[plots])')
    return {}
  figures = {
      'figure1.png': figures_cifar.figure1(groups, figure1_epsilons, log),
      'figure2.png': figures_cifar.figure2(groups, figure2_rhos, log),
      'figure3.png': figures_imagenet.figure_imagenet(groups, 50, log, 'figure3.png'),
      'figure4.png': figures_imagenet.figure_imagenet(groups, 152, log, 'figure4.png'),
  }
  return {name: plotting.png(figure) for name, figure in figures.items() if figure is not None}
