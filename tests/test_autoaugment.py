"""Tests resnet_ceb.autoaugment op by op against independently known results."""
import os

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '3')

import numpy as np  # pylint: disable=g-import-not-at-top
from PIL import Image
from PIL import ImageOps
import pytest
import tensorflow as tf

from resnet_ceb import autoaugment as aa

FILL = (1, 2, 3)


def _random_image(height, width, low=0, high=256, seed=0):
  rng = np.random.RandomState(seed)
  return rng.randint(low, high, size=(height, width, 3)).astype(np.uint8)


def _run(op, image, *args):
  return op(tf.constant(image), *args).numpy()


def test_invert_is_255_minus_x():
  image = _random_image(5, 7)
  np.testing.assert_array_equal(_run(aa.invert, image), 255 - image)


def test_solarize_inverts_at_and_above_threshold():
  image = np.array([0, 127, 128, 200, 255], np.uint8).reshape(1, 5, 1)
  image = np.tile(image, [1, 1, 3])
  out = _run(aa.solarize, image, 128)[0, :, 0]
  np.testing.assert_array_equal(out, [0, 127, 127, 55, 0])
  np.testing.assert_array_equal(_run(aa.solarize, image, 256), image)
  np.testing.assert_array_equal(_run(aa.solarize, image, 0), 255 - image)


def test_solarize_add_adds_below_threshold_and_clips():
  image = np.tile(np.array([0, 120, 127, 128, 250], np.uint8)[None, :, None],
                  [1, 1, 3])
  np.testing.assert_array_equal(
      _run(aa.solarize_add, image, 20, 128)[0, :, 0], [20, 140, 147, 128, 250])
  np.testing.assert_array_equal(
      _run(aa.solarize_add, image, -30, 128)[0, :, 0], [0, 90, 97, 128, 250])


def test_posterize_keeps_top_bits():
  image = np.tile(np.array([255, 127, 8], np.uint8)[None, :, None], [1, 1, 3])
  np.testing.assert_array_equal(_run(aa.posterize, image, 4)[0, :, 0],
                                [240, 112, 0])
  np.testing.assert_array_equal(_run(aa.posterize, image, 8), image)
  # 0 bits keeps one bit, as the TF-clamped shift of the reference did.
  np.testing.assert_array_equal(_run(aa.posterize, image, 0)[0, :, 0],
                                [128, 0, 0])


def test_brightness():
  image = _random_image(4, 4)
  np.testing.assert_array_equal(_run(aa.brightness, image, 1.0), image)
  np.testing.assert_array_equal(_run(aa.brightness, image, 0.0), 0 * image)
  doubled = np.minimum(2 * image.astype(int), 255)
  np.testing.assert_array_equal(_run(aa.brightness, image, 2.0), doubled)


@pytest.mark.parametrize('op', [aa.color, aa.contrast, aa.sharpness])
def test_enhancers_with_factor_one_are_identity(op):
  image = _random_image(6, 6)
  np.testing.assert_array_equal(_run(op, image, 1.0), image)


def test_color_zero_gives_gray_and_leaves_gray_images():
  gray = np.tile(_random_image(5, 5)[:, :, :1], [1, 1, 3])
  np.testing.assert_allclose(_run(aa.color, gray, 0.0), gray, atol=1)
  out = _run(aa.color, _random_image(5, 5), 0.0).astype(int)
  np.testing.assert_array_equal(out[:, :, 0], out[:, :, 1])
  np.testing.assert_array_equal(out[:, :, 0], out[:, :, 2])


def test_contrast_zero_gives_mean_gray():
  image = np.zeros((4, 4, 3), np.uint8)
  image[2:] = 200  # Gray mean 100.
  out = _run(aa.contrast, image, 0.0)
  np.testing.assert_allclose(out, np.full_like(image, 100), atol=1)


@pytest.mark.parametrize('factor', [0.0, 0.5, 1.9])
def test_sharpness_of_constant_image_is_identity(factor):
  image = np.full((6, 7, 3), 77, np.uint8)
  np.testing.assert_array_equal(_run(aa.sharpness, image, factor), image)


def test_sharpness_zero_smooths_only_the_interior():
  image = np.zeros((5, 5, 3), np.uint8)
  image[2, 2] = 130
  out = _run(aa.sharpness, image, 0.0)[:, :, 0]
  expected = np.zeros((5, 5))
  expected[1:4, 1:4] = 10  # 130 / 13 around the peak...
  expected[2, 2] = 50  # ...and 130 * 5 / 13 on it.
  np.testing.assert_array_equal(out, expected)


