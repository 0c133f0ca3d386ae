"""Runs, their Table 1 columns and the paper's rho* (section 3.2).

A run is a model_dir at its latest evaluated checkpoint; runs of one
architecture and objective form a column, one run per rho (XEnt has none).
"""
import collections
import dataclasses

from eval.report import results_reader

# rho* (section 3.2): within 0.1% (absolute accuracy) of the best, the lowest rho.
RHO_STAR_TOLERANCE = 0.001
_FLOAT_SLACK = 1e-9  # absorbs rounding in accuracies such as 0.809 - 0.808
NOT_APPLICABLE = 'NA'


def column_name(params):
  """The run's Table 1 column, e.g. 'ResNet152x2/cCEB', 'ResNet50-aa/XEnt', 'WRN-28x10/CEB'.

  '-aa' marks training without AutoAugment and 'xK' a K times wider ResNet, as
  in the paper's Table 1.
  """
  if params['trainer'] == 'resnet_ceb':
    width = params['width_multiplier']
    architecture = 'ResNet%d%s' % (params['resnet_depth'], 'x%d' % width if width != 1 else '')
  else:
    architecture = 'WRN-%dx%d' % (params['depth'], params['width'])
  if params['augment_name'] != 'autoaugment':
    architecture += '-aa'
  return '%s/%s' % (architecture, results_reader.OBJECTIVES[params['loss']])


@dataclasses.dataclass
class Run:
  """A model_dir's complete results at its latest evaluated checkpoint."""
  model_dir: str
  step: int
  params: dict
  results: dict  # evaluation -> Result
  superseded: list  # paths of result files of older checkpoints

  @property
  def dataset(self):
    """'imagenet' or 'cifar10', from the trainer."""
    return results_reader.TRAINER_DATASETS[self.params['trainer']]

  @property
  def column(self):
    """The Table 1 column (`column_name`)."""
    return column_name(self.params)

  @property
  def rho(self):
    """The run's rho; None for XEnt, which has none."""
    return None if self.params['loss'] == 'xent' else float(self.params['rho'])

  @property
  def num_classes(self):
    """The class count of model_params (either key); None when absent."""
    return results_reader.class_count(self.params)

  def metrics(self, evaluation):
    """The parsed metrics of one evaluation, or None when not evaluated."""
    result = self.results.get(evaluation)
    return result.metrics if result else None

  def any_path(self):
    """One of the run's result files (the first by name), to name it in messages."""
    return sorted(r.path for r in self.results.values())[0]


def reading_order(run):
  """Sort key of runs in the report's lists: dataset, column, then rho (XEnt first)."""
  return (run.dataset, run.column, run.rho is not None, run.rho or 0.0)


def build_runs(results):
  """Groups complete results into Runs by model_dir, keeping the latest step.

  Raises:
    ReportError: naming two files of one model_dir and step whose
      model_params differ.
  """
  by_dir = collections.defaultdict(list)
  for result in results:
    by_dir[result.model_dir].append(result)
  runs = []
  for model_dir in sorted(by_dir):
    step = max(r.step for r in by_dir[model_dir])
    latest = [r for r in by_dir[model_dir] if r.step == step]
    for result in latest[1:]:
      if result.params != latest[0].params:
        raise results_reader.ReportError('%s and %s disagree on the model_params of %s'
                                         % (latest[0].path, result.path, model_dir))
    runs.append(Run(model_dir, step, latest[0].params,
                    {r.evaluation: r for r in latest},
                    sorted(r.path for r in by_dir[model_dir] if r.step != step)))
  return runs


def group_runs(runs):
  """{(dataset, column): {rho: Run}} (rho None for XEnt).

  Raises:
    ReportError: naming both runs, when two model_dirs fall on the same
      column and rho (the report could not tell which one to show).
  """
  groups = collections.defaultdict(dict)
  for run in runs:
    slot = groups[(run.dataset, run.column)]
    other = slot.setdefault(run.rho, run)
    if other is not run:
      raise results_reader.ReportError(
          '%s and %s are two runs of %s at rho=%s (e.g. %s and %s); keep one under '
          '--results_dir' % (other.model_dir, run.model_dir, run.column, run.rho,
                             other.any_path(), run.any_path()))
  return dict(groups)


def cifar_groups(groups):
  """The CIFAR columns: ({column: baseline Run}, {column: {rho: Run}})."""
  baselines, series = {}, {}
  for (dataset, column), slot in sorted(groups.items()):
    if dataset != 'cifar10':
      continue
    if None in slot:
      baselines[column] = slot[None]
    else:
      series[column] = slot
  return baselines, series


def select_rho_star(accuracy_by_rho):
  """The paper's rho* (section 3.2) from clean accuracies.

  The best clean accuracy wins; every rho within 0.1% (0.001 absolute
  accuracy, boundary included) of the best counts as tied, and the lowest tied
  rho is chosen, because lower rho goes with more robustness.

  Args:
    accuracy_by_rho: {rho: clean accuracy as a fraction}, not empty.

  Returns:
    The selected rho.

  Raises:
    ValueError: accuracy_by_rho is empty.
  """
  if not accuracy_by_rho:
    raise ValueError('no clean accuracy to select rho* from')
  best = max(accuracy_by_rho.values())
  return min(rho for rho, accuracy in accuracy_by_rho.items()
             if best - accuracy <= RHO_STAR_TOLERANCE + _FLOAT_SLACK)


def choose_run(slot):
  """(rho*, run) of one column's {rho: Run}; (None, None) without clean results.

  XEnt has a single run and no rho (NOT_APPLICABLE).
  """
  if None in slot:
    return NOT_APPLICABLE, slot[None]
  accuracy = {rho: run.metrics('clean')['accuracy']
              for rho, run in slot.items() if run.metrics('clean')}
  if not accuracy:
    return None, None
  rho = select_rho_star(accuracy)
  return rho, slot[rho]
