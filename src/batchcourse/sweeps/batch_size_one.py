"""05_batch_size_one: test accuracy against training batch size, with and without BatchNorm, and remedies.

Two networks, because they answer differently:

* "cnn": the course's MnistCNN (8 and 16 channels), BatchNorm2d after each convolution. Its BatchNorm
  averages N·H·W values per channel (N·784 and N·196), so even one image gives many values.
* "mlp": 784 → 128 → 10 with BatchNorm1d on the 128 hidden features: it averages only N values per
  feature, and refuses batch size 1 in train mode.

Every run sees the same number of training samples (the same number of epochs), with Adam at a fixed
learning rate, and is scored in eval mode (running statistics) on the test digits. The "ghost" runs
keep the optimizer batch at 64 and change only the normalization batch, which separates what the batch
statistics do from what the smaller optimizer batch does.
"""

import statistics
import time

import torch
import torch.nn.functional as F
from torch import nn

from .. import data, models

BATCH_SIZES = (1, 2, 4, 8, 16, 32, 64)
GHOST_SIZES = (1, 2, 4, 8, 16, 32, 64)
SEEDS = (0, 1, 2)
NORMS = ("none", "batch_norm", "batch_renorm")
LEARNING_RATE = 1e-3


def batch_renorm(x, running_mean, running_var, weight, bias, r_max, d_max, eps=1e-5):
    """Batch Renormalization in train mode (Ioffe, 2017): r and d clipped and held constant for the gradient."""
    dims = [0, *range(2, x.dim())]
    shape = (1, -1) + (1,) * (x.dim() - 2)
    var, mean = torch.var_mean(x, dim=dims, correction=0)
    sigma_batch = (var + eps).sqrt()
    sigma_running = (running_var + eps).sqrt()
    r = (sigma_batch / sigma_running).clamp(1 / r_max, r_max).detach()
    d = ((mean - running_mean) / sigma_running).clamp(-d_max, d_max).detach()
    y = (x - mean.view(shape)) / sigma_batch.view(shape) * r.view(shape) + d.view(shape)
    if weight is not None:
        y = y * weight.view(shape)
    return y if bias is None else y + bias.view(shape)


class _AnyDimBatchNorm(nn.modules.batchnorm._BatchNorm):
    """BatchNorm for 2-D to 5-D input alike, as the sweep's networks use it after linear and conv layers."""

    def _check_input_dim(self, x):
        if x.dim() < 2:
            raise ValueError(f"expected at least 2-D input, got {x.dim()}-D")


class BatchRenorm(_AnyDimBatchNorm):
    """A BatchNorm layer that trains with Batch Renormalization; eval mode is plain BatchNorm.

    r_max and d_max grow linearly from 1 and 0 (plain BatchNorm) to their final values over
    `warmup_steps` training calls, as the paper does while the running statistics settle.
    """

    def __init__(self, num_features, r_max=3.0, d_max=5.0, warmup_steps=0, **kwargs):
        super().__init__(num_features, **kwargs)
        self.r_max, self.d_max, self.warmup_steps = r_max, d_max, warmup_steps

    def forward(self, x):
        if not self.training:
            return super().forward(x)
        if x.numel() // x.shape[1] <= 1:
            raise ValueError(f"Expected more than 1 value per channel when training, got input size {tuple(x.shape)}")
        ramp = min(1.0, self.num_batches_tracked.item() / self.warmup_steps) if self.warmup_steps else 1.0
        y = batch_renorm(x, self.running_mean, self.running_var, self.weight, self.bias,
                         1 + (self.r_max - 1) * ramp, self.d_max * ramp, self.eps)
        with torch.no_grad():
            dims = [0, *range(2, x.dim())]
            self.running_mean.lerp_(x.mean(dim=dims), self.momentum)
            self.running_var.lerp_(x.var(dim=dims, correction=1), self.momentum)
            self.num_batches_tracked += 1
        return y


class GhostBatchNorm(_AnyDimBatchNorm):
    """BatchNorm that, in train mode, normalizes consecutive chunks of `ghost_batch_size` samples separately."""

    def __init__(self, num_features, ghost_batch_size, **kwargs):
        super().__init__(num_features, **kwargs)
        self.ghost_batch_size = ghost_batch_size

    def forward(self, x):
        if not self.training:
            return super().forward(x)
        return torch.cat([super(GhostBatchNorm, self).forward(chunk) for chunk in x.split(self.ghost_batch_size)])


def make_norm(kind: str, dims: int, warmup_steps: int = 0, ghost_batch_size: int = 0):
    """A factory `num_features -> layer` for the networks below."""
    def make(num_features):
        if kind == "none":
            return nn.Identity()
        if kind == "batch_norm":
            return (nn.BatchNorm1d if dims == 1 else nn.BatchNorm2d)(num_features)
        if kind == "batch_renorm":
            return BatchRenorm(num_features, warmup_steps=warmup_steps)
        if kind == "ghost":
            return GhostBatchNorm(num_features, ghost_batch_size)
        raise ValueError(f"unknown normalization {kind!r}")
    return make


