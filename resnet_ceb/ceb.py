"""The Conditional Entropy Bottleneck head of Listings 2 and 3, shared by both trainers.

The names follow the paper's appendix B so the code can be read against it line by
line: `ezx_dist` is the encoder e(z|x), `bzy_dist` the backward encoder b(z|y),
`cyz_dist` the classifier c(y|z), `lerp` the jump-start interpolation and
`rho_to_gamma` the map from the control parameter rho to the weight gamma = e^-rho.

Four objectives are offered through `build_head` (the trainers' `--loss` flag):

* ``xent``: the unchanged baseline, dense logits on f(x) with no noise.
* ``ceb``: Listing 3, loss = mean(gamma * rex + hyz).
* ``cceb``: the consistent classifier of section 2.3, where the classifier is
  Bayes' rule on b(z|y): logits_y = log N(z; mu_y, I) + log p(y) (Eq. 11),
  p(y) uniform (the constant drops out; the default) or the training set's
  label frequencies (`empirical_log_prior`, the trainers' --cceb_prior).
* ``vib``: Equation 7, b(z|y) replaced by the fixed marginal N(0, I) and the
  weight sigma(-rho) in place of e^-rho.
"""
import math

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

tfd = tfp.distributions
tf1 = tf.compat.v1

LOSSES = ('xent', 'ceb', 'cceb', 'vib')
# The --cceb_prior values, the default first: cCEB's p(y) in Eq. 11.
PRIORS = ('uniform', 'empirical')
# The jump-start's first rho, in Listing 3 (ImageNet) and appendix A.1 (CIFAR).
JUMP_START_RHO = 100.0


def ezx_dist(x):
  """Builds the encoder distribution, e(z|x) = N(f(x), I)."""
  return tfd.MultivariateNormalDiag(loc=x)


def bzy_dist(y, num_classes=1000, z_dims=2048):
  """Builds the backwards distribution, b(z|y) = N(mu_y, I), mu_y = dense(one_hot(y))."""
  y_onehot = tf.one_hot(y, num_classes)
  mus = tf1.layers.dense(y_onehot, z_dims, activation=None, name='dense')
  return tfd.MultivariateNormalDiag(loc=mus)


def cyz_dist(z, num_classes=1000):
  """Builds the classifier distribution, c(y|z).

  Uses the same initialization as the final dense layer that Listing 1 removed
  from the ResNet model.
  """
  logits = tf1.layers.dense(
      z, num_classes, activation=None,
      kernel_initializer=tf1.random_normal_initializer(stddev=.01), name='dense')
  return tfd.Categorical(logits=logits)


def lerp(global_step, start_step, end_step, start_val, end_val):
  """Linearly interpolates from start_val to end_val between two steps, clamped.

  The one ramp of both jump-starts: Listing 3 applies it to gamma, the CIFAR
  schedule (wrn_cifar.schedules) to rho.
  """
  interp = (tf.cast(global_step - start_step, tf.float32)
            / tf.cast(end_step - start_step, tf.float32))
  interp = tf.maximum(0.0, tf.minimum(1.0, interp))
  return start_val * (1.0 - interp) + end_val * interp


def rho_to_gamma(rho):
  """The CEB weight on the residual information, gamma = e^-rho (Eq. 3 and 6)."""
  if isinstance(rho, (int, float, np.floating, np.integer)):
    return math.exp(-float(rho))
  return tf.exp(-tf.cast(rho, tf.float32))


def rho_to_beta(rho):
  """The VIB weight beta = sigma(-rho) = 1 / (1 + e^rho) (Eq. 1 and 7)."""
  if isinstance(rho, (int, float, np.floating, np.integer)):
    return 1.0 / (1.0 + math.exp(float(rho)))
  return tf.sigmoid(-tf.cast(rho, tf.float32))


def rho_weight(loss, rho):
  """The weight on the residual term that `loss` uses at control parameter rho."""
  return rho_to_beta(rho) if loss == 'vib' else rho_to_gamma(rho)


