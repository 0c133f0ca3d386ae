"""ImageNet-A (Hendrycks et al. 2019): top-1 error on natural adversarial examples.

    python -m eval.imagenet_a --model_dir DIR --data_dir .../imagenet-a

reads `imagenet-a/<wnid>/*.jpg` (200 classes, about 7,500 images), resizes each
image's shorter side to 256 and center-crops 224, takes the top-1 over the
model's 1000 logits restricted to the 200 ImageNet-A classes (as the dataset's
reference evaluation does) and writes one result file `imagenet_a`.
"""
import functools
import os

import numpy as np
import tensorflow as tf

from eval import image_folders
from eval import top1
from eval.kit import cli
from eval.kit import results
from eval.kit import runner
from resnet_ceb import imagenet_classes
from resnet_ceb import train_utils

EVALUATION = 'imagenet_a'
ITEM = 'all'

# The 200 ImageNet-1k wnids of ImageNet-A, sorted (hendrycks/natural-adv-examples).
IMAGENET_A_WNIDS = tuple("""
n01498041 n01531178 n01534433 n01558993 n01580077 n01614925 n01616318 n01631663
n01641577 n01669191 n01677366 n01687978 n01694178 n01698640 n01735189 n01770081
n01770393 n01774750 n01784675 n01819313 n01820546 n01833805 n01843383 n01847000
n01855672 n01882714 n01910747 n01914609 n01924916 n01944390 n01985128 n01986214
n02007558 n02009912 n02037110 n02051845 n02077923 n02085620 n02099601 n02106550
n02106662 n02110958 n02119022 n02123394 n02127052 n02129165 n02133161 n02137549
n02165456 n02174001 n02177972 n02190166 n02206856 n02219486 n02226429 n02231487
n02233338 n02236044 n02259212 n02268443 n02279972 n02280649 n02281787 n02317335
n02325366 n02346627 n02356798 n02361337 n02410509 n02445715 n02454379 n02486410
n02492035 n02504458 n02655020 n02669723 n02672831 n02676566 n02690373 n02701002
n02730930 n02777292 n02782093 n02787622 n02793495 n02797295 n02802426 n02814860
n02815834 n02837789 n02879718 n02883205 n02895154 n02906734 n02948072 n02951358
n02980441 n02992211 n02999410 n03014705 n03026506 n03124043 n03125729 n03187595
n03196217 n03223299 n03250847 n03255030 n03291819 n03325584 n03355925 n03384352
n03388043 n03417042 n03443371 n03444034 n03445924 n03452741 n03483316 n03584829
n03590841 n03594945 n03617480 n03666591 n03670208 n03717622 n03720891 n03721384
n03724870 n03775071 n03788195 n03804744 n03837869 n03840681 n03854065 n03888257
n03891332 n03935335 n03982430 n04019541 n04033901 n04039381 n04067472 n04086273
n04099969 n04118538 n04131690 n04133789 n04141076 n04146614 n04147183 n04179913
n04208210 n04235860 n04252077 n04252225 n04254120 n04270147 n04275548 n04310018
n04317175 n04344873 n04347754 n04355338 n04366367 n04376876 n04389033 n04399382
n04442312 n04456115 n04482393 n04507155 n04509417 n04532670 n04540053 n04554684
n04562935 n04591713 n04606251 n07583066 n07695742 n07697313 n07697537 n07714990
n07718472 n07720875 n07734744 n07749582 n07753592 n07760859 n07768694 n07831146
n09229709 n09246464 n09472597 n09835506 n11879895 n12057211 n12144580 n12267677
""".split())


@functools.lru_cache(maxsize=None)
def _indices():
  """The 200 classes' indices, computed once."""
  position = imagenet_classes.class_index()
  return tuple(position[wnid] for wnid in IMAGENET_A_WNIDS)


def imagenet_a_indices():
  """The 200 classes' indices among the 1000 sorted ImageNet wnids, ascending."""
  return np.array(_indices(), np.int64)


