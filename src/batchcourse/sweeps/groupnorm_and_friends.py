"""06_groupnorm_and_friends: the same CNN trained with BatchNorm and with GroupNorm at training batch sizes 2 to 64.

Every run trains `models.MnistCNN` (16 and 32 channels) from the same seeded start with Adam (learning rate 1e-3)
for the same number of epochs over the shipped training digits, so that every batch size sees the same images the
same number of times; then it measures the test error in eval mode (BatchNorm uses its running statistics).
GroupNorm is `models.group_norm`: 4 groups, that is 4 and 8 channels per group.

`python3 tasks.py sweep 06_groupnorm_and_friends` runs the full grid. The notebook's live run, `sweep_steps`, gives
every batch size the same number of optimizer steps instead (a few seconds; a batch of b sees steps·b images).
"""

import time

import torch

from .. import data, models
from .scanner_contrast import train_steps

NORMS = {"BatchNorm": models.batch_norm, "GroupNorm": models.group_norm}
FULL = {"batch_sizes": [2, 4, 8, 16, 32, 64], "seeds": [0, 1, 2, 3, 4], "epochs": 3, "train_limit": None}
QUICK = {"batch_sizes": [2, 64], "seeds": [0], "epochs": 1, "train_limit": 1000}

# Y. Wu and K. He, "Group Normalization", ECCV 2018 (arXiv:1803.08494), Figure 1 and the table on the sensitivity
# to batch sizes: ResNet-50 top-1 error (%) on the ImageNet validation set, by images per GPU during training.
WU_HE_2018 = {
    "source": "Y. Wu and K. He, Group Normalization, ECCV 2018 (arXiv:1803.08494): ResNet-50, ImageNet top-1 validation error",
    "images_per_gpu": [32, 16, 8, 4, 2],
    "error_percent": {"BatchNorm": [23.6, 23.7, 24.8, 27.3, 34.7], "GroupNorm": [24.1, 24.2, 24.0, 24.2, 24.1]},
}


def test_error(norm: str, batch_size: int, seed: int, epochs: int, train: tuple, test: tuple) -> float:
    """Test error in percent (eval mode) of MnistCNN with `norm` after training at `batch_size`."""
    torch.manual_seed(seed)
    model = models.MnistCNN(make_norm=NORMS[norm])
    models.train_epochs(model, *train, batch_size=batch_size, epochs=epochs, lr=1e-3, seed=seed)
    return 100.0 * (1.0 - models.accuracy(model.eval(), *test))


def sweep(batch_sizes: list[int], seeds: list[int], epochs: int, train_limit: int | None = None) -> dict:
    """Test error in percent for every norm, batch size and seed: {norm: {str(batch_size): [error per seed]}}."""
    train = data.mnist_tensors(train=True, limit=train_limit)
    test = data.mnist_tensors(train=False)
    return {norm: {str(size): [round(test_error(norm, size, seed, epochs, train, test), 2) for seed in seeds]
                   for size in batch_sizes}
            for norm in NORMS}


def sweep_steps(batch_sizes: list[int], seeds: list[int], steps: int, train_limit: int | None = None) -> dict:
    """Like `sweep`, but every run makes `steps` optimizer steps (Adam, lr 1e-3) whatever its batch size."""
    train = data.mnist_tensors(train=True, limit=train_limit)
    test = data.mnist_tensors(train=False)
    errors = {}
    for norm, make_norm in NORMS.items():
        errors[norm] = {}
        for size in batch_sizes:
            runs = []
            for seed in seeds:
                torch.manual_seed(seed)
                model = train_steps(models.MnistCNN(make_norm=make_norm), *train, size, steps, seed)
                runs.append(round(100.0 * (1.0 - models.accuracy(model.eval(), *test)), 2))
            errors[norm][str(size)] = runs
    return errors


def mean_and_spread(errors: dict) -> dict:
    """{norm: (batch sizes, means, standard deviations)} from the errors `sweep` returns."""
    summary = {}
    for norm, by_size in errors.items():
        sizes = [int(size) for size in by_size]
        values = [torch.tensor(by_size[str(size)], dtype=torch.float64) for size in sizes]
        summary[norm] = (sizes, [v.mean().item() for v in values],
                         [v.std().item() if len(v) > 1 else 0.0 for v in values])
    return summary


def run(quick: bool = False) -> dict:
    grid = QUICK if quick else FULL
    start = time.perf_counter()
    errors = sweep(**grid)
    train_count = len(data.mnist_tensors(train=True, limit=grid["train_limit"])[1])
    return {
        "description": ("MnistCNN (16, 32 channels) with BatchNorm or GroupNorm (4 groups), Adam lr 1e-3, "
                        f"{grid['epochs']} epochs over {train_count} training digits at every batch size; "
                        "test error (%) in eval mode on the 1,000 test digits, one value per seed"),
        **grid,
        "train_images": train_count,
        "test_error_percent": errors,
        "training_seconds": round(time.perf_counter() - start, 1),
        "published": WU_HE_2018,
    }
