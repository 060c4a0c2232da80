"""The small CNNs the notebooks share, and a short training loop for them."""

from collections.abc import Callable

import torch
from torch import nn


def no_norm(num_features: int) -> nn.Module:
    return nn.Identity()


def batch_norm(num_features: int) -> nn.Module:
    return nn.BatchNorm2d(num_features)


def group_norm(num_features: int, num_groups: int = 4) -> nn.Module:
    return nn.GroupNorm(min(num_groups, num_features), num_features)


class MnistCNN(nn.Sequential):
    """conv 1→c1 5×5 pad 2, norm, ReLU, max-pool 2; conv c1→c2, norm, ReLU, max-pool 2; dropout; linear → 10.

    With the defaults and no norm or dropout it is the network people ask about: 16 and 32
    channels, 32·7·7 features into the classifier. `make_norm(num_features)` puts a
    normalization layer between each convolution and its ReLU; the convolutions drop their
    bias when a BatchNorm follows, since BatchNorm's shift would cancel it.
    """

    def __init__(self, make_norm: Callable[[int], nn.Module] = no_norm, channels: tuple[int, int] = (16, 32),
                 dropout: float = 0.0, num_classes: int = 10):
        c1, c2 = channels
        conv_bias = isinstance(make_norm(1), nn.Identity)
        super().__init__(
            nn.Conv2d(1, c1, 5, padding=2, bias=conv_bias), make_norm(c1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(c1, c2, 5, padding=2, bias=conv_bias), make_norm(c2), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(), nn.Dropout(dropout), nn.Linear(c2 * 7 * 7, num_classes),
        )

    def __getitem__(self, index):
        """A slice is a plain nn.Sequential: this class's constructor does not take a list of layers."""
        if isinstance(index, slice):
            return nn.Sequential(*list(self)[index])
        return super().__getitem__(index)


def deep_cnn(make_norm: Callable[[int], nn.Module] = no_norm, depth: int = 8, width: int = 16,
             num_classes: int = 10) -> nn.Sequential:
    """A plain CNN of `depth` 3×3 convolutions, each followed by `make_norm` and ReLU, no residual connections.

    The first convolution works at 28×28, then a max-pool; the first half of the others at 14×14,
    a max-pool, the rest at 7×7; then a linear classifier. Deep enough that training it without
    normalization is hard, small enough to train on a CPU in seconds.
    """
    conv_bias = isinstance(make_norm(1), nn.Identity)
    layers, channels = [], 1
    for index in range(depth):
        layers += [nn.Conv2d(channels, width, 3, padding=1, bias=conv_bias), make_norm(width), nn.ReLU()]
        channels = width
        if index in (0, depth // 2):
            layers.append(nn.MaxPool2d(2))
    return nn.Sequential(*layers, nn.Flatten(), nn.Linear(width * 7 * 7, num_classes))


def he_init(model: nn.Module) -> nn.Module:
    """Kaiming (He et al., 2015) normal initialization for ReLU networks: every conv and linear weight, zero biases."""
    for module in model.modules():
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
            if module.bias is not None:
                nn.init.zeros_(module.bias)
    return model


def train_epochs(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, *, batch_size: int,
                 epochs: int = 1, lr: float = 1e-3, seed: int = 0,
                 optimizer: torch.optim.Optimizer | None = None) -> list[float]:
    """Train with cross-entropy on shuffled mini-batches; return the loss of every step.

    The optimizer is a new Adam with learning rate `lr` unless one is given: pass the same optimizer to
    every call that continues a training, so that its state (Adam's moment estimates) carries over.
    """
    generator = torch.Generator().manual_seed(seed)
    optimizer = optimizer if optimizer is not None else torch.optim.Adam(model.parameters(), lr=lr)
    loss_fn = nn.CrossEntropyLoss()
    losses = []
    model.train()
    for _ in range(epochs):
        order = torch.randperm(len(images), generator=generator)
        for start in range(0, len(images), batch_size):
            batch = order[start:start + batch_size]
            optimizer.zero_grad()
            loss = loss_fn(model(images[batch]), labels[batch])
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
    return losses


@torch.no_grad()
def accuracy(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, batch_size: int = 500) -> float:
    """Fraction of correct predictions, counted per sample, in whatever mode the model is in."""
    correct = sum(
        (model(images[i:i + batch_size]).argmax(1) == labels[i:i + batch_size]).sum().item()
        for i in range(0, len(images), batch_size)
    )
    return correct / len(images)


def strided_cnn(make_norm: Callable[[int], nn.Module] = no_norm, width: int = 16,
                num_classes: int = 10) -> nn.Sequential:
    """Five 3×3 convolutions with stride 2 (28 → 14 → 7 → 4 → 2 → 1), each followed by `make_norm` and ReLU.

    The maps shrink to 1×1, as they do before the classifier of most image networks: the last
    normalization layer sees one value per image and channel, so a BatchNorm there averages
    only as many values as the batch has images.
    """
    conv_bias = isinstance(make_norm(1), nn.Identity)
    layers, channels = [], 1
    for out in (width, 2 * width, 2 * width, 4 * width, 4 * width):
        layers += [nn.Conv2d(channels, out, 3, stride=2, padding=1, bias=conv_bias), make_norm(out), nn.ReLU()]
        channels = out
    return nn.Sequential(*layers, nn.Flatten(), nn.Linear(channels, num_classes))