def bn_head_mlp(make_norm_1d, hidden: int = 128) -> nn.Sequential:
    """784 → hidden → 10 with a normalization layer on the hidden features (no bias before it)."""
    norm = make_norm_1d(hidden)
    return nn.Sequential(nn.Flatten(), nn.Linear(784, hidden, bias=isinstance(norm, nn.Identity)), norm,
                         nn.ReLU(), nn.Linear(hidden, 10))


def build(network: str, norm: str, steps: int, ghost_batch_size: int = 0) -> nn.Module:
    factory = make_norm(norm, 1 if network == "mlp" else 2, warmup_steps=steps // 4, ghost_batch_size=ghost_batch_size)
    if network == "mlp":
        return bn_head_mlp(factory)
    return models.MnistCNN(make_norm=factory, channels=(8, 16))


def train_and_score(network, norm, batch_size, seed, train, test, epochs, ghost_batch_size=0) -> float | None:
    """Eval-mode test accuracy after training; None where train mode refuses the batch (one value per channel)."""
    images, labels = train
    if network == "mlp" and norm != "none" and min(batch_size, ghost_batch_size or batch_size) == 1:
        return None
    steps = epochs * -(-len(images) // batch_size)
    torch.manual_seed(seed)
    model = build(network, norm, steps, ghost_batch_size)
    models.train_epochs(model, images, labels, batch_size=batch_size, epochs=epochs, lr=LEARNING_RATE, seed=seed)
    return models.accuracy(model.eval(), *test)


def summarize(runs: list[float | None]) -> dict:
    values = [v for v in runs if v is not None]
    if not values:
        return {"mean": None, "std": None, "runs": runs}
    spread = statistics.stdev(values) if len(values) > 1 else 0.0
    return {"mean": statistics.fmean(values), "std": spread, "runs": runs}


def accuracy_curves(network, norms, batch_sizes, seeds, train, test, epochs=1) -> dict:
    """{norm: [summary per batch size]}, each summary the mean, spread and runs over the seeds."""
    return {norm: [summarize([train_and_score(network, norm, b, s, train, test, epochs) for s in seeds])
                   for b in batch_sizes] for norm in norms}


def ghost_curve(network, ghost_sizes, seeds, train, test, epochs=1, batch_size=64) -> list[dict]:
    return [summarize([train_and_score(network, "ghost", batch_size, s, train, test, epochs, ghost_batch_size=g)
                       for s in seeds]) for g in ghost_sizes]


def run(quick: bool = False) -> dict:
    train_limit, test_limit = (1000, 500) if quick else (None, None)
    batch_sizes = (1, 8, 64) if quick else BATCH_SIZES
    ghost_sizes = (1, 8, 64) if quick else GHOST_SIZES
    seeds = SEEDS[:1] if quick else SEEDS
    epochs = 2
    train = data.mnist_tensors(train=True, limit=train_limit)
    test = data.mnist_tensors(train=False, limit=test_limit)
    results = {
        "protocol": (f"{len(train[0])} training digits, {epochs} epochs at every batch size (the same number of samples "
                     f"seen), Adam lr {LEARNING_RATE}, eval-mode accuracy on {len(test[0])} test digits, seeds {list(seeds)}; "
                     "Batch Renormalization with r_max 3 and d_max 5 reached after a quarter of the steps; "
                     "ghost runs: optimizer batch 64, normalization batch = ghost size"),
        "batch_sizes": list(batch_sizes), "ghost_sizes": list(ghost_sizes), "seeds": list(seeds),
        "networks": {}, "seconds": {},
    }
    for network in ("mlp", "cnn"):
        start = time.perf_counter()
        curves = accuracy_curves(network, NORMS, batch_sizes, seeds, train, test, epochs)
        curves["ghost"] = ghost_curve(network, ghost_sizes, seeds, train, test, epochs)
        results["networks"][network] = curves
        results["seconds"][network] = round(time.perf_counter() - start, 1)
    return results


def plot_summaries(ax, xs, summaries, label, color, style="o-"):
    """Mean with a ± one std band over the seeds; points without a result (None) are left out."""
    points = [(x, s["mean"], s["std"]) for x, s in zip(xs, summaries) if s["mean"] is not None]
    if not points:
        return
    x, mean, std = zip(*points)
    ax.plot(x, mean, style, color=color, label=label)
    ax.fill_between(x, [m - s for m, s in zip(mean, std)], [m + s for m, s in zip(mean, std)], color=color, alpha=0.2)


def print_table(results: dict, norms) -> None:
    """Mean ± std of every curve of `norms`, one row per network and normalization ("-": torch refuses it)."""
    for key, title in (("batch_sizes", "training batch size"), ("ghost_sizes", "ghost size")):
        shown = [n for n in norms if (n == "ghost") == (key == "ghost_sizes")]
        if not shown:
            continue
        print(f"{title:>28}" + "".join(f"{size:>13}" for size in results[key]))
        for network, curves in results["networks"].items():
            for norm in shown:
                cells = ["-" if s["mean"] is None else f"{s['mean']:.3f}±{s['std']:.3f}" for s in curves[norm]]
                print(f"{network + ' ' + norm:>28}" + "".join(f"{c:>13}" for c in cells))
