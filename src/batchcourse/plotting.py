"""Plotting helpers: a consistent figure style and the few figures several notebooks draw."""

import matplotlib.pyplot as plt
import torch
from matplotlib.colors import LogNorm

from . import i18n

i18n.install_in_kernel()  # a notebook in another language: its hints, figures and printed lines too

FIGSIZE = (7.0, 3.5)


def use_course_style() -> None:
    """Figures sized for JupyterLab, with readable fonts and light grids."""
    plt.rcParams.update({
        "figure.figsize": FIGSIZE, "figure.dpi": 100, "axes.grid": True, "grid.alpha": 0.3,
        "axes.spines.top": False, "axes.spines.right": False, "font.size": 10,
    })


def show_images(images: torch.Tensor, labels=None, ncols: int = 8, title: str | None = None):
    """Show a batch of shape (N, 1, H, W) or (N, H, W) as a grid of grey images."""
    images = images.detach().cpu()
    if images.ndim == 4:
        images = images[:, 0]
    nrows = (len(images) + ncols - 1) // ncols
    fig, axes = plt.subplots(nrows, ncols, figsize=(1.1 * ncols, 1.2 * nrows + (0.3 if title else 0)), squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i < len(images):
            ax.imshow(images[i], cmap="gray_r")
            if labels is not None:
                ax.set_title(str(int(labels[i])), fontsize=9)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def heatmaps(matrices: dict[str, torch.Tensor], cmap: str = "viridis", title: str | None = None,
             log_floor: float | None = None):
    """Matrices side by side, each with its own colour bar; keys are panel titles.

    With `log_floor`, all panels share one logarithmic colour scale from `log_floor` to the largest
    value, and values below the floor (zeros included) are drawn in the floor's colour: small
    off-diagonal entries then stay visible next to a large diagonal.
    """
    fig, axes = plt.subplots(1, len(matrices), figsize=(3.0 * len(matrices), 2.9), squeeze=False)
    largest = max(float(m.detach().max()) for m in matrices.values())
    for ax, (name, matrix) in zip(axes.flat, matrices.items()):
        values = matrix.detach().cpu().double()
        if log_floor is None:
            image = ax.imshow(values, cmap=cmap)
        else:
            norm = LogNorm(vmin=log_floor, vmax=max(largest, 10 * log_floor))
            image = ax.imshow(values.clamp(min=log_floor), cmap=cmap, norm=norm)
        ax.set_title(name, fontsize=9)
        ax.set_xticks(range(values.shape[1]))
        ax.set_yticks(range(values.shape[0]))
        ax.set_xlabel("input sample j")
        ax.set_ylabel("output sample i")
        ax.grid(False)
        fig.colorbar(image, ax=ax, fraction=0.046)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig
