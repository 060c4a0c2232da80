"""06_group_count: how many groups? GroupNorm from one group (LayerNorm) to one channel per group (InstanceNorm).

Every run trains `models.MnistCNN` (16 and 32 channels) from the same seeded start with Adam (learning rate 1e-3)
for 3 epochs over the shipped training digits at batch size 32, the batch size of Wu and He's comparison; then it
measures the test error in eval mode. The normalization after each convolution is BatchNorm, or GroupNorm with a
fixed number of groups G in both layers (G = 1 is LayerNorm over (C, H, W); with G = 16 the first layer, which has
16 channels, has one channel per group), or GroupNorm with one channel per group in both layers (InstanceNorm with
a per-channel scale and shift).

`python3 tasks.py sweep 06_group_count` runs it; notebook 06 shows it next to the published table.
"""

import statistics
import time

import torch
from torch import nn

from .. import data, models

GROUPS = [1, 2, 4, 8, 16]
FULL = {"batch_size": 32, "seeds": [0, 1, 2, 3, 4], "epochs": 3, "train_limit": None}
QUICK = {"batch_size": 32, "seeds": [0], "epochs": 1, "train_limit": 500}

# Y. Wu and K. He, "Group Normalization", ECCV 2018 (arXiv:1803.08494): ResNet-50, ImageNet top-1 validation
# error (%), 32 images per GPU. Table 1: the four normalizations; Table 3 (top): GroupNorm by number of groups.
WU_HE_2018_TABLES = {
    "source": "Y. Wu and K. He, Group Normalization, ECCV 2018 (arXiv:1803.08494), Tables 1 and 3: ResNet-50, "
              "ImageNet top-1 validation error (%), 32 images per GPU",
    "normalizations": {"BatchNorm": 23.6, "LayerNorm": 25.3, "InstanceNorm": 28.4, "GroupNorm (32 groups)": 24.1},
    "groups": {"64": 24.6, "32": 24.1, "16": 24.6, "8": 24.4, "4": 24.6, "2": 24.7, "1 (LayerNorm)": 25.3},
}


def norm_makers() -> dict:
    """{label: make_norm(num_features)} for every normalization the sweep compares."""
    makers = {"BatchNorm": models.batch_norm}
    for groups in GROUPS:
        label = "GroupNorm, 1 group (LayerNorm)" if groups == 1 else f"GroupNorm, {groups} groups"
        makers[label] = lambda channels, groups=groups: nn.GroupNorm(min(groups, channels), channels)
    makers["GroupNorm, 1 channel per group (InstanceNorm)"] = lambda channels: nn.GroupNorm(channels, channels)
    return makers


def test_error(make_norm, seed: int, grid: dict, train: tuple, test: tuple) -> float:
    torch.manual_seed(seed)
    model = models.MnistCNN(make_norm=make_norm)
    models.train_epochs(model, *train, batch_size=grid["batch_size"], epochs=grid["epochs"], lr=1e-3, seed=seed)
    return round(100.0 * (1.0 - models.accuracy(model.eval(), *test)), 2)


def sweep(grid: dict) -> dict:
    """Test error in percent {label: [one value per seed]}."""
    train = data.mnist_tensors(train=True, limit=grid["train_limit"])
    test = data.mnist_tensors(train=False)
    return {label: [test_error(make_norm, seed, grid, train, test) for seed in grid["seeds"]]
            for label, make_norm in norm_makers().items()}


def run(quick: bool = False) -> dict:
    grid = QUICK if quick else FULL
    start = time.perf_counter()
    errors = sweep(grid)
    train_count = len(data.mnist_tensors(train=True, limit=grid["train_limit"])[1])
    return {
        "description": (f"MnistCNN (16, 32 channels), Adam lr 1e-3, batch size {grid['batch_size']}, {grid['epochs']} "
                        f"epochs over {train_count} training digits; test error (%) in eval mode on the 1,000 test "
                        "digits, one value per seed; GroupNorm with G groups uses min(G, channels) groups per layer"),
        **grid, "train_images": train_count,
        "test_error_percent": errors,
        "summary": {label: {"mean": round(statistics.fmean(runs), 3),
                            "std": round(statistics.stdev(runs), 3) if len(runs) > 1 else 0.0}
                    for label, runs in errors.items()},
        "training_seconds": round(time.perf_counter() - start, 1),
        "published": WU_HE_2018_TABLES,
    }
