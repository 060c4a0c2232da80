"""04_running_stats_and_eval: the evaluation-batch-size symptom, large, in a CNN whose maps shrink to 1×1.

Every run trains `models.strided_cnn` with BatchNorm2d (five stride-2 convolutions, 28×28 down to 1×1) with
batches of 8, Adam (learning rate 1e-3), 4 epochs over the shipped training digits. Then the same trained model is
scored on the test digits in several ways, each on a fresh copy of it:

* `model.eval()` (the running statistics);
* train mode left on, at evaluation batch sizes 2 to 256 (shuffled test batches, the batch's statistics);
* train mode left on, on the test set sorted by label in batches of 100 (one class per batch);
* the remedies: `model.eval()`, and `model.eval()` after recalibrating the running statistics (reset,
  `momentum=None`, one pass over the training digits in train mode, batches of 256).

It also measures why: per BatchNorm layer, how far the mean and standard deviation of a batch of 2 lie from the
running ones, in units of the running standard deviation.

`python3 tasks.py sweep 04_running_stats_and_eval` runs it; the notebook trains one such model live.
"""

import copy
import statistics
import time

import torch
from torch import nn

from .. import data, models
from . import batchnorm_inputs

FULL = {"seeds": [0, 1, 2, 3, 4], "train_limit": None}
QUICK = {"seeds": [0], "train_limit": 1000}
BATCH_SIZE, EPOCHS, LEARNING_RATE = 8, 4, 1e-3
EVAL_BATCH_SIZES = [2, 4, 16, 64, 256]
SORTED_BATCH = 100


def trained_model(seed: int, train: tuple, batch_size: int = BATCH_SIZE, epochs: int = EPOCHS) -> nn.Module:
    torch.manual_seed(seed)
    model = models.strided_cnn(models.batch_norm)
    models.train_epochs(model, *train, batch_size=batch_size, epochs=epochs, lr=LEARNING_RATE, seed=seed)
    return model


@torch.no_grad()
def accuracy_in_batches(model: nn.Module, images, labels, batch_size: int, train_mode: bool) -> float:
    """Accuracy over consecutive batches in the given mode; the model itself is left untouched (a copy runs)."""
    model = copy.deepcopy(model).train(train_mode)
    correct = sum((model(images[i:i + batch_size]).argmax(1) == labels[i:i + batch_size]).sum().item()
                  for i in range(0, len(images), batch_size))
    return correct / len(images)


@torch.no_grad()
def recalibrated(model: nn.Module, images, batch_size: int = 256) -> nn.Module:
    """A copy whose running statistics are the plain average over one pass of `images` in train mode."""
    model = copy.deepcopy(model)
    for layer in model.modules():
        if isinstance(layer, nn.BatchNorm2d):
            layer.reset_running_stats()
            layer.momentum = None
    model.train()
    for start in range(0, len(images), batch_size):
        model(images[start:start + batch_size])
    return model.eval()


@torch.no_grad()
def batch_statistics_error(model: nn.Module, images, batch_size: int = 2) -> list[dict]:
    """Per BatchNorm layer: values per channel in a batch, and the median distance of the batch's mean and std
    from the running ones, in running standard deviations (over channels and consecutive batches)."""
    rows = []
    for index, (layer, x) in enumerate(batchnorm_inputs(model, images)):
        batches = x[:len(x) - len(x) % batch_size].reshape(-1, batch_size, *x.shape[1:])
        mean = batches.mean(dim=(1, 3, 4))
        std = batches.var(dim=(1, 3, 4), correction=0).sqrt()
        running_std = (layer.running_var + layer.eps).sqrt()
        rows.append({
            "layer": index + 1, "map": f"{x.shape[2]}x{x.shape[3]}", "values_per_channel": batch_size * x.shape[2] * x.shape[3],
            "mean_error": ((mean - layer.running_mean).abs() / running_std).median().item(),
            "std_error": ((std - running_std).abs() / running_std).median().item(),
        })
    return rows


def scores(model: nn.Module, train: tuple, test: tuple) -> dict:
    images, labels = test
    order = labels.argsort(stable=True)
    return {
        "eval mode": accuracy_in_batches(model, *test, 256, train_mode=False),
        **{f"train mode, batch {size}": accuracy_in_batches(model, *test, size, train_mode=True)
           for size in EVAL_BATCH_SIZES},
        f"train mode, one class per batch of {SORTED_BATCH}":
            accuracy_in_batches(model, images[order], labels[order], SORTED_BATCH, train_mode=True),
        "eval mode after recalibration": accuracy_in_batches(recalibrated(model, train[0]), *test, 256, train_mode=False),
    }


def run(quick: bool = False) -> dict:
    grid = QUICK if quick else FULL
    train = data.mnist_tensors(train=True, limit=grid["train_limit"])
    test = data.mnist_tensors(train=False)
    start = time.perf_counter()
    by_seed, error_rows = [], None
    for seed in grid["seeds"]:
        model = trained_model(seed, train)
        by_seed.append(scores(model, train, test))
        if error_rows is None:
            error_rows = batch_statistics_error(model, test[0])
    accuracy = {name: [round(values[name], 4) for values in by_seed] for name in by_seed[0]}
    return {
        "description": (f"models.strided_cnn with BatchNorm2d, trained with batches of {BATCH_SIZE}, Adam lr "
                        f"{LEARNING_RATE}, {EPOCHS} epochs over {len(train[1])} training digits; test accuracy on "
                        f"{len(test[1])} test digits, scored in several ways, one value per seed"),
        "batch_size": BATCH_SIZE, "epochs": EPOCHS, "learning_rate": LEARNING_RATE, **grid,
        "train_images": len(train[1]),
        "test_accuracy": accuracy,
        "mean": {name: round(statistics.fmean(runs), 4) for name, runs in accuracy.items()},
        "std": {name: round(statistics.stdev(runs), 4) if len(runs) > 1 else 0.0 for name, runs in accuracy.items()},
        "batch_statistics_error_at_batch_2_seed_0": error_rows,
        "training_seconds": round(time.perf_counter() - start, 1),
        "headline": [{
            "claim": "eval_batch_size_symptom", "metric": "test accuracy",
            "better": {"label": "model.eval()", "runs": accuracy["eval mode"]},
            "worse": {"label": "train mode left on, evaluation batch 2", "runs": accuracy["train mode, batch 2"]},
        }],
    }
