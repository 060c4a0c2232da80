"""Answers for 03_batchnorm_math that the grader must score correctly (see 00's file for the format)."""

WRONG = {
    "bn_reduction_dims": [
        ("always returns the dims of a 4-D input", """
def bn_reduction_dims(ndim):
    if ndim < 2:
        raise ValueError("no channels")
    return (0, 2, 3)
""", "test_bn_reduction_dims_values"),
        ("leaves out the batch dimension", """
def bn_reduction_dims(ndim):
    if ndim < 2:
        raise ValueError("no channels")
    return tuple(range(2, ndim)) or (0,)
""", "test_bn_reduction_dims_values"),
        ("averages over the channels too", """
def bn_reduction_dims(ndim):
    if ndim < 2:
        raise ValueError("no channels")
    return tuple(range(ndim))
""", "test_bn_reduction_dims_values"),
        ("never raises", """
def bn_reduction_dims(ndim):
    return (0,) + tuple(range(2, ndim))
""", "test_bn_reduction_dims_errors", "only"),
        ("is off by one", """
def bn_reduction_dims(ndim):
    if ndim < 2:
        raise ValueError("no channels")
    return (0,) + tuple(range(2, ndim + 1))
""", "test_bn_reduction_dims_values"),
        ("returns the batch dimension only", """
def bn_reduction_dims(ndim):
    if ndim < 2:
        raise ValueError("no channels")
    return (0,)
""", "test_bn_reduction_dims_values"),
        ("checks ndim with assert, so a bad ndim raises AssertionError", """
def bn_reduction_dims(ndim):
    assert ndim >= 2, "BatchNorm needs a batch and a channel dimension"
    return (0,) + tuple(range(2, ndim))
""", "test_bn_reduction_dims_errors", "only"),
    ],
    "batch_norm_train": [
        ("calls torch's batch_norm", """
def batch_norm_train(x, weight=None, bias=None, eps=1e-5):
    dims = [0] + list(range(2, x.dim()))
    y = F.batch_norm(x, None, None, weight, bias, training=True, eps=eps)
    return y, x.mean(dim=dims), x.var(dim=dims, unbiased=False)
""", ("test_batch_norm_train_values", "test_batch_norm_train_edge_shapes", "test_batch_norm_train_defaults")),
        ("uses the unbiased variance", """
def batch_norm_train(x, weight=None, bias=None, eps=1e-5):
    dims = [0] + list(range(2, x.dim()))
    if x.numel() // x.shape[1] <= 1:
        raise ValueError("one value per channel")
    shape = (1, -1) + (1,) * (x.dim() - 2)
    mean, var = x.mean(dim=dims), x.var(dim=dims)
    y = (x - mean.view(shape)) / (var.view(shape) + eps).sqrt()
    y = y if weight is None else y * weight.view(shape)
    return (y if bias is None else y + bias.view(shape)), mean, var
""", "test_batch_norm_train_values"),
        ("puts eps outside the square root", """
def batch_norm_train(x, weight=None, bias=None, eps=1e-5):
    dims = [0] + list(range(2, x.dim()))
    if x.numel() // x.shape[1] <= 1:
        raise ValueError("one value per channel")
    shape = (1, -1) + (1,) * (x.dim() - 2)
    mean, var = x.mean(dim=dims), x.var(dim=dims, unbiased=False)
    y = (x - mean.view(shape)) / (var.view(shape).sqrt() + eps)
    y = y if weight is None else y * weight.view(shape)
    return (y if bias is None else y + bias.view(shape)), mean, var
""", "test_batch_norm_train_values"),
        ("averages over (0, 2, 3) whatever the input", """
def batch_norm_train(x, weight=None, bias=None, eps=1e-5):
    if x.numel() // x.shape[1] <= 1:
        raise ValueError("one value per channel")
    dims = [d for d in (0, 2, 3) if d < x.dim()]
    shape = (1, -1) + (1,) * (x.dim() - 2)
    mean, var = x.mean(dim=dims), x.var(dim=dims, unbiased=False)
    if mean.dim() > 1:
        mean, var = mean.reshape(mean.shape[0], -1).mean(1), var.reshape(var.shape[0], -1).mean(1)
    y = (x - mean.view(shape)) / (var.view(shape) + eps).sqrt()
    y = y if weight is None else y * weight.view(shape)
    return (y if bias is None else y + bias.view(shape)), mean, var
""", "test_batch_norm_train_edge_shapes", "only"),
        ("forgets weight and bias", """
def batch_norm_train(x, weight=None, bias=None, eps=1e-5):
    dims = [0] + list(range(2, x.dim()))
    if x.numel() // x.shape[1] <= 1:
        raise ValueError("one value per channel")
    shape = (1, -1) + (1,) * (x.dim() - 2)
    mean, var = x.mean(dim=dims), x.var(dim=dims, unbiased=False)
    return (x - mean.view(shape)) / (var.view(shape) + eps).sqrt(), mean, var
""", "test_batch_norm_train_values"),
        ("reshapes to (C, -1) without moving the channels first (right only for a batch of one)", """
def batch_norm_train(x, weight=None, bias=None, eps=1e-5):
    if x.numel() // x.shape[1] <= 1:
        raise ValueError("Expected more than 1 value per channel when training")
    c = x.shape[1]
    rows = x.reshape(c, -1)
    mean, var = rows.mean(dim=1), rows.var(dim=1, unbiased=False)
    shape = (1, -1) + (1,) * (x.dim() - 2)
    y = (x - mean.view(shape)) / (var.view(shape) + eps).sqrt()
    if weight is not None:
        y = y * weight.view(shape)
    if bias is not None:
        y = y + bias.view(shape)
    return y, mean, var
""", "test_batch_norm_train_values"),
        ("swaps weight and bias", """
def batch_norm_train(x, weight=None, bias=None, eps=1e-5):
    if x.numel() // x.shape[1] <= 1:
        raise ValueError("Expected more than 1 value per channel when training")
    dims = [0] + list(range(2, x.dim()))
    shape = (1, -1) + (1,) * (x.dim() - 2)
    mean, var = x.mean(dim=dims), x.var(dim=dims, unbiased=False)
    y = (x - mean.view(shape)) / (var.view(shape) + eps).sqrt()
    if bias is not None:
        y = y * bias.view(shape)
    if weight is not None:
        y = y + weight.view(shape)
    return y, mean, var
""", "test_batch_norm_train_values"),
        ("returns zeros instead of raising for one value per channel", """
def batch_norm_train(x, weight=None, bias=None, eps=1e-5):
    dims = [0] + list(range(2, x.dim()))
    shape = (1, -1) + (1,) * (x.dim() - 2)
    mean, var = x.mean(dim=dims), x.var(dim=dims, unbiased=False)
    y = (x - mean.view(shape)) / (var.view(shape) + eps).sqrt()
    y = y if weight is None else y * weight.view(shape)
    return (y if bias is None else y + bias.view(shape)), mean, var
""", "test_batch_norm_train_errors", "only"),
        ("multiplies by weight without reshaping it (broadcasts over the last dimension)", """
def batch_norm_train(x, weight=None, bias=None, eps=1e-5):
    if x.numel() // x.shape[1] <= 1:
        raise ValueError("Expected more than 1 value per channel when training")
    dims = [0] + list(range(2, x.dim()))
    shape = (1, -1) + (1,) * (x.dim() - 2)
    mean, var = x.mean(dim=dims), x.var(dim=dims, unbiased=False)
    y = (x - mean.view(shape)) / torch.sqrt(var.view(shape) + eps)
    if weight is not None:
        y = y * weight
    if bias is not None:
        y = y + bias.view(shape)
    return y, mean, var
""", "test_batch_norm_train_values"),
        ("raises RuntimeError for one value per channel", """
def batch_norm_train(x, weight=None, bias=None, eps=1e-5):
    dims = [0] + list(range(2, x.dim()))
    if x.numel() // x.shape[1] <= 1:
        raise RuntimeError(f"Expected more than 1 value per channel when training, got input size {tuple(x.shape)}")
    shape = (1, -1) + (1,) * (x.dim() - 2)
    mean, var = x.mean(dim=dims), x.var(dim=dims, unbiased=False)
    y = (x - mean.view(shape)) / (var.view(shape) + eps).sqrt()
    y = y if weight is None else y * weight.view(shape)
    return (y if bias is None else y + bias.view(shape)), mean, var
""", "test_batch_norm_train_errors", "only"),
        ("takes Keras' default eps=1e-3", """
def batch_norm_train(x, weight=None, bias=None, eps=1e-3):
    dims = [0] + list(range(2, x.dim()))
    if x.numel() // x.shape[1] <= 1:
        raise ValueError("one value per channel")
    shape = (1, -1) + (1,) * (x.dim() - 2)
    mean, var = x.mean(dim=dims), x.var(dim=dims, unbiased=False)
    y = (x - mean.view(shape)) / (var.view(shape) + eps).sqrt()
    y = y if weight is None else y * weight.view(shape)
    return (y if bias is None else y + bias.view(shape)), mean, var
""", "test_batch_norm_train_defaults"),
    ],
    "batch_norm_backward": [
        ("differentiates with autograd", """
def batch_norm_backward(dy, x, weight, eps=1e-5):
    x = x.detach().requires_grad_()
    w = (torch.ones(x.shape[1], dtype=x.dtype) if weight is None else weight.detach().clone()).requires_grad_()
    b = torch.zeros(x.shape[1], dtype=x.dtype, requires_grad=True)
    dims = [0] + list(range(2, x.dim()))
    shape = (1, -1) + (1,) * (x.dim() - 2)
    y = (x - x.mean(dim=dims, keepdim=True)) / (x.var(dim=dims, unbiased=False, keepdim=True) + eps).sqrt()
    y = y * w.view(shape) + b.view(shape)
    return torch.autograd.grad(y, (x, w, b), dy)
""", ("test_batch_norm_backward_values", "test_batch_norm_backward_edge_shapes", "test_batch_norm_backward_defaults")),
        ("treats the mean and variance as constants", """
def batch_norm_backward(dy, x, weight, eps=1e-5):
    dims = [0] + list(range(2, x.dim()))
    shape = (1, -1) + (1,) * (x.dim() - 2)
    inv_std = 1 / (x.var(dim=dims, unbiased=False, keepdim=True) + eps).sqrt()
    x_hat = (x - x.mean(dim=dims, keepdim=True)) * inv_std
    dx_hat = dy if weight is None else dy * weight.view(shape)
    return dx_hat * inv_std, (dy * x_hat).sum(dim=dims), dy.sum(dim=dims)
""", "test_batch_norm_backward_values"),
        ("forgets the variance term", """
def batch_norm_backward(dy, x, weight, eps=1e-5):
    dims = [0] + list(range(2, x.dim()))
    shape = (1, -1) + (1,) * (x.dim() - 2)
    inv_std = 1 / (x.var(dim=dims, unbiased=False, keepdim=True) + eps).sqrt()
    x_hat = (x - x.mean(dim=dims, keepdim=True)) * inv_std
    dx_hat = dy if weight is None else dy * weight.view(shape)
    return (dx_hat - dx_hat.mean(dim=dims, keepdim=True)) * inv_std, (dy * x_hat).sum(dim=dims), dy.sum(dim=dims)
""", "test_batch_norm_backward_values"),
        ("swaps dweight and dbias", """
def batch_norm_backward(dy, x, weight, eps=1e-5):
    dims = [0] + list(range(2, x.dim()))
    shape = (1, -1) + (1,) * (x.dim() - 2)
    inv_std = 1 / (x.var(dim=dims, unbiased=False, keepdim=True) + eps).sqrt()
    x_hat = (x - x.mean(dim=dims, keepdim=True)) * inv_std
    dx_hat = dy if weight is None else dy * weight.view(shape)
    dx = inv_std * (dx_hat - dx_hat.mean(dim=dims, keepdim=True) - x_hat * (dx_hat * x_hat).mean(dim=dims, keepdim=True))
    return dx, dy.sum(dim=dims), (dy * x_hat).sum(dim=dims)
""", "test_batch_norm_backward_values"),
        ("uses the unbiased variance", """
def batch_norm_backward(dy, x, weight, eps=1e-5):
    dims = [0] + list(range(2, x.dim()))
    shape = (1, -1) + (1,) * (x.dim() - 2)
    inv_std = 1 / (x.var(dim=dims, unbiased=True, keepdim=True) + eps).sqrt()
    x_hat = (x - x.mean(dim=dims, keepdim=True)) * inv_std
    dx_hat = dy if weight is None else dy * weight.view(shape)
    dx = inv_std * (dx_hat - dx_hat.mean(dim=dims, keepdim=True) - x_hat * (dx_hat * x_hat).mean(dim=dims, keepdim=True))
    return dx, (dy * x_hat).sum(dim=dims), dy.sum(dim=dims)
""", "test_batch_norm_backward_values"),
        ("sums dweight and dbias over the batch only", """
def batch_norm_backward(dy, x, weight, eps=1e-5):
    dims = [0] + list(range(2, x.dim()))
    shape = (1, -1) + (1,) * (x.dim() - 2)
    inv_std = 1 / (x.var(dim=dims, unbiased=False, keepdim=True) + eps).sqrt()
    x_hat = (x - x.mean(dim=dims, keepdim=True)) * inv_std
    dx_hat = dy if weight is None else dy * weight.view(shape)
    dx = inv_std * (dx_hat - dx_hat.mean(dim=dims, keepdim=True) - x_hat * (dx_hat * x_hat).mean(dim=dims, keepdim=True))
    return dx, (dy * x_hat).sum(dim=0), dy.sum(dim=0)
""", "test_batch_norm_backward_values"),
        ("leaves the weight out of dx (right only for weight None or ones)", """
def batch_norm_backward(dy, x, weight, eps=1e-5):
    dims = [0] + list(range(2, x.dim()))
    mean = x.mean(dim=dims, keepdim=True)
    inv_std = 1.0 / torch.sqrt((x - mean).pow(2).mean(dim=dims, keepdim=True) + eps)
    x_hat = (x - mean) * inv_std
    dx = inv_std * (dy - dy.mean(dim=dims, keepdim=True) - x_hat * (dy * x_hat).mean(dim=dims, keepdim=True))
    return dx, (dy * x_hat).sum(dim=dims), dy.sum(dim=dims)
""", "test_batch_norm_backward_values"),
        ("fails for weight=None (uses weight without checking)", """
def batch_norm_backward(dy, x, weight, eps=1e-5):
    dims = [0] + list(range(2, x.dim()))
    shape = (1, -1) + (1,) * (x.dim() - 2)
    inv_std = 1 / (x.var(dim=dims, unbiased=False, keepdim=True) + eps).sqrt()
    x_hat = (x - x.mean(dim=dims, keepdim=True)) * inv_std
    dx_hat = dy * weight.view(shape)
    dx = inv_std * (dx_hat - dx_hat.mean(dim=dims, keepdim=True) - x_hat * (dx_hat * x_hat).mean(dim=dims, keepdim=True))
    return dx, (dy * x_hat).sum(dim=dims), dy.sum(dim=dims)
""", "test_batch_norm_backward_defaults", "only"),
        ("takes Keras' default eps=1e-3", """
def batch_norm_backward(dy, x, weight, eps=1e-3):
    dims = [0] + list(range(2, x.dim()))
    shape = (1, -1) + (1,) * (x.dim() - 2)
    inv_std = 1 / (x.var(dim=dims, unbiased=False, keepdim=True) + eps).sqrt()
    x_hat = (x - x.mean(dim=dims, keepdim=True)) * inv_std
    dx_hat = dy if weight is None else dy * weight.view(shape)
    dx = inv_std * (dx_hat - dx_hat.mean(dim=dims, keepdim=True) - x_hat * (dx_hat * x_hat).mean(dim=dims, keepdim=True))
    return dx, (dy * x_hat).sum(dim=dims), dy.sum(dim=dims)
""", "test_batch_norm_backward_defaults"),
    ],
    "bn_parameter_counts": [
        ("counts only BatchNorm2d", """
def bn_parameter_counts(model):
    layers = [m for m in model.modules() if type(m) is nn.BatchNorm2d]
    return {"trainable": sum(p.numel() for m in layers for p in m.parameters()),
            "running": sum(m.running_mean.numel() * 2 for m in layers if m.track_running_stats)}
""", "test_bn_parameter_counts_layers"),
        ("counts num_batches_tracked as a running value", """
def bn_parameter_counts(model):
    layers = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    return {"trainable": sum(p.numel() for m in layers for p in m.parameters()),
            "running": sum(b.numel() for m in layers for b in m.buffers())}
""", "test_bn_parameter_counts_flags"),
        ("counts InstanceNorm layers too", """
def bn_parameter_counts(model):
    layers = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._NormBase)]
    return {"trainable": sum(p.numel() for m in layers for p in m.parameters()),
            "running": sum(m.running_mean.numel() * 2 for m in layers if m.track_running_stats)}
""", "test_bn_parameter_counts_layers", "only"),
        ("looks at the direct children only", """
def bn_parameter_counts(model):
    layers = [m for m in model.children() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    return {"trainable": sum(p.numel() for m in layers for p in m.parameters()),
            "running": sum(m.running_mean.numel() * 2 for m in layers if m.track_running_stats)}
""", "test_bn_parameter_counts_layers"),
        ("assumes 2 * num_features of each, whatever the flags", """
def bn_parameter_counts(model):
    total = sum(2 * m.num_features for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm))
    return {"trainable": total, "running": total}
""", "test_bn_parameter_counts_flags", "only"),
        ("counts a shared layer once per use", """
def bn_parameter_counts(model):
    layers = [m for _, m in model.named_modules(remove_duplicate=False) if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    return {"trainable": sum(p.numel() for m in layers for p in m.parameters()),
            "running": sum(m.running_mean.numel() * 2 for m in layers if m.track_running_stats)}
""", "test_bn_parameter_counts_layers", "only"),
    ],
}

