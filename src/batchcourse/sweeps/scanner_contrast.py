"""06_scanner_contrast: BatchNorm at small training batches against GroupNorm, on images that differ in contrast.

The training and test digits go through `data.scanner_contrast`: each image gets its own random gain (1/8 to 8)
and offset (-2 to 2, in pixel units), as scans from different scanners do. Every run trains `models.MnistCNN`
(8 and 16 channels) with BatchNorm, GroupNorm (4 groups) or no normalization, from the same seeded start, with Adam
(learning rate 1e-3), and scores it in eval mode on the test digits. BatchNorm models are also scored in train mode
with test batches of one image, where BatchNorm normalizes each image by itself, as InstanceNorm does.

The main grid gives every batch size the same number of training images (the same number of epochs, as Wu and He
do): a batch of one makes 16 times as many steps as a batch of 16. A second, smaller grid gives every batch size
the same number of steps instead, so a batch of one sees 16 times fewer images: there GroupNorm is not flat, and
the comparison of the two grids shows why.

It also measures why BatchNorm fails, on the BatchNorm model trained with batches of one and on the same model
trained on the plain digits: per BatchNorm layer, the running variance and the share of the features' variance
that lies between images (the variance of each image's channel mean), relative to the variance over the whole
training set.

`python3 tasks.py sweep 06_scanner_contrast` runs it; notebooks 05 and 06 show it next to their own sweeps.
"""

import copy
import statistics
import time

import torch
from torch import nn

from .. import data, models
from . import batchnorm_inputs

NORMS = {"BatchNorm": models.batch_norm, "GroupNorm": models.group_norm, "no normalization": models.no_norm}
# images_seen: training images per run at every batch size (8 epochs of the 4,000 digits); steps = images_seen / batch.
FULL = {"batch_sizes": [1, 2, 4, 16, 64], "seeds": [0, 1, 2], "images_seen": 32000,
        "same_steps": {"batch_sizes": [1, 2, 4, 16], "steps": 2000}}
QUICK = {"batch_sizes": [1, 32], "seeds": [0], "images_seen": 640, "same_steps": {"batch_sizes": [1, 32], "steps": 100}}
LEARNING_RATE = 1e-3
TRAIN_SEED, TEST_SEED = 1000, 2000


def scanner_digits(train: bool) -> tuple:
    images, labels = data.mnist_tensors(train=train)
    return data.scanner_contrast(images, TRAIN_SEED if train else TEST_SEED), labels


def train_steps(model: nn.Module, images, labels, batch_size: int, steps: int, seed: int) -> nn.Module:
    """Adam on shuffled batches for exactly `steps` steps (a new shuffle each time the data runs out)."""
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=LEARNING_RATE)
    loss_fn = nn.CrossEntropyLoss()
    model.train()
    order, position = torch.randperm(len(images), generator=generator), 0
    for _ in range(steps):
        if position + batch_size > len(images):
            order, position = torch.randperm(len(images), generator=generator), 0
        batch = order[position:position + batch_size]
        position += batch_size
        optimizer.zero_grad()
        loss_fn(model(images[batch]), labels[batch]).backward()
        optimizer.step()
    return model


def trained(norm: str, batch_size: int, seed: int, steps: int, train: tuple) -> nn.Module:
    torch.manual_seed(seed)
    model = models.MnistCNN(make_norm=NORMS[norm], channels=(8, 16))
    return train_steps(model, *train, batch_size, steps, seed)


@torch.no_grad()
def accuracy_per_image_statistics(model: nn.Module, images, labels) -> float:
    """Train mode with batches of one image (on a copy): each BatchNorm layer uses that image's own statistics."""
    model = copy.deepcopy(model).train()
    return sum((model(image[None]).argmax(1) == label).item() for image, label in zip(images, labels)) / len(images)


@torch.no_grad()
def variance_parts(model: nn.Module, images) -> list[dict]:
    """Per BatchNorm layer, medians over channels of: running variance / variance over the data, and the share
    of the variance over the data that lies between images (the variance of each image's channel mean)."""
    rows = []
    for index, (layer, x) in enumerate(batchnorm_inputs(model, images)):
        total = x.var(dim=(0, 2, 3))
        between = x.mean(dim=(2, 3)).var(dim=0)
        rows.append({"layer": index + 1,
                     "running_var_over_data_var": (layer.running_var / total).median().item(),
                     "between_images_share": (between / total).median().item()})
    return rows


