"""04_bn_placement_and_dropout: BatchNorm before or after ReLU, and BatchNorm with and without Dropout.

Part 1 trains a small CNN (two 5×5 convolutions with 16 and 32 channels, each with ReLU and a 2×2 max-pool, then
Dropout and a linear classifier) on the first `train_limit` training digits, with Adam (learning rate 1e-3), batches
of 32, for 20 epochs: long enough that every variant fits its training digits. The variants differ only in their
normalization and Dropout:

* no BatchNorm, no Dropout;
* BatchNorm before each ReLU (conv → BN → ReLU, the usual order, as in the original paper);
* BatchNorm after each ReLU (conv → ReLU → BN);
* Dropout 0.5 before the classifier, no BatchNorm;
* BatchNorm before each ReLU and Dropout 0.5.

Part 2 measures the placement again in a deeper plain CNN (8 conv blocks of 16 channels, no residual connections),
at two learning rates (1e-3 and 1e-2), 10 epochs: BatchNorm before ReLU, after ReLU, and no BatchNorm.

Each trained model is scored in eval mode on its training digits and on the test digits: the test accuracy, and the
gap between the two in points (how much the model overfits). Within a seed, every variant starts from weights drawn
with that seed and sees the training digits in the same order.

`python3 tasks.py sweep 04_bn_placement_and_dropout` runs it; notebook 04 trains a smaller version live.
"""

import statistics
import time

import torch
from torch import nn

from .. import data, models

VARIANTS = {
    "no BatchNorm, no Dropout": {"batch_norm": None, "dropout": 0.0},
    "BatchNorm before ReLU": {"batch_norm": "before ReLU", "dropout": 0.0},
    "BatchNorm after ReLU": {"batch_norm": "after ReLU", "dropout": 0.0},
    "Dropout 0.5": {"batch_norm": None, "dropout": 0.5},
    "BatchNorm before ReLU + Dropout 0.5": {"batch_norm": "before ReLU", "dropout": 0.5},
}
FULL = {"seeds": list(range(8)), "train_limit": 1000, "epochs": 20, "deep_epochs": 10}
QUICK = {"seeds": [0, 1], "train_limit": 500, "epochs": 3, "deep_epochs": 2}
BATCH_SIZE, LEARNING_RATE, CHANNELS = 32, 1e-3, (16, 32)
DEEP_DEPTH, DEEP_WIDTH = 8, 16
PLACEMENTS = ("before ReLU", "after ReLU", None)
DEEP_PLACEMENTS = {"BatchNorm before ReLU": "before ReLU", "BatchNorm after ReLU": "after ReLU", "no BatchNorm": None}
DEEP_LEARNING_RATES = (1e-3, 1e-2)


def conv_block(in_channels: int, out_channels: int, kernel_size: int, batch_norm: str | None) -> list[nn.Module]:
    """conv → [BN] → ReLU → [BN]. A convolution drops its bias only where a BatchNorm follows it directly (its
    shift would cancel the bias)."""
    if batch_norm not in PLACEMENTS:
        raise ValueError(f"batch_norm must be one of {PLACEMENTS}, not {batch_norm!r}")
    conv = nn.Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2, bias=batch_norm != "before ReLU")
    if batch_norm == "before ReLU":
        return [conv, nn.BatchNorm2d(out_channels), nn.ReLU()]
    if batch_norm == "after ReLU":
        return [conv, nn.ReLU(), nn.BatchNorm2d(out_channels)]
    return [conv, nn.ReLU()]


def cnn(batch_norm: str | None = "before ReLU", dropout: float = 0.0, channels: tuple[int, int] = CHANNELS) -> nn.Sequential:
    """Two 5×5 conv blocks, each followed by a 2×2 max-pool; Dropout; linear. `batch_norm`: "before ReLU",
    "after ReLU" or None."""
    layers, in_channels = [], 1
    for out_channels in channels:
        layers += [*conv_block(in_channels, out_channels, 5, batch_norm), nn.MaxPool2d(2)]
        in_channels = out_channels
    return nn.Sequential(*layers, nn.Flatten(), nn.Dropout(dropout), nn.Linear(in_channels * 7 * 7, 10))


