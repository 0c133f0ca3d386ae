"""Shared test input over tiny ImageNet-format TFRecords."""
import tensorflow as tf

from resnet_ceb import imagenet_input
from resnet_ceb import resnet_preprocessing


def train_split_input(data_dir):
  """Center crops of the train-* images (what a few steps fit), 1-based labels shifted."""
  def input_fn(params):
    files = imagenet_input.check_files(data_dir, True)

    def parse(record):
      parsed = tf.io.parse_single_example(record, {
          'image/encoded': tf.io.FixedLenFeature((), tf.string),
          'image/class/label': tf.io.FixedLenFeature([], tf.int64)})
      image = resnet_preprocessing.preprocess_image(parsed['image/encoded'], False, 32)
      return image, tf.cast(parsed['image/class/label'], tf.int32) - 1

    return tf.data.TFRecordDataset(files).map(parse).batch(params['batch_size'])

  return input_fn
