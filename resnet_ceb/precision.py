"""--precision: which values it takes, its default, and what stays float32.

The TPU ResNet reference trains in bfloat16 on TPU by building the network
under `bfloat16_scope`: its custom getter creates every variable in float32
and hands the layers a bfloat16 cast of it where it is used, and the features
enter the network as bfloat16. The network's output is cast back to float32
before the classifier. Both trainers here follow that pattern on every device
(resnet_ceb/bfloat16.py; TensorFlow 2.15 has bfloat16 CPU kernels, oneDNN's
using AVX-512 BF16 where the CPU has it), so:

* variables, optimizer slots and checkpoints are float32 whatever the
  precision: a checkpoint restores into either;
* the CEB head (its densities, `hzx`, `hzy`, `hyz`, `rex`), the loss, the
  gradients reaching the variables and the summaries are float32.

Evaluation commands build the float32 network unless told otherwise, and the
attacks refuse bfloat16: a bfloat16 input gradient can make an attack look
weaker than it is. This module holds no TensorFlow, so that commands which
never load it (the report) can name the precisions too.
"""
FLOAT32 = 'float32'
BFLOAT16 = 'bfloat16'
PRECISIONS = (FLOAT32, BFLOAT16)


def check(precision, flag='--precision'):
  """Raises ValueError naming `flag` unless `precision` is one of PRECISIONS."""
  if precision not in PRECISIONS:
    raise ValueError('%s=%s must be one of %s' % (flag, precision, ', '.join(PRECISIONS)))


def resolve(precision, use_tpu):
  """The precision a trainer runs in: `precision`, or unset the reference's default.

  Args:
    precision: the --precision flag (None: unset).
    use_tpu: the --use_tpu flag.

  Returns:
    'bfloat16' on TPU and 'float32' elsewhere when unset, else `precision`.

  Raises:
    ValueError: naming --precision, for a value outside PRECISIONS.
  """
  if precision is None:
    return BFLOAT16 if use_tpu else FLOAT32
  check(precision)
  return precision


def recorded(params):
  """The precision a params dict records; params.json before the key: float32."""
  return params.get('precision', FLOAT32)
