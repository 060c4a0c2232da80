"""MNIST for the course: the shipped 5,000-digit subset, or the full set where it is present.

`mnist(train=True)` returns a `torchvision.datasets.MNIST`. Before torchvision reads
the files, the loader checks them: the shipped subset against `data/MNIST/SHA256SUMS`,
the full MNIST (60,000 + 10,000 images) by its size. A missing or damaged file gives
one sentence naming the file and how to restore it.
"""

import hashlib
from pathlib import Path

import torch
import torchvision
from torch.utils.data import DataLoader, Subset
from torchvision.transforms import v2

from .paths import DATA_DIR, INSTALLED
from . import i18n

i18n.install_in_kernel()  # a notebook in another language: its hints, figures and printed lines too

RAW_FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)
FULL_MNIST_SIZES = {
    "train-images-idx3-ubyte": 16 + 60000 * 28 * 28,
    "train-labels-idx1-ubyte": 8 + 60000,
    "t10k-images-idx3-ubyte": 16 + 10000 * 28 * 28,
    "t10k-labels-idx1-ubyte": 8 + 10000,
}
MNIST_MEAN, MNIST_STD = 0.1307, 0.3081
RESTORE_HINT = (
    "reinstall the batchcourse package (`pip install --force-reinstall --no-deps` with the course's wheel)"
    if INSTALLED else
    "restore it with `git checkout -- data/MNIST` (or rebuild it with "
    "`python data/make_mnist_subset.py`, see data/README.md)"
)


class DataFileError(RuntimeError):
    """A data file is missing or does not hold what it should."""


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _expected_checksums(root: Path) -> dict[str, str]:
    checksum_file = root / "MNIST" / "SHA256SUMS"
    if not checksum_file.is_file():
        return {}
    pairs = (line.split() for line in checksum_file.read_text().splitlines() if line.strip())
    return {name: digest for digest, name in pairs}


def verify_mnist_files(root: Path | str = DATA_DIR) -> str:
    """Check the raw MNIST files under `root` and say which set they hold: "subset" or "full".

    Raises DataFileError, naming the file and how to restore it, when a file is missing,
    damaged, or the files mix the subset with the full set.
    """
    root = Path(root)
    raw_dir = root / "MNIST" / "raw"
    checksums = _expected_checksums(root)
    kinds = set()
    for name in RAW_FILES:
        path = raw_dir / name
        if not path.is_file():
            raise DataFileError(f"The MNIST file {path} is missing: {RESTORE_HINT}.")
        if path.stat().st_size == FULL_MNIST_SIZES[name]:
            kinds.add("full")
        elif checksums.get(name) == _sha256(path):
            kinds.add("subset")
        else:
            raise DataFileError(f"The MNIST file {path} is damaged (its checksum does not match): {RESTORE_HINT}.")
    if len(kinds) != 1:
        raise DataFileError(f"The files in {raw_dir} mix the course subset with the full MNIST: {RESTORE_HINT}.")
    return kinds.pop()


def default_transform() -> v2.Compose:
    """Image to float tensor of shape (1, 28, 28), normalized with the usual MNIST mean and std."""
    return v2.Compose([
        v2.ToImage(),
        v2.ToDtype(torch.float32, scale=True),
        v2.Normalize([MNIST_MEAN], [MNIST_STD]),
    ])


def mnist(train: bool = True, root: Path | str = DATA_DIR, download: bool = False, transform=None):
    """The MNIST training or test split as a torchvision dataset.

    `root` holds `MNIST/raw/`: the course subset by default. Point it at a folder with the
    full MNIST to use that instead, or pass `download=True` to let torchvision fetch the full
    set into an empty `root` (the course itself never downloads).
    """
    root = Path(root)
    raw_dir = root / "MNIST" / "raw"
    if download and not any((raw_dir / name).exists() for name in RAW_FILES):
        torchvision.datasets.MNIST(root, train=train, download=True)
    verify_mnist_files(root)
    return torchvision.datasets.MNIST(
        root, train=train, download=False, transform=transform or default_transform()
    )


def mnist_tensors(train: bool = True, limit: int | None = None, root: Path | str = DATA_DIR):
    """The split as two tensors: images (N, 1, 28, 28) float32, normalized, and labels (N,) int64."""
    dataset = mnist(train=train, root=root)
    count = len(dataset) if limit is None else min(limit, len(dataset))
    images = dataset.data[:count].unsqueeze(1).to(torch.float32).div(255)
    images = (images - MNIST_MEAN) / MNIST_STD
    return images, dataset.targets[:count].clone()


def mnist_loader(train: bool = True, batch_size: int = 64, limit: int | None = None, seed: int = 0, **kwargs):
    """A DataLoader over the split; shuffled (with its own seeded generator) when `train` is True."""
    dataset = mnist(train=train)
    if limit is not None:
        dataset = Subset(dataset, range(min(limit, len(dataset))))
    generator = torch.Generator().manual_seed(seed)
    return DataLoader(dataset, batch_size=batch_size, shuffle=train, generator=generator, **kwargs)


def scanner_contrast(images: torch.Tensor, seed: int, max_gain: float = 8.0, max_offset: float = 2.0) -> torch.Tensor:
    """The images as if each came from its own scanner: a seeded random gain and offset per image.

    Each image's pixel values (0 to 1 before normalization) are multiplied by a gain between
    1/max_gain and max_gain (uniform in log scale) and shifted by an offset between -max_offset
    and max_offset, then normalized with MNIST's mean and std again. The same seed gives the same images.
    """
    generator = torch.Generator().manual_seed(seed)
    shape = (len(images), 1, 1, 1)
    log_gain = (torch.rand(shape, generator=generator) * 2 - 1) * torch.log(torch.tensor(max_gain))
    offset = (torch.rand(shape, generator=generator) * 2 - 1) * max_offset
    pixels = images * MNIST_STD + MNIST_MEAN
    return (log_gain.exp() * pixels + offset - MNIST_MEAN) / MNIST_STD
