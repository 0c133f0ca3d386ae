"""Result files: one JSON per (checkpoint, evaluation), resumable and atomic.

A file holds a header (what was evaluated and how), `items` (one entry per
unit of work: an epsilon, a corruption/severity pair, ...), `summary` and
`complete`. Every update rewrites the file atomically, so an interrupted sweep
leaves a valid file holding the items done so far; re-running the same sweep
skips them. Nothing time-dependent is stored, so a resumed sweep writes exactly
the file an uninterrupted one would.

Layout::

    {
      "evaluation": "pgd_linf",          # the evaluation's name
      "header": {                        # must match to resume
        "flags": {...}, "model_dir": ..., "checkpoint_path": ..., "step": ...,
        "dataset": ..., "model_params": {...},  # the trainer's params.json
        "precision": "bfloat16"          # only if not float32, the default
      },
      "items": {"eps=8": {...}, ...},
      "summary": {...},
      "complete": true
    }
"""
import os

from resnet_ceb import fileio
from resnet_ceb import precision as precision_lib


class ResultFileError(ValueError):
  """A result file is unreadable or belongs to another evaluation."""


def default_path(model_dir, evaluation, step, precision=precision_lib.FLOAT32):
  """Where an evaluation of a model's checkpoint is stored by default.

  A bfloat16 evaluation has its own file (`<evaluation>-bfloat16-step<N>.json`),
  so it neither replaces nor collides with the float32 one.
  """
  tag = '' if precision == precision_lib.FLOAT32 else '-' + precision
  return os.path.join(model_dir, 'results', '%s%s-step%d.json' % (evaluation, tag, step))


def header_for(model, flags, dataset):
  """The header identifying an evaluation of a LoadedModel (eval.kit.runner).

  A `data_dir` flag is made absolute here, so that the same data spelt two
  ways (`../data`, `/work/data`) resumes one file instead of refusing it. The
  model's precision is recorded when it is not float32 (headers of float32
  evaluations stay as they were, so their files still resume).
  """
  if flags.get('data_dir'):
    flags = dict(flags, data_dir=os.path.abspath(flags['data_dir']))
  header = {'flags': flags, 'model_dir': os.path.abspath(model.model_dir),
            'checkpoint_path': os.path.abspath(model.checkpoint_path),
            'step': model.step, 'dataset': dataset, 'model_params': model.params}
  if model.precision != precision_lib.FLOAT32:
    header['precision'] = model.precision
  return header


def open_default(model, evaluation, flags, dataset):
  """The ResultFile of `evaluation` of a LoadedModel at its default path."""
  return ResultFile(default_path(model.model_dir, evaluation, model.step, model.precision),
                    evaluation, header_for(model, flags, dataset))


class ResultFile:
  """A result file being filled in, item by item.

  Args:
    path: the JSON file.
    evaluation: the evaluation's name.
    header: dict of what is evaluated and how; an existing file must match.

  Raises:
    ResultFileError: the existing file is not valid JSON or has another header.
  """

  def __init__(self, path, evaluation, header):
    self.path = path
    self._data = {'evaluation': evaluation, 'header': header, 'items': {},
                  'summary': {}, 'complete': False}
    if os.path.exists(path):
      self._resume(evaluation, header)

  def _resume(self, evaluation, header):
    try:
      data = fileio.read_json(self.path)
    except ValueError as e:
      raise ResultFileError(str(e)) from e
    found = (data.get('evaluation'), data.get('header'))
    if found != (evaluation, header):
      raise ResultFileError(
          '%s holds another evaluation (%s of %s with other flags or checkpoint); '
          'choose another output file or remove it' % (
              self.path, data.get('evaluation'),
              (data.get('header') or {}).get('checkpoint_path')))
    self._data = data

  @property
  def items(self):
    """The items done so far, by key."""
    return self._data['items']

  @property
  def complete(self):
    """Whether the summary was written (every item done)."""
    return self._data['complete']

  def done(self, key):
    """Whether the item `key` is already in the file."""
    return key in self._data['items']

  def add(self, key, value):
    """Records one item and rewrites the file."""
    self._data['items'][key] = value
    fileio.atomic_write_json(self.path, self._data)

  def finish(self, summary):
    """Records the summary, marks the file complete and rewrites it."""
    self._data['summary'] = summary
    self._data['complete'] = True
    fileio.atomic_write_json(self.path, self._data)
    return self._data
