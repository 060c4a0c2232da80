"""Answers for 01_conv_batch_independence that the grader must score correctly (see 00's file for the format)."""

WRONG = {
    "conv2d": [
        ("calls torch's own convolution", """
def conv2d(x, weight, bias=None, stride=1, padding=0):
    return F.conv2d(x, weight, bias, stride=stride, padding=padding)
""", ("test_conv2d_values", "test_conv2d_stride_padding", "test_conv2d_edge_cases")),
        ("flips the kernel (a true convolution)", """
def conv2d(x, weight, bias=None, stride=1, padding=0):
    weight = weight.flip(2, 3)
    kh, kw = weight.shape[2:]
    x = F.pad(x, (padding,) * 4)
    out = torch.einsum("ncijab,ocab->noij", x.unfold(2, kh, stride).unfold(3, kw, stride), weight)
    return out if bias is None else out + bias.view(1, -1, 1, 1)
""", "test_conv2d_values"),
        ("ignores the stride", """
def conv2d(x, weight, bias=None, stride=1, padding=0):
    kh, kw = weight.shape[2:]
    x = F.pad(x, (padding,) * 4)
    out = torch.einsum("ncijab,ocab->noij", x.unfold(2, kh, 1).unfold(3, kw, 1), weight)
    return out if bias is None else out + bias.view(1, -1, 1, 1)
""", "test_conv2d_stride_padding"),
        ("pads only the top and left", """
def conv2d(x, weight, bias=None, stride=1, padding=0):
    kh, kw = weight.shape[2:]
    x = F.pad(x, (padding, 0, padding, 0))
    out = torch.einsum("ncijab,ocab->noij", x.unfold(2, kh, stride).unfold(3, kw, stride), weight)
    return out if bias is None else out + bias.view(1, -1, 1, 1)
""", "test_conv2d_stride_padding"),
        ("forgets the bias", """
def conv2d(x, weight, bias=None, stride=1, padding=0):
    kh, kw = weight.shape[2:]
    x = F.pad(x, (padding,) * 4)
    return torch.einsum("ncijab,ocab->noij", x.unfold(2, kh, stride).unfold(3, kw, stride), weight)
""", "test_conv2d_values"),
        ("uses the first image for the whole batch", """
def conv2d(x, weight, bias=None, stride=1, padding=0):
    kh, kw = weight.shape[2:]
    x = F.pad(x, (padding,) * 4)
    x = x[:1].expand_as(x)
    out = torch.einsum("ncijab,ocab->noij", x.unfold(2, kh, stride).unfold(3, kw, stride), weight)
    return out if bias is None else out + bias.view(1, -1, 1, 1)
""", "test_conv2d_values"),
        ("makes as many output channels as input channels (right only when C_in == C_out)", """
def conv2d(x, weight, bias=None, stride=1, padding=0):
    kh, kw = weight.shape[2:]
    x = F.pad(x, (padding,) * 4)
    patches = x.unfold(2, kh, stride).unfold(3, kw, stride)
    out = torch.stack([torch.einsum("ncijab,cab->nij", patches, weight[o % weight.shape[0]])
                       for o in range(x.shape[1])], dim=1)
    return out if bias is None else out + bias[:out.shape[1]].view(1, -1, 1, 1)
""", "test_conv2d_values"),
        ("uses the kernel height for both axes (right only for square kernels)", """
def conv2d(x, weight, bias=None, stride=1, padding=0):
    k = weight.shape[2]
    x = F.pad(x, (padding,) * 4)
    patches = x.unfold(2, k, stride).unfold(3, k, stride)
    out = torch.einsum("ncijab,ocab->noij", patches, weight)
    return out if bias is None else out + bias.view(1, -1, 1, 1)
""", "test_conv2d_values"),
        ("computes the output width from the input height (right only for square inputs)", """
def conv2d(x, weight, bias=None, stride=1, padding=0):
    n, c, h, w = x.shape
    o, _, kh, kw = weight.shape
    x = F.pad(x, (padding,) * 4)
    out_h = (h + 2 * padding - kh) // stride + 1
    out_w = (h + 2 * padding - kw) // stride + 1
    out = x.new_zeros(n, o, out_h, out_w)
    for i in range(out_h):
        for j in range(out_w):
            patch = x[:, :, i * stride:i * stride + kh, j * stride:j * stride + kw]
            if patch.shape[3] == kw:
                out[:, :, i, j] = torch.einsum("ncab,ocab->no", patch, weight)
    return out if bias is None else out + bias.view(1, -1, 1, 1)
""", "test_conv2d_values"),
        ("adds the bias along the last dimension (runs only when W_out == C_out or one of them is 1)", """
def conv2d(x, weight, bias=None, stride=1, padding=0):
    kernel_h, kernel_w = weight.shape[2:]
    x = F.pad(x, (padding, padding, padding, padding))
    out = torch.einsum("ncijab,ocab->noij", x.unfold(2, kernel_h, stride).unfold(3, kernel_w, stride), weight)
    return out if bias is None else out + bias
""", "test_conv2d_values"),
        ("applies the stride to the height only (right only for stride 1)", """
def conv2d(x, weight, bias=None, stride=1, padding=0):
    kernel_h, kernel_w = weight.shape[2:]
    x = F.pad(x, (padding, padding, padding, padding))
    out = torch.einsum("ncijab,ocab->noij", x.unfold(2, kernel_h, stride).unfold(3, kernel_w, 1), weight)
    return out if bias is None else out + bias.view(1, -1, 1, 1)
""", "test_conv2d_stride_padding"),
        ("pads the height only (right only for padding 0)", """
def conv2d(x, weight, bias=None, stride=1, padding=0):
    kernel_h, kernel_w = weight.shape[2:]
    x = F.pad(x, (0, 0, padding, padding))
    out = torch.einsum("ncijab,ocab->noij", x.unfold(2, kernel_h, stride).unfold(3, kernel_w, stride), weight)
    return out if bias is None else out + bias.view(1, -1, 1, 1)
""", "test_conv2d_stride_padding"),
    ],
    "batch_jacobian_norms": [
        ("returns the transposed matrix", """
def batch_jacobian_norms(f, x):
    n = x.shape[0]
    return torch.autograd.functional.jacobian(f, x).reshape(n, -1, n, x[0].numel()).norm(dim=(1, 3)).T
""", "test_batch_jacobian_norms_values"),
        ("returns squared norms", """
def batch_jacobian_norms(f, x):
    n = x.shape[0]
    return torch.autograd.functional.jacobian(f, x).reshape(n, -1, n, x[0].numel()).pow(2).sum(dim=(1, 3))
""", "test_batch_jacobian_norms_values"),
        ("uses the largest entry instead of the Frobenius norm", """
def batch_jacobian_norms(f, x):
    n = x.shape[0]
    return torch.autograd.functional.jacobian(f, x).reshape(n, -1, n, x[0].numel()).abs().amax(dim=(1, 3))
""", "test_batch_jacobian_norms_values"),
        ("differentiates the summed output (a gradient, not a Jacobian)", """
def batch_jacobian_norms(f, x):
    x = x.detach().requires_grad_()
    (grad,) = torch.autograd.grad(f(x).sum(), x)
    per_sample = grad.reshape(x.shape[0], -1).norm(dim=1)
    return per_sample.unsqueeze(0).expand(x.shape[0], -1).clone()
""", "test_batch_jacobian_norms_values"),
        ("assumes the output has the input's shape", """
def batch_jacobian_norms(f, x):
    n = x.shape[0]
    return torch.autograd.functional.jacobian(f, x).reshape(n, x[0].numel(), n, -1).norm(dim=(1, 3))
""", "test_batch_jacobian_norms_edge_shapes", "only"),
        ("keeps only the diagonal", """
def batch_jacobian_norms(f, x):
    n = x.shape[0]
    norms = torch.autograd.functional.jacobian(f, x).reshape(n, -1, n, x[0].numel()).norm(dim=(1, 3))
    return torch.diag(torch.diagonal(norms))
""", "test_batch_jacobian_norms_values"),
    ],
    "diagnose_layer": [
        ("calls the layer itself, so BatchNorm's running statistics change", """
def diagnose_layer(layer, x):
    with torch.no_grad():
        stochastic = not torch.allclose(layer(x), layer(x))
        torch.manual_seed(0)
        a = layer(x)
        torch.manual_seed(0)
        changed = x.clone()
        changed[1:] = changed[1:] * 3 + 1
        b = layer(changed)
    return {"crosstalk": not torch.allclose(a[0], b[0], atol=1e-6), "stochastic": stochastic}
""", "test_diagnose_layer_leaves_layer"),
        ("switches the copy to eval mode, so train-mode behaviour is never seen", """
def diagnose_layer(layer, x):
    probe = copy.deepcopy(layer).eval().double()
    x = x.double()
    if x.shape[0] == 1:
        x = torch.cat([x, x + 1])
    changed = x.clone()
    changed[1:] = changed[1:] * 3 + 1
    with torch.no_grad():
        stochastic = not torch.allclose(probe(x), probe(x))
        crosstalk = not torch.allclose(probe(x)[0], probe(changed)[0])
    return {"crosstalk": crosstalk, "stochastic": stochastic}
""", "test_diagnose_layer_values"),
        ("does not fix the seed, so Dropout looks like crosstalk", """
def diagnose_layer(layer, x):
    probe = copy.deepcopy(layer).double()
    x = x.double()
    if x.shape[0] == 1:
        x = torch.cat([x, x + 1])
    changed = x.clone()
    changed[1:] = changed[1:] * 3 + 1
    with torch.no_grad(), torch.random.fork_rng():
        stochastic = not torch.allclose(probe(x), probe(x))
        crosstalk = not torch.allclose(probe(x)[0], probe(changed)[0])
    return {"crosstalk": crosstalk, "stochastic": stochastic}
""", "test_diagnose_layer_values"),
        ("never adds a second sample, so a batch of one shows no crosstalk", """
def diagnose_layer(layer, x):
    probe = copy.deepcopy(layer).double()
    x = x.double()
    changed = x.clone()
    changed[1:] = changed[1:] * 3 + 1
    with torch.no_grad(), torch.random.fork_rng():
        stochastic = not torch.allclose(probe(x), probe(x))
        torch.manual_seed(0)
        a = probe(x)
        torch.manual_seed(0)
        b = probe(changed)
    return {"crosstalk": not torch.allclose(a[0], b[0]), "stochastic": stochastic}
""", "test_diagnose_layer_batch_of_one", "only"),
        ("changes sample 0 itself and calls that crosstalk", """
def diagnose_layer(layer, x):
    probe = copy.deepcopy(layer).double()
    x = x.double()
    changed = x.clone()
    changed[0] = changed[0] * 3 + 1
    with torch.no_grad(), torch.random.fork_rng():
        stochastic = not torch.allclose(probe(x), probe(x))
        torch.manual_seed(0)
        a = probe(x)
        torch.manual_seed(0)
        b = probe(changed)
    return {"crosstalk": not torch.allclose(a[0], b[0]), "stochastic": stochastic}
""", "test_diagnose_layer_values"),
        ("returns tensors instead of bools", """
def diagnose_layer(layer, x):
    probe = copy.deepcopy(layer).double()
    x = x.double()
    if x.shape[0] == 1:
        x = torch.cat([x, x + 1])
    changed = x.clone()
    changed[1:] = changed[1:] * 3 + 1
    with torch.no_grad(), torch.random.fork_rng():
        stochastic = (probe(x) - probe(x)).abs().max() > 1e-9
        torch.manual_seed(0)
        a = probe(x)
        torch.manual_seed(0)
        b = probe(changed)
    return {"crosstalk": (a[0] - b[0]).abs().max() > 1e-9, "stochastic": stochastic}
""", "test_diagnose_layer_values"),
        ("runs the layer itself instead of a copy, so running statistics change (the answers are right)", """
def diagnose_layer(layer, x):
    if x.shape[0] == 1:
        x = torch.cat([x, x.flip(-1) + 1.0])
    others = x.clone()
    others[1:] = others[1:] * 3.0 + 1.0
    with torch.no_grad(), torch.random.fork_rng():
        first, second = layer(x), layer(x)
        torch.manual_seed(0)
        alone = layer(x)
        torch.manual_seed(0)
        with_others_changed = layer(others)
    return {"crosstalk": not torch.allclose(alone[0], with_others_changed[0], rtol=1e-6, atol=1e-6),
            "stochastic": not torch.allclose(first, second, rtol=1e-6, atol=1e-6)}
""", "test_diagnose_layer_leaves_layer"),
    ],
}

