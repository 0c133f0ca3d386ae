"""Writes docs/LISTINGS.md: every line of the paper's Listings 1-3 and where it lives.

Each row names a listing line, the file that implements it and an anchor: a
fragment of code unique to that file. Line numbers are looked up from the
anchors, so after editing the code run `python scripts/listings_map.py` to
refresh them; tests/test_listings.py fails when the map is stale.
"""
import os

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CEB = 'resnet_ceb/ceb.py'
MODEL = 'resnet_ceb/resnet_model.py'
MAIN = 'resnet_ceb/resnet_main.py'
FLAGS = 'resnet_ceb/common_flags.py'
PRECISION = 'resnet_ceb/bfloat16.py'
WRN = 'wrn_cifar/wrn_model.py'

# (listing line, file, anchor, note)
LISTING_1 = [
    ('def resnet_v1_generator(block_fn, layers, num_classes, ...):', MODEL,
     'def resnet_v1_generator(', ''),
    ('def model(inputs, is_training):', MODEL, 'def model(inputs, is_training):', ''),
    ('# Build the ResNet model as normal up to the following lines:', MODEL,
     'for i, (filters, blocks) in enumerate(zip(GROUP_FILTERS, layers)):',
     'Stem, four block groups and global average pooling as in the reference.'),
    ('inputs = tf.reshape(inputs, [-1, 2048 if block_fn is bottleneck_block else 512])',
     MODEL, 'return tf.reshape(x, [-1, int(x.shape[-1])])',
     'Deviation: the width is read from the channel count, so the x2-wide models '
     'give 4096 dims without a hard-coded 2048.'),
    ('return inputs', MODEL, 'return tf.reshape(x, [-1, int(x.shape[-1])])',
     'The pooled pre-logits are returned; no dense layer.'),
    ('(CIFAR) the same edit in the WRN', WRN, 'return tf.reshape(x, [-1, 64 * width])',
     'WRN-28xk returns its 64k-dim pooled pre-logits (the default); '
     '`--bottleneck_dims=D` adds section 2.2\'s dense layer of D outputs '
     '(`with_bottleneck`).'),
]

LISTING_2 = [
    ('import tensorflow_probability as tfp', CEB, 'import tensorflow_probability as tfp', ''),
    ('tfd = tfp.distributions', CEB, 'tfd = tfp.distributions', ''),
    ('def ezx_dist(x):', CEB, 'def ezx_dist(x):', ''),
    ('dist = tfd.MultivariateNormalDiag(loc=x)', CEB,
     'return tfd.MultivariateNormalDiag(loc=x)', 'Built and returned in one line.'),
    ('def bzy_dist(y, num_classes=1000, z_dims=2048):', CEB,
     'def bzy_dist(y, num_classes=1000, z_dims=2048):', 'Callers pass z_dims = the width of f(x).'),
    ('y_onehot = tf.one_hot(y, num_classes)', CEB, 'y_onehot = tf.one_hot(y, num_classes)', ''),
    ('mus = tf.layers.dense(y_onehot, z_dims, activation=None)', CEB,
     'mus = tf1.layers.dense(y_onehot, z_dims',
     'tf.compat.v1.layers; the layer is named so cCEB can reuse it for all class means.'),
    ('dist = tfd.MultivariateNormalDiag(loc=mus)', CEB,
     'return tfd.MultivariateNormalDiag(loc=mus)', ''),
    ('def cyz_dist(z, num_classes=1000):', CEB, 'def cyz_dist(z, num_classes=1000):', ''),
    ('logits = tf.layers.dense(z, num_classes, activation=None,', CEB,
     'logits = tf1.layers.dense(', ''),
    ('kernel_initializer=tf.random_normal_initializer(stddev=.01))', CEB,
     'kernel_initializer=tf1.random_normal_initializer(stddev=.01)', ''),
    ('return tfd.Categorical(logits=logits)', CEB, 'return tfd.Categorical(logits=logits)', ''),
    ('def lerp(global_step, start_step, end_step, start_val, end_val):', CEB,
     'def lerp(global_step, start_step, end_step, start_val, end_val):', ''),
    ('interp = (tf.cast(global_step - start_step, tf.float32)', CEB,
     'interp = (tf.cast(global_step - start_step, tf.float32)', ''),
    ('/ tf.cast(end_step - start_step, tf.float32))', CEB,
     '/ tf.cast(end_step - start_step, tf.float32))', ''),
    ('interp = tf.maximum(0.0, tf.minimum(1.0, interp))', CEB,
     'interp = tf.maximum(0.0, tf.minimum(1.0, interp))', ''),
    ('return start_val * (1.0 - interp) + end_val * interp', CEB,
     'return start_val * (1.0 - interp) + end_val * interp', ''),
]