def test_autocontrast_stretches_each_channel_to_full_range():
  image = _random_image(8, 8, low=50, high=151)
  image[..., 2] = 90  # A constant channel is left alone.
  out = _run(aa.autocontrast, image)
  assert out[..., :2].min() == 0 and out[..., :2].max() == 255
  np.testing.assert_array_equal(out[..., 2], image[..., 2])
  pil = np.asarray(ImageOps.autocontrast(Image.fromarray(image)))
  np.testing.assert_allclose(out, pil, atol=1)


def test_equalize_two_values_maps_to_extremes():
  image = np.full((32, 32, 3), 10, np.uint8)
  image[16:] = 200
  out = _run(aa.equalize, image)
  np.testing.assert_array_equal(out[:16], 0)
  np.testing.assert_array_equal(out[16:], 255)


def test_equalize_matches_pil():
  image = _random_image(20, 20, low=30, high=120, seed=1)
  pil = np.asarray(ImageOps.equalize(Image.fromarray(image)))
  np.testing.assert_array_equal(_run(aa.equalize, image), pil)


def test_rotate_by_right_angles_matches_rot90():
  square = _random_image(8, 8)
  np.testing.assert_array_equal(_run(aa.rotate, square, 90.0, FILL),
                                np.rot90(square, 1))
  np.testing.assert_array_equal(_run(aa.rotate, square, -90.0, FILL),
                                np.rot90(square, -1))
  wide = _random_image(4, 6)
  np.testing.assert_array_equal(_run(aa.rotate, wide, 180.0, FILL),
                                np.rot90(wide, 2))
  np.testing.assert_array_equal(_run(aa.rotate, wide, 0.0, FILL), wide)


def test_rotate_fills_corners():
  out = _run(aa.rotate, _random_image(9, 9), 45.0, FILL)
  np.testing.assert_array_equal(out[0, 0], FILL)
  np.testing.assert_array_equal(out[-1, -1], FILL)


def _shifted(image, pixels, axis):
  """Returns out with out[i] = image[i + pixels] along `axis`, else FILL."""
  size = image.shape[axis]
  src = [slice(None)] * 2
  dst = [slice(None)] * 2
  src[axis] = slice(max(pixels, 0), size + min(pixels, 0))
  dst[axis] = slice(max(-pixels, 0), size - max(pixels, 0))
  expected = np.empty_like(image)
  expected[...] = FILL
  expected[tuple(dst)] = image[tuple(src)]
  return expected


@pytest.mark.parametrize('pixels', [2, -2])
def test_translate_shifts_and_fills(pixels):
  """Positive pixels move the content left / up, as PIL's affine."""
  image = _random_image(5, 6)
  np.testing.assert_array_equal(_run(aa.translate_x, image, pixels, FILL),
                                _shifted(image, pixels, axis=1))
  np.testing.assert_array_equal(_run(aa.translate_y, image, pixels, FILL),
                                _shifted(image, pixels, axis=0))


def test_shear_x_leaves_a_single_row_image_unchanged():
  row = _random_image(1, 9)
  np.testing.assert_array_equal(_run(aa.shear_x, row, 0.3, FILL), row)


def test_shear_by_one_shifts_each_line_by_its_index():
  image = _random_image(4, 6)
  height, width = image.shape[:2]
  out_x = _run(aa.shear_x, image, 1.0, FILL)
  out_y = _run(aa.shear_y, image, 1.0, FILL)
  for y in range(height):
    for x in range(width):
      expected_x = image[y, x + y] if x + y < width else FILL
      expected_y = image[y + x, x] if y + x < height else FILL
      np.testing.assert_array_equal(out_x[y, x], expected_x)
      np.testing.assert_array_equal(out_y[y, x], expected_y)