def steps_for(batch_size: int, images_seen: int) -> int:
    return max(1, images_seen // batch_size)


def summarize(accuracy: dict) -> dict:
    return {norm: {size: {"mean": round(statistics.fmean(runs), 4),
                          "std": round(statistics.stdev(runs), 4) if len(runs) > 1 else 0.0}
                   for size, runs in by_size.items()} for norm, by_size in accuracy.items()}


def grid_accuracy(batch_sizes: list[int], seeds: list[int], steps_of, train: tuple, test: tuple) -> tuple[dict, dict]:
    """Eval-mode test accuracy {norm: {str(batch): [per seed]}}, and BatchNorm's in train mode on single images."""
    accuracy, per_image = {norm: {} for norm in NORMS}, {}
    for norm in NORMS:
        for size in batch_sizes:
            runs, own = [], []
            for seed in seeds:
                model = trained(norm, size, seed, steps_of(size), train)
                runs.append(round(models.accuracy(model.eval(), *test), 4))
                if norm == "BatchNorm":
                    own.append(round(accuracy_per_image_statistics(model, *test), 4))
            accuracy[norm][str(size)] = runs
            if own:
                per_image[str(size)] = own
    return accuracy, per_image


def run(quick: bool = False) -> dict:
    grid = QUICK if quick else FULL
    train, test = scanner_digits(train=True), scanner_digits(train=False)
    start = time.perf_counter()
    images_seen = grid["images_seen"]
    steps = {str(size): steps_for(size, images_seen) for size in grid["batch_sizes"]}
    accuracy, per_image = grid_accuracy(grid["batch_sizes"], grid["seeds"], lambda size: steps[str(size)],
                                        train, test)
    fixed = grid["same_steps"]
    same_steps_accuracy, _ = grid_accuracy(fixed["batch_sizes"], grid["seeds"], lambda size: fixed["steps"],
                                           train, test)
    smallest = str(grid["batch_sizes"][0])
    plain_train = data.mnist_tensors(train=True)
    batch_1_steps = steps_for(1, images_seen)
    mechanism = {
        "scanner digits": variance_parts(trained("BatchNorm", 1, 0, batch_1_steps, train), train[0]),
        "plain digits": variance_parts(trained("BatchNorm", 1, 0, batch_1_steps, plain_train), plain_train[0]),
    }
    return {
        "description": ("MnistCNN (8, 16 channels) on digits with a random gain (1/8 to 8) and offset (-2 to 2) per "
                        f"image, Adam lr {LEARNING_RATE}, {images_seen} training images per run at every batch size "
                        f"({images_seen / len(train[1]):g} epochs of {len(train[1])} digits, so {images_seen} / batch "
                        f"size steps); eval-mode test accuracy on {len(test[1])} test digits (transformed the same "
                        "way, another seed), one value per seed"),
        "batch_sizes": grid["batch_sizes"], "seeds": grid["seeds"], "images_seen": images_seen, "steps": steps,
        "learning_rate": LEARNING_RATE, "train_images": len(train[1]),
        "test_accuracy": accuracy,
        "summary": summarize(accuracy),
        "batchnorm_train_mode_batches_of_one": per_image,
        "same_steps": {"description": (f"the same runs with {fixed['steps']} steps at every batch size instead "
                                       f"(a batch of b sees {fixed['steps']}·b images)"),
                       "batch_sizes": fixed["batch_sizes"], "steps": fixed["steps"],
                       "test_accuracy": same_steps_accuracy, "summary": summarize(same_steps_accuracy)},
        "variance_parts_batchnorm_batch_1_seed_0": mechanism,
        "training_seconds": round(time.perf_counter() - start, 1),
        "headline": [
            {"claim": "bn_small_batch_vs_gn", "metric": "test accuracy",
             "better": {"label": f"GroupNorm, training batch {smallest}", "runs": accuracy["GroupNorm"][smallest]},
             "worse": {"label": f"BatchNorm, training batch {smallest}", "runs": accuracy["BatchNorm"][smallest]}},
            {"claim": "bn_small_batch_vs_no_norm", "metric": "test accuracy",
             "better": {"label": f"no normalization, training batch {smallest}",
                        "runs": accuracy["no normalization"][smallest]},
             "worse": {"label": f"BatchNorm, training batch {smallest}", "runs": accuracy["BatchNorm"][smallest]}},
        ],
    }