def resize_and_crop_preprocess(resize_size=256, crop_size=224):
  """Decodes an image, resizes its shorter side to resize_size, center-crops crop_size.

  The resize is bilinear with antialiasing (like PIL's, which the reference
  evaluation uses); the longer side becomes floor(long * resize_size / short).
  The crop starts at floor((side - crop_size) / 2).
  """
  def preprocess(path):
    image = image_folders.decode_image(path)
    height, width = tf.shape(image)[0], tf.shape(image)[1]
    shorter = tf.minimum(height, width)
    new_height = height * resize_size // shorter
    new_width = width * resize_size // shorter
    image = tf.image.resize(image, [new_height, new_width], method='bilinear',
                            antialias=True)
    image = tf.image.crop_to_bounding_box(
        image, (new_height - crop_size) // 2, (new_width - crop_size) // 2,
        crop_size, crop_size)
    return tf.ensure_shape(image, [crop_size, crop_size, 3])
  return preprocess


def dataset_images(data_dir):
  """(paths, labels) of an ImageNet-A folder; labels index IMAGENET_A_WNIDS.

  Raises:
    image_folders.ImageFolderError: naming data_dir when missing, a folder
      that is not one of the 200 wnids, or data_dir when it holds no images.
  """
  if not os.path.isdir(data_dir):
    raise image_folders.ImageFolderError(
        '--data_dir=%s: ImageNet-A folder not found' % data_dir)
  class_of_wnid = {wnid: i for i, wnid in enumerate(IMAGENET_A_WNIDS)}
  return image_folders.class_folder_images(data_dir, class_of_wnid, 'ImageNet-A')


def evaluate(model, data_dir, *, output, batch_size=100, resize_size=256,
             crop_size=224):
  """Evaluates a checkpoint on ImageNet-A into a result file.

  Args:
    model: a LoadedModel of a 1000-class ImageNet model.
    data_dir: the `imagenet-a` folder of wnid subfolders.
    output: the result file; reused as is when it already holds the result.
    batch_size: prediction batch.
    resize_size: the shorter side after resizing (256).
    crop_size: the center crop's side (224).

  Returns:
    The result file's contents; the summary has accuracy, error, num_correct
    and num_examples.

  Raises:
    image_folders.ImageFolderError: see `dataset_images`; an undecodable
      file, named.
    results.ResultFileError: output holds another evaluation.
  """
  if not 0 < crop_size <= resize_size:
    raise ValueError('need 0 < --crop_size (%r) <= --resize_size (%r)'
                     % (crop_size, resize_size))
  paths, labels = dataset_images(data_dir)
  top1.require_classes(model, imagenet_classes.NUM_CLASSES, 'ImageNet-A')
  flags = {'data_dir': data_dir, 'resize_size': resize_size,
           'crop_size': crop_size}
  result = results.ResultFile(output, EVALUATION,
                              results.header_for(model, flags, 'imagenet_a'))
  count = functools.partial(
      image_folders.evaluate_files, model, paths, labels,
      resize_and_crop_preprocess(resize_size, crop_size), batch_size,
      class_indices=imagenet_a_indices())
  return top1.record(result, ITEM, count)


def run(args):
  """The CLI: validates the flags, loads the model, evaluates."""
  train_utils.require_positive('batch_size', args.batch_size)
  model = runner.load_model(args.model_dir, args.checkpoint, args.precision)
  data = evaluate(model, args.data_dir, output=cli.output_path(args, model, EVALUATION),
                  batch_size=args.batch_size, resize_size=args.resize_size,
                  crop_size=args.crop_size)
  print('ImageNet-A error %.4f on %d images' % (data['summary']['error'],
                                                 data['summary']['num_examples']))
  return data


def build_parser():
  """The command-line flags of `python -m eval.imagenet_a`."""
  parser = cli.ArgumentParser(
      prog='python -m eval.imagenet_a', description='ImageNet-A top-1 error.')
  cli.add_model_flags(parser)
  cli.add_precision_flag(parser)
  parser.add_argument('--data_dir', required=True,
                      help='The imagenet-a folder: <wnid>/*.jpg.')
  parser.add_argument('--batch_size', type=int, default=100)
  parser.add_argument('--resize_size', type=int, default=256,
                      help='Shorter side after resizing.')
  parser.add_argument('--crop_size', type=int, default=224, help='Center crop side.')
  cli.add_output_flag(parser)
  return parser


def main(argv=None):
  """`python -m eval.imagenet_a`: bad input exits 2 with `error: ...`; returns the result."""
  return cli.run_cli(build_parser(), run, argv)


if __name__ == '__main__':
  main()