def test_cutout_fills_a_square_of_side_twice_pad_size():
  tf.random.set_seed(1)
  image = np.zeros((40, 40, 3), np.uint8)
  pad_size, full_squares = 3, 0
  for _ in range(20):
    filled = np.all(_run(aa.cutout, image, pad_size, FILL) == FILL, axis=-1)
    rows = np.nonzero(filled.any(axis=1))[0]
    cols = np.nonzero(filled.any(axis=0))[0]
    r0, r1, c0, c1 = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
    assert filled.sum() == (r1 - r0) * (c1 - c0)  # A filled rectangle.
    assert r1 - r0 <= 2 * pad_size and c1 - c0 <= 2 * pad_size
    if 0 < r0 and r1 < 40:  # Not clipped by a border.
      assert r1 - r0 == 2 * pad_size
    if 0 < c0 and c1 < 40:
      assert c1 - c0 == 2 * pad_size
    full_squares += filled.sum() == (2 * pad_size) ** 2
  assert full_squares > 0


def test_cutout_larger_than_image_fills_everything():
  out = _run(aa.cutout, _random_image(4, 5), 5, 0)
  np.testing.assert_array_equal(out, 0)


@pytest.mark.parametrize('policy, size, max_level, op_args', [
    (aa.policy_v0(), 25, 10, aa.level_to_arg(aa.IMAGENET_HPARAMS)),
    (aa.policy_cifar10(), 25, 9, aa.cifar10_level_to_arg()),
    (aa.policy_cifar10_released(), 95, 9, aa.cifar10_level_to_arg()),
])
def test_policies_are_pairs_of_known_ops(policy, size, max_level, op_args):
  assert len(policy) == size
  for subpolicy in policy:
    assert len(subpolicy) == 2
    for name, prob, level in subpolicy:
      assert name in aa.NAME_TO_FUNC and name in op_args
      assert 0.0 <= prob <= 1.0 and 0 <= level <= max_level


def test_released_list_holds_20_of_the_papers_25():
  """Of the paper's five policies of five, all but the fourth (15-19) are released."""
  released = aa.policy_cifar10_released()
  paper = aa.policy_cifar10()
  missing = [i for i, subpolicy in enumerate(paper) if subpolicy not in released]
  assert missing == [15, 16, 17, 18, 19]
  # Policies of five: the released list starts with the paper's first and
  # repeats its last as its second.
  assert released[:5] == paper[:5] and released[5:10] == paper[20:]
  assert sum(op == 'Cutout' for sub in released for op, _, _ in sub) == 3


def test_random_cutout_is_a_seeded_16x16_square_clipped_at_the_borders():
  image = np.full((32, 32, 3), 7.0, np.float32)
  fill = (0.5, 1.5, 2.5)
  outs = [aa.random_cutout(image, 16, fill, seed=tf.constant([s, 3])).numpy()
          for s in range(40)]
  np.testing.assert_array_equal(
      outs[0], aa.random_cutout(image, 16, fill, seed=tf.constant([0, 3])).numpy())
  sides = set()
  for out in outs:
    filled = np.all(out == fill, axis=-1)
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out[~filled], 7.0)
    rows, cols = np.nonzero(filled.any(axis=1))[0], np.nonzero(filled.any(axis=0))[0]
    assert filled.sum() == len(rows) * len(cols)  # One filled rectangle.
    assert 8 <= len(rows) <= 16 and 8 <= len(cols) <= 16  # The centre is inside.
    assert len(rows) == 16 or rows[0] == 0 or rows[-1] == 31  # Smaller where clipped.
    assert len(cols) == 16 or cols[0] == 0 or cols[-1] == 31
    sides.add((len(rows), len(cols)))
  assert (16, 16) in sides and len(sides) > 1


def test_random_cutout_of_odd_size_cuts_the_smaller_even_square():
  image = np.zeros((64, 64, 3), np.uint8)
  sides = set()
  for s in range(12):
    filled = aa.random_cutout(image, 7, 9, seed=tf.constant([s, 0])).numpy()[..., 0] == 9
    sides.add(int(filled.any(axis=1).sum()))
  assert max(sides) == 6


def _magnitudes(op_args, level):
  return {name: [abs(float(a)) for a in fn(level)]
          for name, fn in op_args.items()}


def test_v0_level_ranges_match_reference():
  args = _magnitudes(aa.level_to_arg(aa.IMAGENET_HPARAMS), 10)
  assert args['Rotate'] == pytest.approx([30.0])
  assert args['ShearX'] == pytest.approx([0.3])
  assert args['TranslateY'] == pytest.approx([250.0])
  assert args['Cutout'] == [100] and args['Posterize'] == [4]
  assert args['Solarize'] == [256] and args['SolarizeAdd'] == [110]
  assert args['Color'] == pytest.approx([1.9])
  assert _magnitudes(aa.level_to_arg(aa.IMAGENET_HPARAMS), 0)['Color'] == (
      pytest.approx([0.1]))