CORRECT = {
    "conv2d": [
        ("loops over output positions with tensordot", """
def conv2d(x, weight, bias=None, stride=1, padding=0):
    n, c, h, w = x.shape
    o, _, kh, kw = weight.shape
    padded = torch.zeros(n, c, h + 2 * padding, w + 2 * padding, dtype=x.dtype)
    padded[:, :, padding:padding + h, padding:padding + w] = x
    out_h, out_w = (h + 2 * padding - kh) // stride + 1, (w + 2 * padding - kw) // stride + 1
    out = torch.empty(n, o, out_h, out_w, dtype=x.dtype)
    for i in range(out_h):
        for j in range(out_w):
            window = padded[:, :, i * stride:i * stride + kh, j * stride:j * stride + kw]
            out[:, :, i, j] = torch.tensordot(window, weight, dims=([1, 2, 3], [1, 2, 3]))
    if bias is not None:
        out += bias[None, :, None, None]
    return out
"""),
        ("shifts and adds, one kernel offset at a time", """
def conv2d(x, weight, bias=None, stride=1, padding=0):
    o, c, kh, kw = weight.shape
    x = F.pad(x, [padding] * 4)
    out_h = (x.shape[2] - kh) // stride + 1
    out_w = (x.shape[3] - kw) // stride + 1
    out = 0
    for a in range(kh):
        for b in range(kw):
            window = x[:, :, a:a + stride * (out_h - 1) + 1:stride, b:b + stride * (out_w - 1) + 1:stride]
            out = out + torch.einsum("nchw,oc->nohw", window, weight[:, :, a, b])
    return out + (0 if bias is None else bias.reshape(1, o, 1, 1))
"""),
    ],
    "batch_jacobian_norms": [
        ("blocks of the full Jacobian and torch.linalg.matrix_norm", """
def batch_jacobian_norms(f, x):
    n = x.shape[0]
    jac = torch.autograd.functional.jacobian(f, x)
    blocks = jac.reshape(n, jac[0].numel() // x.numel(), n, -1).permute(0, 2, 1, 3)
    return torch.linalg.matrix_norm(blocks)
"""),
        ("one backward pass per output value", """
def batch_jacobian_norms(f, x):
    x = x.detach().requires_grad_()
    y = f(x)
    n = x.shape[0]
    squares = torch.zeros(n, n, dtype=x.dtype)
    flat = y.reshape(n, -1)
    for i in range(n):
        for k in range(flat.shape[1]):
            (grad,) = torch.autograd.grad(flat[i, k], x, retain_graph=True, allow_unused=True)
            if grad is not None:
                squares[i] += grad.reshape(n, -1).pow(2).sum(dim=1)
    return squares.sqrt()
"""),
    ],
    "diagnose_layer": [
        ("saves and restores the state instead of copying, and uses the Jacobian for crosstalk", """
def diagnose_layer(layer, x):
    saved = {k: v.clone() for k, v in layer.state_dict().items()}
    rng = torch.get_rng_state()
    x = x.double()
    if x.shape[0] == 1:
        x = torch.cat([x, -x + 0.5])
    layer.double()
    try:
        with torch.no_grad():
            stochastic = not torch.allclose(layer(x), layer(x), rtol=1e-9, atol=1e-9)

        def seeded(t):
            torch.manual_seed(123)
            return layer(t)

        norms = batch_jacobian_norms(seeded, x)
        crosstalk = bool((norms - torch.diag(torch.diagonal(norms))).abs().max() > 1e-7)
    finally:
        layer.float()
        layer.load_state_dict(saved)
        torch.set_rng_state(rng)
    return {"crosstalk": crosstalk, "stochastic": stochastic}
"""),
        ("compares every sample with a fresh batch around it", """
def diagnose_layer(layer, x):
    probe = copy.deepcopy(layer).to(torch.float64)
    x = x.to(torch.float64)
    extra = torch.linspace(-2, 2, x[0].numel(), dtype=torch.float64).reshape(1, *x.shape[1:])
    batch = torch.cat([x, extra])
    with torch.no_grad(), torch.random.fork_rng():
        torch.manual_seed(7)
        together = probe(batch)[:1]
        torch.manual_seed(7)
        other = probe(torch.cat([batch[:1], batch[1:] * -2.0 + 3.0]))[:1]
        again_a, again_b = probe(batch), probe(batch)
    return {"crosstalk": bool((together - other).abs().max() > 1e-8),
            "stochastic": bool((again_a - again_b).abs().max() > 1e-8)}
"""),
    ],
}

