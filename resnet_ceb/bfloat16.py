"""The network in bfloat16, the TPU reference's way, on every device (resnet_ceb/precision.py)."""
import tensorflow as tf

from resnet_ceb import precision as precision_lib

tf1 = tf.compat.v1


def run_network(network, inputs, is_training, precision):
  """`network(inputs, is_training)` computed in `precision`, its output float32.

  With bfloat16 the inputs enter as bfloat16 and the network is built under
  `bfloat16_scope`, whose custom getter keeps each variable float32 and casts
  it to bfloat16 where a layer uses it; variable names are those of the
  float32 network.
  """
  precision_lib.check(precision)
  if precision == precision_lib.BFLOAT16:
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
