"""eval.make_cifar10_c: the released on-disk format, seeded bytes and bad input."""
import os
import re

import numpy as np
import pytest

from eval import cifar10_c
from eval import make_cifar10_c
from resnet_ceb import fileio
from tests import cifar_fixtures


def _images(num=10, seed=0):
  """Smooth images with edges, so that blurs and noises both show."""
  rng = np.random.RandomState(seed)
  coarse = rng.randint(0, 256, (num, 4, 4, 3)).astype(np.uint8)
  return np.repeat(np.repeat(coarse, 8, axis=1), 8, axis=2), rng.randint(0, 10, num)


def _load(out_dir, corruption):
  labels = cifar10_c.load_labels(out_dir, 10)
  return labels, np.asarray(cifar10_c.load_corruption(out_dir, corruption, len(labels)))


def test_writes_the_released_format_severity_by_severity(tmp_path):
  images, labels = _images()
  out = str(tmp_path / 'c')
  made = make_cifar10_c.make(images, labels, out, corruptions=['fog', 'glass_blur'], seed=3)
  assert made == ['glass_blur', 'fog']
  assert cifar10_c.find_corruptions(out) == ['glass_blur', 'fog']
  for corruption in made:
    read_labels, data = _load(out, corruption)
    np.testing.assert_array_equal(read_labels, np.tile(labels, 5))
    assert data.dtype == np.uint8 and data.shape == (50, 32, 32, 3)
    for severity in range(1, 6):
      rows = cifar10_c.severity_rows(len(data), severity)
      np.testing.assert_array_equal(
          data[rows], make_cifar10_c.corrupt_images(images, corruption, severity, seed=3))
  record = fileio.read_json(os.path.join(out, 'provenance.json'))
  assert record['library'] == 'imagecorruptions' and record['library_version'] == '1.1.2'
  assert record['seed'] == 3 and record['num_images'] == 10


def test_same_seed_same_bytes_whatever_the_order(tmp_path):
  images, labels = _images()
  make_cifar10_c.make(images, labels, str(tmp_path / 'a'), corruptions=['snow', 'shot_noise'])
  make_cifar10_c.make(images, labels, str(tmp_path / 'b'), corruptions=['shot_noise', 'snow'])
  make_cifar10_c.make(images, labels, str(tmp_path / 'c'), corruptions=['snow'], seed=1)
  snapshots = [cifar_fixtures.snapshot(str(tmp_path / d)) for d in 'abc']
  assert snapshots[0] == snapshots[1]
  assert snapshots[0]['snow.npy'] != snapshots[2]['snow.npy']


@pytest.mark.parametrize('corruption', ['gaussian_noise', 'defocus_blur', 'contrast'])
def test_severity_5_is_further_from_clean_than_severity_1(corruption):
  images, _ = _images(seed=1)
  distance = [np.abs(make_cifar10_c.corrupt_images(images, corruption, s).astype(float)
                     - images).mean() for s in (1, 5)]
  assert 0 < distance[0] < distance[1]


def test_every_corruption_runs_on_32_px_images(tmp_path):
  images, labels = _images(num=2)
  out = str(tmp_path / 'all')
  assert make_cifar10_c.make(images, labels, out) == list(cifar10_c.CORRUPTIONS)
  for corruption in cifar10_c.CORRUPTIONS:
    data = _load(out, corruption)[1]
    assert (data != np.tile(images, (5, 1, 1, 1))).any(), corruption


def test_resume_keeps_present_files_and_refuses_another_seed(tmp_path):
  images, labels = _images()
  out = str(tmp_path / 'c')
  make_cifar10_c.make(images, labels, out, corruptions=['brightness'])
  with open(os.path.join(out, 'brightness.npy'), 'r+b') as f:
    f.seek(-1, os.SEEK_END)
    f.write(b'\x07')  # A mark that a rewrite would erase.
  before = cifar_fixtures.snapshot(out)
  make_cifar10_c.make(images, labels, out, corruptions=['brightness'])
  assert cifar_fixtures.snapshot(out) == before
  with pytest.raises(ValueError, match='provenance.json records another set'):
    make_cifar10_c.make(images, labels, out, corruptions=['brightness'], seed=1)
  assert cifar_fixtures.snapshot(out) == before


@pytest.mark.parametrize('images, corruptions, match', [
    (np.zeros((2, 32, 32, 3), np.float32), None, 'uint8'),
    (np.zeros((2, 28, 28, 3), np.uint8), None, r'\[n, 32, 32, 3\]'),
    (np.zeros((2, 32, 32, 3), np.uint8), ['fog', 'rain'], "unknown corruption 'rain'"),
])
def test_bad_input_raises_before_writing(tmp_path, images, corruptions, match):
  with pytest.raises(ValueError, match=match):
    make_cifar10_c.make(images, [0, 1], str(tmp_path / 'c'), corruptions=corruptions)
  assert not os.path.exists(tmp_path / 'c')


def test_cli_writes_the_set_and_exits_2_on_bad_input(tmp_path, capsys):
  data_dir = cifar_fixtures.write_cifar_python(str(tmp_path / 'data'), 10, 6)
  out = str(tmp_path / 'c')
  base = ['--data_dir', data_dir, '--out', out]
  assert make_cifar10_c.main(base + ['--num_examples', '4', '--corruptions', 'pixelate'])
  assert _load(out, 'pixelate')[1].shape == (20, 32, 32, 3)
  open(tmp_path / 'file', 'w').close()
  bad = [(['--corruptions', 'rain'], "--corruptions: unknown name 'rain'"),
         (['--num_examples', '7'], '--num_examples=7: .* holds only 6'),
         (['--num_examples', '0'], '--num_examples=0 must be a positive integer'),
         (['--out', str(tmp_path / 'file')], '--out=.*file exists and is not a folder')]
  for flags, match in bad:
    with pytest.raises(SystemExit) as exit_info:
      make_cifar10_c.main(base + flags)
    assert exit_info.value.code == 2
    assert re.search('error: ' + match, capsys.readouterr().err), flags
