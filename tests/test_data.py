"""The shipped MNIST subset: loadable offline, verified, and clear about damage."""

import shutil

import pytest
import torch

from batchcourse import data
from batchcourse.paths import DATA_DIR


def test_subset_loads_through_torchvision_offline():
    train, test = data.mnist(train=True), data.mnist(train=False)
    assert (len(train), len(test)) == (4000, 1000)
    image, label = train[0]
    assert image.shape == (1, 28, 28) and image.dtype == torch.float32 and 0 <= label <= 9
    assert torch.equal(test.targets.bincount(), torch.full((10,), 100))
    assert data.verify_mnist_files() == "subset"


def test_tensors_and_loader():
    images, labels = data.mnist_tensors(train=False, limit=32)
    assert images.shape == (32, 1, 28, 28) and labels.shape == (32,)
    assert abs(images.mean().item()) < 0.5
    batch, _ = next(iter(data.mnist_loader(train=True, batch_size=16, limit=64)))
    assert batch.shape == (16, 1, 28, 28)


@pytest.fixture
def data_copy(tmp_path):
    shutil.copytree(DATA_DIR / "MNIST", tmp_path / "MNIST")
    return tmp_path


def test_missing_file_names_the_file_and_the_fix(data_copy):
    (data_copy / "MNIST" / "raw" / "t10k-labels-idx1-ubyte").unlink()
    with pytest.raises(data.DataFileError, match=r"t10k-labels-idx1-ubyte is missing: restore it with `git checkout -- data/MNIST`"):
        data.mnist(train=False, root=data_copy)


def test_corrupt_file_is_reported(data_copy):
    path = data_copy / "MNIST" / "raw" / "train-images-idx3-ubyte"
    payload = bytearray(path.read_bytes())
    payload[1000] ^= 0xFF
    path.write_bytes(bytes(payload))
    with pytest.raises(data.DataFileError, match="train-images-idx3-ubyte is damaged"):
        data.mnist(train=True, root=data_copy)


def test_full_mnist_is_recognised_by_size(tmp_path):
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for name, size in data.FULL_MNIST_SIZES.items():
        with (raw / name).open("wb") as handle:
            handle.truncate(size)
    assert data.verify_mnist_files(tmp_path) == "full"


def test_scanner_contrast_is_seeded_and_changes_each_image_by_itself():
    images, _ = data.mnist_tensors(train=False, limit=64)
    scans = data.scanner_contrast(images, seed=3)
    assert scans.shape == images.shape
    assert torch.equal(scans, data.scanner_contrast(images, seed=3))
    assert not torch.equal(scans, data.scanner_contrast(images, seed=4))
    pixels, scanned = images * data.MNIST_STD + data.MNIST_MEAN, scans * data.MNIST_STD + data.MNIST_MEAN
    gains = scanned.flatten(1).std(dim=1) / pixels.flatten(1).std(dim=1)
    assert gains.min() >= 1 / 8 - 1e-4 and gains.max() <= 8 + 1e-4 and gains.max() / gains.min() > 4
