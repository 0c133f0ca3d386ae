"""Where PGD measures epsilon and its step: pixel units or the model's normalized inputs.

Both trainers' models take pixels in [0, 255] and normalize them per channel
inside, x_norm = (x - mean_c) / std_c (resnet_ceb.resnet_model.MEAN_RGB and
STDDEV_RGB, the TPU reference's; wrn_cifar.wrn_model.CIFAR_MEAN_RGB and
CIFAR_STDDEV_RGB). Section 3.2's "eps = 16" does not say on which side of that
normalization it is measured, so the attack offers both readings:

* 'pixels' (the default): eps and the step are in pixel units [0, 255].
* 'normalized': they are in the normalized input's units. The mean shift does
  not change distances, so this is PGD on u = x / std_c: an L-inf radius eps
  allows |delta_c| <= eps * std_c pixels in channel c, and an L2 radius eps
  bounds |delta / std|_2 (the pixel perturbation divided per channel).

The attack takes the per-channel std as `channel_scale` (eval.pgd.attack);
this module picks it for a model from the trainer its params.json names.
"""
from eval.attacks import threat_model
from resnet_ceb import resnet_model
from wrn_cifar import wrn_model

PGD_SPACES = ('pixels', 'normalized')
# Each trainer's per-channel input std, in pixels: the model divides by it.
CHANNEL_STDDEV = {
    'resnet_ceb': tuple(resnet_model.STDDEV_RGB),
    'wrn_cifar': tuple(wrn_model.CIFAR_STDDEV_RGB),
}


def check_space(value, name='pgd_space'):
  """A PGD space: 'pixels' or 'normalized'."""
  threat_model.require(value in PGD_SPACES, '%s=%r is not one of %s'
                       % (name, value, ', '.join(PGD_SPACES)))


def channel_scale(space, params, name='--pgd_space'):
  """The attack's `channel_scale` for a model: None in pixels, its std if normalized.

  Args:
    space: 'pixels' or 'normalized'.
    params: the model's params.json dict (its 'trainer' picks the std).
    name: the flag named in errors.

  Returns:
    None, or the per-channel std (pixels) by which the model divides its input.

  Raises:
    ValueError: naming `name`, for an unknown space or a model whose
      per-channel normalization is not known here.
  """
  check_space(space, name)
  if space == 'pixels':
    return None
  trainer = params.get('trainer')
  threat_model.require(trainer in CHANNEL_STDDEV,
                       '%s=normalized: params.json names trainer %r, whose per-channel input '
                       'normalization is not known (known: %s)'
                       % (name, trainer, ', '.join(CHANNEL_STDDEV)))
  return CHANNEL_STDDEV[trainer]