def weight_to_rho(loss, weight):
  """The inverse of `rho_weight` on tensors: -log(gamma), or -logit(beta) for VIB."""
  if loss == 'vib':
    return tf.math.log1p(-weight) - tf.math.log(weight)
  return -tf.math.log(weight)


def check_loss_and_rho(loss, rho):
  """Raises ValueError naming the flag when --loss or --rho is unusable."""
  if loss not in LOSSES:
    raise ValueError('--loss=%r is not one of %s' % (loss, ', '.join(LOSSES)))
  if loss != 'xent':
    try:
      finite = math.isfinite(float(rho))
    except (TypeError, ValueError):
      finite = False
    if not finite:
      raise ValueError('--rho=%r must be a finite number for --loss=%s' % (rho, loss))


def _class_mus(num_classes, z_dims):
  """All class means mu_y of b(z|y), [num_classes, z_dims], reusing bzy's dense layer."""
  return tf1.layers.dense(tf.eye(num_classes), z_dims, activation=None, name='dense')


def empirical_log_prior(label_counts):
  """The log prior log p(y) of Eq. 11 from training label counts, float32 [classes].

  Raises:
    ValueError: naming --cceb_prior if a class has no training example (its
      log p(y) would be -inf: the class could never be predicted).
  """
  counts = np.asarray(label_counts, np.float64)
  if counts.ndim != 1 or not counts.size or not np.all(counts > 0):
    raise ValueError('--cceb_prior=empirical needs at least one training example of '
                     'every class; the label counts are %s' % counts.astype(int).tolist())
  return np.log(counts / counts.sum()).astype(np.float32)


def consistent_logits(z, mus, log_prior=None):
  """logits_y = log N(z; mu_y, I) + log p(y) for every class y (cCEB, Eq. 11).

  `log_prior` None is the uniform p(y), whose constant is left out (softmax
  ignores it). Expands the squared distance as |z|^2 - 2 z.mu + |mu|^2 so
  no [batch, classes, dims] tensor is ever built.
  """
  z_dims = tf.cast(tf.shape(z)[-1], z.dtype)
  sq_dist = (tf.reduce_sum(tf.square(z), axis=-1, keepdims=True)
             - 2.0 * tf.matmul(z, mus, transpose_b=True)
             + tf.reduce_sum(tf.square(mus), axis=-1)[tf.newaxis, :])
  logits = -0.5 * sq_dist - 0.5 * z_dims * math.log(2.0 * math.pi)
  if log_prior is None:
    return logits
  return logits + tf.constant(log_prior, z.dtype)[tf.newaxis, :]


def _bottleneck_head(net, labels, num_classes, is_training, weight, marginal,
                     seed=None, log_prior=None):
  """Shared body of CEB, cCEB and VIB; `marginal` is 'class', 'consistent' or 'standard'.

  `seed`, if given, is a stateless seed (shape-[2] integer tensor) for z ~ e(z|x);
  `log_prior` is cCEB's log p(y) (None: uniform).
  """
  net = tf.cast(net, tf.float32)
  z_dims = net.shape[-1]
  # Get the encoder, e(z|x):
  with tf1.variable_scope('ezx', reuse=tf1.AUTO_REUSE):
    ezx = ezx_dist(net)
  # Only sample z during training; otherwise pass through the encoder's mean.
  z = ezx.sample(seed=seed) if is_training else ezx.mean()
  out = {'z': z}
  if marginal == 'consistent':
    with tf1.variable_scope('bzy', reuse=tf1.AUTO_REUSE):
      mus = _class_mus(num_classes, z_dims)
    cyz = tfd.Categorical(logits=consistent_logits(z, mus, log_prior))
  else:
    # Get the classifier, c(y|z):
    with tf1.variable_scope('cyz', reuse=tf1.AUTO_REUSE):
      cyz = cyz_dist(z, num_classes)
  out['logits'] = cyz.logits
  if labels is None:
    return out
  if marginal == 'standard':
    bzy = tfd.MultivariateNormalDiag(loc=tf.zeros_like(net))
  else:
    # Get the backwards encoder, b(z|y):
    with tf1.variable_scope('bzy', reuse=tf1.AUTO_REUSE):
      bzy = bzy_dist(labels, num_classes, z_dims)
  hzx = -ezx.log_prob(z)  # H(Z|X)
  hzy = -bzy.log_prob(z)  # H(Z|Y) (upper bound)
  hyz = -cyz.log_prob(labels)  # H(Y|Z) (upper bound)
  # I(X;Z|Y) = -H(Z|X) + H(Z|Y) >= -hzx + hzy =: rex, the residual information.
  rex = -hzx + hzy
  out.update(mu=bzy.mean(), hzx=hzx, hzy=hzy, hyz=hyz, rex=rex,
             loss=tf.reduce_mean(weight * rex + hyz))
  return out


