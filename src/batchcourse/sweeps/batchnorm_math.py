"""03_batchnorm_math: does BatchNorm help training? Two experiments, several seeds each.

1. The course's MnistCNN (2 convolutions) with and without BatchNorm: Adam, learning rate 1e-3,
   batches of 50, one optimizer for all epochs; test accuracy (eval mode) after every epoch.
2. A deeper plain CNN (`models.deep_cnn`, 8 convolutions) over a learning-rate sweep, SGD with
   momentum 0.9: with BatchNorm, without normalization (torch's default initialization), and without
   normalization but with He initialization.

Each run trains on the 4,000 shipped training digits and is tested on the 1,000 shipped test digits.
"""

import torch

from .. import data, models

BATCH_SIZE = 50
SHALLOW = {"BatchNorm": models.batch_norm, "no normalization": models.no_norm}
DEEP_VARIANTS = ("BatchNorm", "no normalization", "no normalization, He init")


def make_deep(variant: str) -> torch.nn.Module:
    if variant == "BatchNorm":
        return models.deep_cnn(models.batch_norm)
    model = models.deep_cnn(models.no_norm)
    return models.he_init(model) if variant.endswith("He init") else model


def train_shallow(make_norm, seed: int, epochs: int, train, test) -> dict:
    """One MnistCNN run: the smoothed training loss and the test accuracy after every epoch."""
    torch.manual_seed(seed)
    model = models.MnistCNN(make_norm=make_norm)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    losses, accuracies = [], []
    for epoch in range(epochs):
        losses += models.train_epochs(model, *train, batch_size=BATCH_SIZE, seed=100 * seed + epoch, optimizer=optimizer)
        accuracies.append(models.accuracy(model.eval(), *test))
    return {"losses": losses, "accuracies": accuracies}


def train_deep(variant: str, lr: float, seed: int, epochs: int, train, test) -> float:
    """One deep_cnn run with SGD (momentum 0.9); returns the test accuracy (eval mode)."""
    torch.manual_seed(seed)
    model = make_deep(variant)
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    models.train_epochs(model, *train, batch_size=BATCH_SIZE, epochs=epochs, seed=seed, optimizer=optimizer)
    return models.accuracy(model.eval(), *test)


def run(quick: bool = False) -> dict:
    train = data.mnist_tensors(train=True, limit=1000 if quick else None)
    test = data.mnist_tensors(train=False)
    seeds = range(2) if quick else range(5)
    shallow_epochs = 1 if quick else 3
    shallow = {label: [train_shallow(make_norm, seed, shallow_epochs, train, test) for seed in seeds]
               for label, make_norm in SHALLOW.items()}
    learning_rates = [0.01, 0.1] if quick else [0.003, 0.01, 0.03, 0.1, 0.3]
    deep_seeds = range(2) if quick else range(3)
    deep_epochs = 1 if quick else 2
    deep = {variant: {str(lr): [train_deep(variant, lr, seed, deep_epochs, train, test) for seed in deep_seeds]
                      for lr in learning_rates} for variant in DEEP_VARIANTS}
    return {
        "train_images": len(train[0]), "test_images": len(test[0]), "batch_size": BATCH_SIZE,
        "shallow": {"epochs": shallow_epochs, "seeds": list(seeds), "optimizer": "Adam, lr 1e-3", "runs": shallow},
        "deep": {"epochs": deep_epochs, "seeds": list(deep_seeds), "depth": 8, "width": 16,
                 "optimizer": "SGD, momentum 0.9", "learning_rates": learning_rates, "accuracy": deep},
    }