def deep_cnn(batch_norm: str | None = "before ReLU", depth: int = DEEP_DEPTH, width: int = DEEP_WIDTH) -> nn.Sequential:
    """`depth` 3×3 conv blocks of `width` channels (a max-pool after the first and after half of them), then a
    linear classifier: deep enough that where BatchNorm sits could matter."""
    layers, in_channels = [], 1
    for index in range(depth):
        layers += conv_block(in_channels, width, 3, batch_norm)
        in_channels = width
        if index in (0, depth // 2):
            layers.append(nn.MaxPool2d(2))
    return nn.Sequential(*layers, nn.Flatten(), nn.Linear(width * 7 * 7, 10))


def trained(model: nn.Module, seed: int, train: tuple, epochs: int, lr: float = LEARNING_RATE) -> nn.Module:
    models.train_epochs(model, *train, batch_size=BATCH_SIZE, epochs=epochs, lr=lr, seed=seed)
    return model.eval()


def small_cnn_variant(variant: str, seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return cnn(**VARIANTS[variant])


def deep_cnn_variant(batch_norm: str | None, seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return deep_cnn(batch_norm)


def scores(model: nn.Module, train: tuple, test: tuple) -> dict:
    """Eval-mode accuracy on the training and the test digits, and the gap between them in points."""
    train_accuracy, test_accuracy = models.accuracy(model, *train), models.accuracy(model, *test)
    return {"train": round(train_accuracy, 4), "test": round(test_accuracy, 4),
            "gap_points": round(100 * (train_accuracy - test_accuracy), 2)}


def summary(runs: list[float]) -> dict:
    return {"mean": round(statistics.fmean(runs), 4), "std": round(statistics.stdev(runs), 4) if len(runs) > 1 else 0.0}


def collect(make_model, names, seeds, train: tuple, test: tuple, epochs: int, lr: float = LEARNING_RATE) -> dict:
    """{name: {"train": [...], "test": [...], "gap_points": [...]}}, one value per seed, and their summaries."""
    runs = {name: {"train": [], "test": [], "gap_points": []} for name in names}
    for seed in seeds:
        for name in names:
            for metric, value in scores(trained(make_model(name, seed), seed, train, epochs, lr), train, test).items():
                runs[name][metric].append(value)
    return {"runs": runs, "summary": {name: {metric: summary(values) for metric, values in by_metric.items()}
                                      for name, by_metric in runs.items()}}


def headline(deep_by_learning_rate: dict) -> list[dict]:
    """The comparison notebook 04 states: at the high learning rate, the deep CNN trains with BatchNorm, not without."""
    runs = deep_by_learning_rate[f"learning rate {max(DEEP_LEARNING_RATES):g}"]["runs"]
    return [{
        "claim": "bn_allows_high_learning_rate", "metric": "test accuracy",
        "better": {"label": f"deep plain CNN, BatchNorm before ReLU, learning rate {max(DEEP_LEARNING_RATES):g}",
                   "runs": runs["BatchNorm before ReLU"]["test"]},
        "worse": {"label": f"deep plain CNN, no BatchNorm, learning rate {max(DEEP_LEARNING_RATES):g}",
                  "runs": runs["no BatchNorm"]["test"]},
    }]


def run(quick: bool = False) -> dict:
    grid = QUICK if quick else FULL
    train = data.mnist_tensors(train=True, limit=grid["train_limit"])
    test = data.mnist_tensors(train=False)
    start = time.perf_counter()
    small = collect(small_cnn_variant, list(VARIANTS), grid["seeds"], train, test, grid["epochs"])
    small_seconds = time.perf_counter() - start
    deep = {f"learning rate {lr:g}": collect(lambda name, seed: deep_cnn_variant(DEEP_PLACEMENTS[name], seed),
                                            list(DEEP_PLACEMENTS), grid["seeds"], train, test, grid["deep_epochs"], lr)
            for lr in DEEP_LEARNING_RATES}
    return {
        "description": (f"Adam, batches of {BATCH_SIZE}, {len(train[1])} training digits, {len(test[1])} test digits; "
                        "eval-mode accuracy on the training and the test digits, one value per seed"),
        "batch_size": BATCH_SIZE, "train_images": len(train[1]), "test_images": len(test[1]), **grid,
        "small_cnn": {"model": f"two 5x5 conv blocks, {CHANNELS[0]} and {CHANNELS[1]} channels, max-pools, Dropout, linear",
                      "learning_rate": LEARNING_RATE, "epochs": grid["epochs"], **small,
                      "seconds": round(small_seconds, 1)},
        "deep_cnn": {"model": f"{DEEP_DEPTH} 3x3 conv blocks of {DEEP_WIDTH} channels, two max-pools, linear",
                     "epochs": grid["deep_epochs"], "by_learning_rate": deep,
                     "seconds": round(time.perf_counter() - start - small_seconds, 1)},
        "headline": headline(deep),
    }