def ceb_head(net, labels, num_classes, is_training, gamma, consistent=False,
             seed=None, log_prior=None):
  """The CEB head of Listing 3 on the pre-logits `net` (Listing 1).

  Args:
    net: [batch, d] pooled pre-logits f(x).
    labels: [batch] int class labels, or None (predict: only `z` and `logits`).
    num_classes: number of classes.
    is_training: sample z ~ e(z|x) when True, else use z = f(x).
    gamma: weight on rex, e^-rho (a float or scalar tensor).
    consistent: cCEB: classify with Bayes' rule on b(z|y) instead of c(y|z).
    seed: None (stateful sampling) or a shape-[2] integer tensor, a stateless
      seed that makes z ~ e(z|x) a function of it (see `sample_seed`).
    log_prior: with `consistent`, log p(y) per class (`empirical_log_prior`);
      None is the uniform prior.

  Returns:
    A dict with `z`, `logits` and, given labels, per-example `hzx`, `hzy`,
    `hyz`, `rex`, the label's class mean `mu` and the scalar `loss`
    (mean(gamma * rex + hyz), without weight decay).
  """
  return _bottleneck_head(net, labels, num_classes, is_training, gamma,
                          'consistent' if consistent else 'class', seed, log_prior)


def vib_head(net, labels, num_classes, is_training, beta, seed=None):
  """VIB (Eq. 7): as `ceb_head` with the marginal N(0, I) in place of b(z|y)."""
  return _bottleneck_head(net, labels, num_classes, is_training, beta, 'standard',
                          seed)


def sample_seed(seed, global_step):
  """The stateless seed of z at a training step: a function of (seed, step) only.

  Args:
    seed: the run's integer seed (`--seed`).
    global_step: the int64 global step tensor.

  Returns:
    A shape-[2] int32 tensor (tfp's seed type), so a resumed run draws the
    same z at each step.
  """
  return tf.stack([tf.constant(seed, tf.int32), tf.cast(global_step, tf.int32)])


def xent_head(net, labels, num_classes):
  """The unchanged baseline: c(y|f(x)) with no noise, loss = softmax cross-entropy."""
  net = tf.cast(net, tf.float32)
  with tf1.variable_scope('cyz', reuse=tf1.AUTO_REUSE):
    cyz = cyz_dist(net, num_classes)
  out = {'z': net, 'logits': cyz.logits}
  if labels is not None:
    out['hyz'] = -cyz.log_prob(labels)
    out['loss'] = tf.reduce_mean(out['hyz'])
  return out


def build_head(loss, net, labels, num_classes, is_training, weight=None, seed=None,
               log_prior=None):
  """Dispatches `--loss` to its head; `weight` is gamma (ceb, cceb) or beta (vib).

  `seed` is the optional stateless seed of z (ignored by xent, which has no noise);
  `log_prior` is cCEB's log p(y), None for uniform (cceb only).
  """
  if log_prior is not None and loss != 'cceb':
    raise ValueError('--cceb_prior=empirical applies only to --loss=cceb, not %s' % loss)
  if loss == 'xent':
    return xent_head(net, labels, num_classes)
  if loss == 'vib':
    return vib_head(net, labels, num_classes, is_training, weight, seed)
  if loss in ('ceb', 'cceb'):
    return ceb_head(net, labels, num_classes, is_training, weight,
                    consistent=(loss == 'cceb'), seed=seed, log_prior=log_prior)
  raise ValueError('--loss=%r is not one of %s' % (loss, ', '.join(LOSSES)))