def test_cifar10_level_ranges_match_original_code():
  args = _magnitudes(aa.cifar10_level_to_arg(), 9)
  assert args['Rotate'] == [27.0] and args['TranslateX'] == [9.0]
  assert args['ShearY'] == pytest.approx([0.27], abs=1e-6)
  assert args['Posterize'] == [1] and args['Solarize'] == [26]
  assert args['Cutout'] == [9]
  assert args['Brightness'] == pytest.approx([1.72])
  assert _magnitudes(aa.cifar10_level_to_arg(), 7)['Posterize'] == [2]


def _augment_dataset(images, name, shape):
  spec = tf.TensorSpec(shape, tf.uint8)
  dataset = tf.data.Dataset.from_generator(lambda: iter(images),
                                           output_signature=spec)
  dataset = dataset.map(
      lambda image: aa.distort_image_with_autoaugment(image, name))
  assert dataset.element_spec == spec
  return list(dataset)


@pytest.mark.parametrize('name', ['v0', 'cifar10', 'cifar10_released'])
def test_every_step_of_a_policy_runs_in_graph_mode(name):
  # pylint: disable=protected-access
  spec = aa._POLICIES[name]
  op_args = spec.level_to_arg()
  steps = {(op, level) for subpolicy in spec.subpolicies() for op, _, level in subpolicy}

  @tf.function(input_signature=[tf.TensorSpec([None, None, 3], tf.uint8)])
  def apply_all(image):
    return [aa._apply_op(image, op, level, op_args, spec.fill) for op, level in steps]

  image = _random_image(20, 28)
  for out in apply_all(tf.constant(image)):
    assert out.shape == image.shape and out.dtype == tf.uint8


def test_each_step_applies_its_own_op_with_its_probability():
  """Steps shared by sub-policies share a branch, yet each keeps its probability."""
  image = tf.constant(_random_image(8, 8))
  policy = [[('Invert', 1.0, 3), ('Invert', 0.0, 0)],
            [('Invert', 0.0, 5), ('Solarize', 1.0, 9)]]
  outs = {}
  for s in range(12):
    with aa._stateless_draws(tf.constant([s, 1])):  # pylint: disable=protected-access
      index = aa._uniform(maxval=2, dtype=tf.int32)  # pylint: disable=protected-access
      out = image
      for steps in zip(*policy):
        out = aa._apply_position(  # pylint: disable=protected-access
            out, steps, index, aa.cifar10_level_to_arg(), FILL)
    outs[int(index)] = out.numpy()
  pixels = image.numpy()
  np.testing.assert_array_equal(outs[0], 255 - pixels)  # Invert, then nothing.
  # No Invert, then Solarize at threshold 256 - int(9 * 256 / 10) = 26.
  np.testing.assert_array_equal(outs[1], np.where(pixels < 26, pixels, 255 - pixels))


@pytest.mark.parametrize('name', ['v0', 'cifar10'])
@pytest.mark.parametrize('size', [32, 224])
def test_distort_keeps_shape_and_dtype_in_dataset_map(name, size):
  images = [_random_image(size, size, seed=s) for s in range(2)]
  for out in _augment_dataset(images, name, (size, size, 3)):
    assert out.shape == (size, size, 3) and out.dtype == tf.uint8


@pytest.mark.parametrize('name', ['v0', 'cifar10'])
def test_distort_handles_dynamic_sizes(name):
  images = [_random_image(32, 32), _random_image(40, 24)]
  outs = _augment_dataset(images, name, (None, None, 3))
  assert [o.shape for o in outs] == [i.shape for i in images]


def test_distort_changes_some_images():
  tf.random.set_seed(0)
  images = [_random_image(32, 32, seed=s) for s in range(12)]
  outs = _augment_dataset(images, 'cifar10', (32, 32, 3))
  assert any(not np.array_equal(o, i) for o, i in zip(outs, images))


def test_unknown_policy_name_raises():
  with pytest.raises(ValueError, match='cifar10.*v0'):
    aa.distort_image_with_autoaugment(tf.zeros([8, 8, 3], tf.uint8), 'v1')