LISTING_3 = [
    ('def resnet_model_fn(features, labels, mode, params):', MAIN,
     'def resnet_model_fn(features, labels, mode, params):', ''),
    ('def build_network(): ...', MAIN, 'def build_network(',
     'A module-level function taking its inputs instead of a closure.'),
    ("if params['precision'] == 'bfloat16':", PRECISION, 'if precision == precision_lib.BFLOAT16:',
     'Both trainers share this in bfloat16.run_network, on every device.'),
    ('with tf.contrib.tpu.bfloat16_scope():', PRECISION, 'with tf1.tpu.bfloat16_scope():',
     'tf.contrib is gone in TF 2.15; tf.compat.v1.tpu.bfloat16_scope is the same scope.'),
    ('net = build_network()', MAIN,
     'net = build_network(features, is_training, params, precision)', ''),
    ('net = tf.cast(net, tf.float32)', PRECISION, 'return tf.cast(net, tf.float32)', ''),
    ("elif params['precision'] == 'float32': net = build_network()", PRECISION,
     'return network(inputs, is_training)', ''),
    ("with tf.variable_scope('ezx', reuse=tf.AUTO_REUSE):", CEB,
     "with tf1.variable_scope('ezx', reuse=tf1.AUTO_REUSE):",
     'The head is shared by both trainers, so it lives in ceb.py.'),
    ('ezx = ezx_dist(net)', CEB, 'ezx = ezx_dist(net)', ''),
    ("with tf.variable_scope('bzy', reuse=tf.AUTO_REUSE):", CEB,
     "with tf1.variable_scope('bzy', reuse=tf1.AUTO_REUSE):\n      bzy", ''),
    ('bzy = bzy_dist(labels)', CEB, 'bzy = bzy_dist(labels, num_classes, z_dims)',
     'num_classes and z_dims passed explicitly (Listing 3 relies on the defaults).'),
    ('if mode == tf.estimator.ModeKeys.TRAIN: z = ezx.sample()', CEB, 'ezx.sample(',
     'is_training is mode == TRAIN, computed by the caller.'),
    ('else: z = ezx.mean()', CEB, 'ezx.mean()', ''),
    ("with tf.variable_scope('cyz', reuse=tf.AUTO_REUSE):", CEB,
     "with tf1.variable_scope('cyz', reuse=tf1.AUTO_REUSE):\n      cyz = cyz_dist(z", ''),
    ('cyz = cyz_dist(z, params)', CEB, 'cyz = cyz_dist(z, num_classes)',
     'Defect fixed: Listing 3 passes params where num_classes is meant.'),
    ('logits = cyz.logits', CEB, "out['logits'] = cyz.logits", ''),
    ('hzx = -ezx.log_prob(z) # H(Z|X)', CEB, 'hzx = -ezx.log_prob(z)', ''),
    ('hzy = -bzy.log_prob(z) # H(Z|Y) (upper bound)', CEB, 'hzy = -bzy.log_prob(z)', ''),
    ('hyz = -cyz.log_prob(labels) # H(Y|Z) (upper bound)', CEB,
     'hyz = -cyz.log_prob(labels)', ''),
    ('rex = -hzx + hzy', CEB, 'rex = -hzx + hzy', ''),
    ('rho = 3.0 # You should make this a hyperparameter.', FLAGS,
     "flags.DEFINE_float('rho'", 'The --rho flag, shared by both trainers.'),
    ('rho_to_gamma = lambda rho: 1.0 / np.exp(rho)', CEB, 'def rho_to_gamma(rho):', ''),
    ('gamma = tf.cast(rho_to_gamma(rho), tf.float32)', MAIN,
     "weight = ceb.rho_weight(params['loss'], params['rho'])",
     'rho_weight is rho_to_gamma for CEB/cCEB and sigma(-rho) for VIB.'),
    ('global_step = tf.train.get_global_step()', MAIN,
     'global_step = tf1.train.get_or_create_global_step()', ''),
    ('anneal_rho = 12000 # You should make this a hyperparameter.', MAIN,
     "flags.DEFINE_integer('anneal_rho'", 'The --anneal_rho flag (default 12000).'),
    ('if anneal_rho > 0:', MAIN, "if params['anneal_rho'] > 0:", ''),
    ('gamma = lerp(global_step, 0, aneal_rho, rho_to_gamma(100.0), gamma)', MAIN,
     "weight = ceb.lerp(global_step, 0, params['anneal_rho'],",
     'Defect fixed: `aneal_rho` is a typo for anneal_rho. Linear in gamma, as listed.'),
    ('loss = tf.reduce_mean(gamma * rex + hyz)', CEB,
     'loss=tf.reduce_mean(weight * rex + hyz)',
     'Plus the reference L2 weight decay, added in resnet_model_fn.'),
    ('# The rest of resnet_model_fn can remain unchanged.', MAIN,
     "loss = (head_loss(params, head, labels, logits)", 'Weight decay, optimizer, metrics.'),
]