CORRECT = {
    "bn_reduction_dims": [
        ("a list comprehension", """
def bn_reduction_dims(ndim):
    if not ndim >= 2:
        raise ValueError("need at least (N, C)")
    return tuple(d for d in range(ndim) if d != 1)
"""),
        ("a lookup table with a fallback", """
def bn_reduction_dims(ndim):
    table = {2: (0,), 3: (0, 2), 4: (0, 2, 3), 5: (0, 2, 3, 4)}
    if ndim in table:
        return table[ndim]
    if ndim < 2:
        raise ValueError(f"ndim={ndim}")
    return (0, *range(2, ndim))
"""),
    ],
    "batch_norm_train": [
        ("moves the channels first and uses E[x^2] - E[x]^2", """
def batch_norm_train(x, weight=None, bias=None, eps=1e-5):
    c = x.shape[1]
    flat = x.transpose(0, 1).reshape(c, -1)
    if flat.shape[1] < 2:
        raise ValueError(f"Expected more than 1 value per channel when training, got input size {list(x.shape)}")
    mean = flat.mean(dim=1)
    var = (flat * flat).mean(dim=1) - mean * mean
    y = (flat - mean[:, None]) * torch.rsqrt(var[:, None] + eps)
    if weight is not None:
        y = y * weight[:, None]
    if bias is not None:
        y = y + bias[:, None]
    y = y.reshape(c, x.shape[0], *x.shape[2:]).transpose(0, 1)
    return y, mean, var
"""),
        ("a loop over the channels with torch.var_mean", """
def batch_norm_train(x, weight=None, bias=None, eps=1e-5):
    outputs, means, variances = [], [], []
    for c in range(x.shape[1]):
        values = x[:, c]
        if values.numel() == 1:
            raise ValueError("Expected more than 1 value per channel when training")
        var, mean = torch.var_mean(values, correction=0)
        out = (values - mean) / torch.sqrt(var + eps)
        if weight is not None:
            out = out * weight[c]
        if bias is not None:
            out = out + bias[c]
        outputs.append(out)
        means.append(mean)
        variances.append(var)
    return torch.stack(outputs, dim=1), torch.stack(means), torch.stack(variances)
"""),
    ],
    "batch_norm_backward": [
        ("the N-count form of the formula on channel-first rows", """
def batch_norm_backward(dy, x, weight, eps=1e-5):
    c = x.shape[1]
    xs = x.transpose(0, 1).reshape(c, -1)
    gs = dy.transpose(0, 1).reshape(c, -1)
    n = xs.shape[1]
    mu = xs.mean(1, keepdim=True)
    invstd = ((xs - mu) ** 2).mean(1, keepdim=True).add(eps).rsqrt()
    xhat = (xs - mu) * invstd
    gamma = torch.ones(c, 1, dtype=x.dtype) if weight is None else weight.reshape(c, 1)
    dbias = gs.sum(1)
    dweight = (gs * xhat).sum(1)
    dx = gamma * invstd / n * (n * gs - dbias[:, None] - xhat * dweight[:, None])
    dx = dx.reshape(c, x.shape[0], *x.shape[2:]).transpose(0, 1)
    return dx, dweight, dbias
"""),
        ("chain rule through the mean and the variance, step by step", """
def batch_norm_backward(dy, x, weight, eps=1e-5):
    dims = tuple([0] + list(range(2, x.dim())))
    shape = [1, x.shape[1]] + [1] * (x.dim() - 2)
    n = x.numel() // x.shape[1]
    mu = x.mean(dims, keepdim=True)
    xc = x - mu
    var = (xc ** 2).sum(dims, keepdim=True) / n
    std = (var + eps) ** 0.5
    xhat = xc / std
    g = torch.ones(shape, dtype=x.dtype) if weight is None else weight.reshape(shape)
    dxhat = dy * g
    dvar = (dxhat * xc * -0.5 * std ** -3).sum(dims, keepdim=True)
    dmu = (-dxhat / std).sum(dims, keepdim=True) + dvar * (-2 * xc).sum(dims, keepdim=True) / n
    dx = dxhat / std + dvar * 2 * xc / n + dmu / n
    return dx, (dy * xhat).sum(dims), dy.sum(dims)
"""),
    ],
    "bn_parameter_counts": [
        ("counts parameters and the two named buffers of each layer", """
def bn_parameter_counts(model):
    from torch.nn.modules.batchnorm import _BatchNorm
    trainable = running = 0
    for layer in set(m for m in model.modules() if isinstance(m, _BatchNorm)):
        trainable += sum(p.numel() for p in layer.parameters(recurse=False))
        for name in ("running_mean", "running_var"):
            buffer = getattr(layer, name)
            running += 0 if buffer is None else buffer.numel()
    return {"trainable": trainable, "running": running}
"""),
        ("walks the tree by hand, remembering what it has seen", """
def bn_parameter_counts(model):
    seen, stack, total = set(), [model], {"trainable": 0, "running": 0}
    while stack:
        m = stack.pop()
        if id(m) in seen:
            continue
        seen.add(id(m))
        stack.extend(m.children())
        if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.SyncBatchNorm)):
            total["trainable"] += 2 * m.num_features if m.affine else 0
            total["running"] += 2 * m.num_features if m.track_running_stats else 0
    return total
"""),
    ],
}
