"""matplotlib for the report's figures: an optional dependency, rendered without a display.

matplotlib is the 'plots' extra; without it the report still writes its tables
and says the figures were skipped. Figures use the Agg canvas directly, so no
GUI backend or global pyplot state is involved.
"""
import io

try:
  from matplotlib import figure as mpl_figure
  from matplotlib.backends import backend_agg
except ImportError:  # The 'plots' extra is not installed.
  mpl_figure = backend_agg = None

AVAILABLE = mpl_figure is not None


def new_figure(figsize):
  """A matplotlib Figure of `figsize` inches on an Agg canvas."""
  figure = mpl_figure.Figure(figsize=figsize)
  backend_agg.FigureCanvasAgg(figure)
  return figure


def png(figure):
  """Lays out a figure and renders it into PNG bytes."""
  figure.tight_layout()
  buffer = io.BytesIO()
  figure.savefig(buffer, format='png', dpi=100)
  return buffer.getvalue()