def find_line(path, anchor):
  """1-based line where `anchor` starts; it must occur exactly once in the file."""
  with open(os.path.join(ROOT, path)) as f:
    text = f.read()
  count = text.count(anchor)
  if count != 1:
    raise ValueError('anchor %r occurs %d times in %s' % (anchor, count, path))
  return text[:text.index(anchor)].count('\n') + 1


def _rows(listing):
  for number, (line, path, anchor, note) in enumerate(listing, 1):
    where = find_line(path, anchor)
    code = anchor.splitlines()[0].strip()
    yield '| %d | `%s` | [%s:%d](../%s#L%d) | `%s` | %s |' % (
        number, line, path, where, path, where, code, note)


def render():
  """The text of docs/LISTINGS.md."""
  parts = [
      '# Listings 1-3, line by line',
      '',
      'For a reader checking the code against the paper\'s Listings 1-3 line by line.',
      '',
      'Every line of the paper\'s appendix B listings (left) and the file and line '
      'that implements it. "Code there" is the text found at that line; '
      '`tests/test_listings.py` checks each one, and `python scripts/listings_map.py` '
      'regenerates this page after the code moves.',
      '',
      'Defects of Listing 3, fixed: `aneal_rho` is a typo for `anneal_rho`; '
      '`cyz_dist(z, params)` passes params where `num_classes` is meant.',
      '',
      'Other deviations: TF 2.15 has no `tf.contrib` and no `tf.layers`, so '
      '`tf.compat.v1` is used; the CEB head lives in `resnet_ceb/ceb.py` so the '
      'CIFAR trainer shares it; inputs are pixels in [0, 255] normalized inside the '
      'model (PGD attacks pixels).',
      '']
  for title, listing in (('Listing 1: model.py', LISTING_1),
                         ('Listing 2: the head of resnet_main.py', LISTING_2),
                         ('Listing 3: resnet_model_fn in resnet_main.py', LISTING_3)):
    parts += ['## ' + title, '', '| # | listing line | implemented at | code there | note |',
              '|---|---|---|---|---|']
    parts += list(_rows(listing)) + ['']
  return '\n'.join(parts)


if __name__ == '__main__':
  with open(os.path.join(ROOT, 'docs', 'LISTINGS.md'), 'w') as f:
    f.write(render())
