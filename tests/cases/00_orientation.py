"""Answers for 00_orientation that the grader must score correctly.

WRONG: plausible mistakes; each must lose points on its function's tests.
CORRECT: right answers written differently from the solution; each must keep full points.
Keys are the grade ids of the solution cells; see tests/test_notebooks.py for how they are graded.
"""

WRONG = {
    "stack_images": [
        ("concatenates instead of stacking", """
def stack_images(images):
    if len(images) == 0:
        raise ValueError("empty")
    return torch.cat(images)
""", "test_stack_images_values"),
        ("forgets (H, W) images need a channel dimension", """
def stack_images(images):
    if len(images) == 0 or any(im.shape != images[0].shape for im in images):
        raise ValueError("bad images")
    return torch.stack(images)
""", "test_stack_images_values", "only"),
        ("stacks along the channel dimension", """
def stack_images(images):
    if len(images) == 0:
        raise ValueError("empty")
    images = [im.unsqueeze(0) if im.dim() == 2 else im for im in images]
    if any(im.shape != images[0].shape for im in images):
        raise ValueError("shapes differ")
    return torch.stack(images, dim=1)
""", "test_stack_images_values"),
        ("lets torch's RuntimeError through for mismatched shapes", """
def stack_images(images):
    if len(images) == 0:
        raise ValueError("empty")
    return torch.stack([im.unsqueeze(0) if im.dim() == 2 else im for im in images])
""", "test_stack_images_errors", "only"),
        ("converts everything to float32", """
def stack_images(images):
    if len(images) == 0:
        raise ValueError("empty")
    images = [im.unsqueeze(0) if im.dim() == 2 else im for im in images]
    if any(im.shape != images[0].shape for im in images):
        raise ValueError("shapes differ")
    return torch.stack(images).float()
""", "test_stack_images_values", "only"),
        ("validates with assert, so a bad list raises AssertionError", """
def stack_images(images):
    assert len(images) > 0, "no images"
    images = [im.unsqueeze(0) if im.dim() == 2 else im for im in images]
    assert all(im.shape == images[0].shape for im in images), "shapes differ"
    return torch.stack(images)
""", "test_stack_images_errors", "only"),
    ],
    "split_batch": [
        ("drops the last, smaller chunk", """
def split_batch(x, batch_size):
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    return [x[i * batch_size:(i + 1) * batch_size] for i in range(len(x) // batch_size)]
""", "test_split_batch_values"),
        ("treats batch_size as the number of chunks", """
def split_batch(x, batch_size):
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    return list(torch.chunk(x, batch_size))
""", "test_split_batch_values"),
        ("overlaps the chunks by one sample", """
def split_batch(x, batch_size):
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    return [x[start:start + batch_size] for start in range(0, len(x), max(batch_size - 1, 1))]
""", "test_split_batch_values"),
        ("never raises for a bad batch size", """
def split_batch(x, batch_size):
    return [x[start:start + batch_size] for start in range(0, len(x), max(batch_size, 1))]
""", "test_split_batch_errors", "only"),
        ("splits the last dimension", """
def split_batch(x, batch_size):
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    return list(torch.split(x, batch_size, dim=-1))
""", "test_split_batch_values"),
        ("leaves the bad batch size to torch.split, which raises RuntimeError", """
def split_batch(x, batch_size):
    return list(torch.split(x, batch_size))
""", "test_split_batch_errors", "only"),
    ],
    "to_nchw": [
        ("reshapes instead of permuting", """
def to_nchw(x):
    n, h, w, c = x.shape
    return x.reshape(n, c, h, w)
""", "test_to_nchw_hidden"),
        ("swaps channels and height", """
def to_nchw(x):
    return x.transpose(1, 3)
""", "test_to_nchw_hidden"),
        ("moves the wrong axis", """
def to_nchw(x):
    return x.movedim(1, 3)
""", "test_to_nchw_hidden"),
        ("puts width before height", """
def to_nchw(x):
    return x.permute(0, 3, 2, 1)
""", "test_to_nchw_hidden"),
        ("changes the dtype", """
def to_nchw(x):
    return x.permute(0, 3, 1, 2).to(torch.float32)
""", "test_to_nchw_hidden", "only"),
    ],
}

CORRECT = {
    "stack_images": [
        ("concatenates unsqueezed images, with its own checks", """
def stack_images(images):
    if not images:
        raise ValueError("no images")
    batch = []
    for image in images:
        if image.ndim == 2:
            image = image[None]
        batch.append(image[None])
    if len({tuple(b.shape) for b in batch}) != 1 or batch[0].ndim != 4:
        raise ValueError("images differ in shape")
    return torch.cat(batch, dim=0)
"""),
        ("fills a preallocated tensor, and warns on stderr while doing so", """
import warnings

def stack_images(images):
    if len(images) == 0:
        raise ValueError("no images")
    first = images[0] if images[0].dim() == 3 else images[0].unsqueeze(0)
    out = torch.empty((len(images), *first.shape), dtype=first.dtype)
    for i, image in enumerate(images):
        image = image.reshape(1, *image.shape) if image.dim() == 2 else image
        if image.shape != first.shape:
            raise ValueError(f"image {i} has shape {tuple(image.shape)}, expected {tuple(first.shape)}")
        out[i] = image
    warnings.warn("stack_images copies the images", UserWarning)
    return out
"""),
    ],
    "split_batch": [
        ("torch.split, as a tuple", """
def split_batch(x, batch_size):
    if batch_size <= 0:
        raise ValueError("batch_size must be positive")
    return torch.split(x, batch_size)
"""),
        ("a while loop with tensor_split-free slicing", """
def split_batch(x, batch_size):
    if not batch_size >= 1:
        raise ValueError("batch_size must be positive")
    chunks, start = [], 0
    while start < x.shape[0]:
        chunks.append(x.narrow(0, start, min(batch_size, x.shape[0] - start)))
        start += batch_size
    return chunks
"""),
    ],
    "to_nchw": [
        ("movedim", """
def to_nchw(x):
    return x.movedim(-1, 1)
"""),
        ("einsum, made contiguous", """
def to_nchw(x):
    return torch.einsum("nhwc->nchw", x).contiguous()
"""),
    ],
}

# Tampering that targets this notebook's own references (tests/test_tampering.py adds the generic ones).
ATTACKS = {
    "replaces torch.stack, the reference of stack_images": ("stack_images", """
def stack_images(images):
    return torch.cat(images)

torch.stack = lambda tensors, dim=0: torch.cat(list(tensors), dim)
"""),
    "replaces Tensor.permute, the reference of to_nchw": ("to_nchw", """
def to_nchw(x):
    n, h, w, c = x.shape
    return x.reshape(n, c, h, w)

torch.Tensor.permute = lambda self, *dims: self.reshape(self.shape[0], self.shape[3], self.shape[1], self.shape[2])
"""),
    "re-applies a replaced torch.split each time it runs": ("split_batch", """
def split_batch(x, batch_size):
    torch.split = lambda tensor, size, dim=0: list(torch.chunk(tensor, size, dim))
    return list(torch.chunk(x, batch_size))
"""),
}