ATTACKS = {
    "calls F.conv2d through an alias taken before the tests": ("conv2d", """
_torch_conv2d = torch.nn.functional.conv2d

def conv2d(x, weight, bias=None, stride=1, padding=0):
    return _torch_conv2d(x, weight, bias, stride=stride, padding=padding)
"""),
    "calls the convolution through torch.ops": ("conv2d", """
def conv2d(x, weight, bias=None, stride=1, padding=0):
    return torch.ops.aten.convolution(x, weight, bias, [stride] * 2, [padding] * 2, [1, 1], False, [0, 0], 1)
"""),
    "hides the call in an nn.Conv2d with copied weights": ("conv2d", """
def conv2d(x, weight, bias=None, stride=1, padding=0):
    layer = nn.Conv2d(weight.shape[1], weight.shape[0], weight.shape[2:], stride=stride, padding=padding,
                      bias=bias is not None).to(x.dtype)
    with torch.no_grad():
        layer.weight.copy_(weight)
        if bias is not None:
            layer.bias.copy_(bias)
        return layer(x)
"""),
}

# Issue 12: answers that call the forbidden routine where the from-scratch rule does not look, or that make
# the reference computed after them agree with a wrong result (tests/test_attack_families.py).
ISSUE_ATTACKS = {
    "changes the test's own inputs": {
        "zeroes x, weight and bias in place and returns zeros": ("conv2d", """
def conv2d(x, weight, bias=None, stride=1, padding=0):
    n, h, w = x.shape[0], (x.shape[2] + 2 * padding - weight.shape[2]) // stride + 1, (x.shape[3] + 2 * padding - weight.shape[3]) // stride + 1
    with torch.no_grad():
        for tensor in (x, weight, bias):
            if tensor is not None:
                tensor.zero_()
    return torch.zeros(n, weight.shape[0], h, w, dtype=x.dtype)
"""),
    },
    "reaches the routine through another overload": {
        "conv2d.padding through torch.ops, out of the source reading's sight": ("conv2d", """
_aten = getattr(vars(torch)["o" + "ps"], "at" + "en")
_padded = getattr(getattr(_aten, "con" + "v2d"), "pad" + "ding")

def conv2d(x, weight, bias=None, stride=1, padding=0):
    return _padded(F.pad(x, (padding,) * 4), weight, bias, [stride, stride], "valid")
"""),
    },
    "calls the forbidden routine from another thread": {
        "F.conv2d in a threading.Thread": ("conv2d", """
import threading

def conv2d(x, weight, bias=None, stride=1, padding=0):
    result = []
    worker = threading.Thread(target=lambda: result.append(F.conv2d(x, weight, bias, stride=stride, padding=padding)))
    worker.start()
    worker.join()
    return result[0]
"""),
        "F.conv2d in a ThreadPoolExecutor": ("conv2d", """
from concurrent.futures import ThreadPoolExecutor

def conv2d(x, weight, bias=None, stride=1, padding=0):
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(torch.nn.functional.conv2d, x, weight, bias, stride, padding).result()
"""),
        "F.conv2d in a worker thread started before the tests": ("conv2d", """
import queue
import threading

_jobs = queue.Queue()

def _serve():
    while True:
        args, reply = _jobs.get()
        reply.put(F.conv2d(*args))

threading.Thread(target=_serve, daemon=True).start()

def conv2d(x, weight, bias=None, stride=1, padding=0):
    reply = queue.Queue()
    _jobs.put(((x, weight, bias, stride, padding), reply))
    return reply.get()
"""),
    },
    "breaks the checks' own state": {
        "empties the table of forbidden operators": ("conv2d", """
from batchcourse import checks
checks.ROUTINES.update({name: frozenset() for name in list(checks.ROUTINES)})

def conv2d(x, weight, bias=None, stride=1, padding=0):
    return F.conv2d(x, weight, bias, stride=stride, padding=padding)
"""),
        "patches F.conv2d for the one reference call after it": ("conv2d", """
def conv2d(x, weight, bias=None, stride=1, padding=0):
    kh, kw = weight.shape[2:]
    patches = F.pad(x, (padding,) * 4).unfold(2, kh, stride).unfold(3, kw, stride)
    out = torch.einsum("ncijab,ocab->noij", patches, weight.flip(2, 3))
    if bias is not None:
        out = out + bias.view(1, -1, 1, 1)
    functional = __import__("torch.nn.functional", fromlist=["conv2d"])
    real = functional.conv2d

    def once(*args, **kwargs):
        setattr(functional, "conv2d", real)
        return out.clone()
    setattr(functional, "conv2d", once)
    return out
"""),
    },
}
