"""--precision: the network's convolutions and matmuls in bfloat16, everything else float32.

The TPU ResNet reference trains in bfloat16 on TPU by building the network
under `bfloat16_scope`: its custom getter creates every variable in float32
and hands the layers a bfloat16 cast of it where it is used, and the features
enter the network as bfloat16. The network's output is cast back to float32
before the classifier. Both trainers here follow that pattern on every
device (TensorFlow 2.15 has bfloat16 CPU kernels, oneDNN's using AVX-512 BF16
where the CPU has it), so:

* variables, optimizer slots and checkpoints are float32 whatever the
  precision: a checkpoint restores into either;
* the CEB head (its densities, `hzx`, `hzy`, `hyz`, `rex`), the loss, the
  gradients reaching the variables and the summaries are float32.

Evaluation commands build the float32 network unless told otherwise, and the
attacks refuse bfloat16: a bfloat16 input gradient can make an attack look
weaker than it is.
"""
import tensorflow as tf

tf1 = tf.compat.v1

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


def run_network(network, inputs, is_training, precision):
  """`network(inputs, is_training)` computed in `precision`, its output float32.

  With bfloat16 the inputs enter as bfloat16 and the network is built under
  `bfloat16_scope`, whose custom getter keeps each variable float32 and casts
  it to bfloat16 where a layer uses it; variable names are those of the
  float32 network.
  """
  check(precision)
  if precision == BFLOAT16:
    with tf1.tpu.bfloat16_scope():
      net = network(tf.cast(inputs, tf.bfloat16), is_training)
    return tf.cast(net, tf.float32)
  return network(inputs, is_training)


def compute_dtype(inputs):
  """The dtype a network computes in for these inputs: bfloat16 if they are, else float32.

  The networks normalize pixels in float32 and then continue in this dtype, so
  `run_network`'s bfloat16 inputs select bfloat16 layers.
  """
  return tf.bfloat16 if inputs.dtype == tf.bfloat16 else tf.float32
