"""Answers for 04_running_stats_and_eval that the grader must score correctly (see 00's file for the format).

Wrong and correct answers of different functions are graded together in one submission (round k holds entry k of
every function), so each entry defines just its own function; a correct BatchNorm2d may call the other graded
functions only where entry k of those is written from scratch too.
"""

from batchcourse.grading import edited


# A from-scratch BatchNorm2d written plainly (also a correct alternative below); most wrong BatchNorm2d answers are
# this class with one mistake edited in, so that each entry shows exactly what is wrong.
PLAIN_BATCHNORM2D = """
class BatchNorm2d(nn.Module):
    def __init__(self, num_features, eps=1e-5, momentum=0.1, affine=True, track_running_stats=True):
        super().__init__()
        self.num_features, self.eps, self.momentum = num_features, eps, momentum
        self.affine, self.track_running_stats = affine, track_running_stats
        self.weight = nn.Parameter(torch.ones(num_features)) if affine else None
        self.bias = nn.Parameter(torch.zeros(num_features)) if affine else None
        if track_running_stats:
            self.register_buffer("running_mean", torch.zeros(num_features))
            self.register_buffer("running_var", torch.ones(num_features))
            self.register_buffer("num_batches_tracked", torch.tensor(0))
        else:
            self.running_mean = self.running_var = self.num_batches_tracked = None

    def forward(self, x):
        if x.dim() != 4:
            raise ValueError("expected 4D input")
        if self.training or not self.track_running_stats:
            n = x.numel() // x.shape[1]
            if n < 2:
                raise ValueError("Expected more than 1 value per channel when training")
            mean, var = x.mean(dim=(0, 2, 3)), x.var(dim=(0, 2, 3), unbiased=False)
            if self.training and self.track_running_stats:
                with torch.no_grad():
                    self.num_batches_tracked += 1
                    a = 1.0 / self.num_batches_tracked.item() if self.momentum is None else self.momentum
                    self.running_mean.lerp_(mean, a)
                    self.running_var.lerp_(var * n / (n - 1), a)
        else:
            mean, var = self.running_mean, self.running_var
        y = (x - mean[None, :, None, None]) / torch.sqrt(var[None, :, None, None] + self.eps)
        if self.affine:
            y = y * self.weight[None, :, None, None] + self.bias[None, :, None, None]
        return y
"""


# Plain correct answers of the other functions; the wrong answers added in the audit of coinciding inputs are these
# with one mistake edited in (tests/cases/README.md says which inputs each one coincides on).
PLAIN_UPDATE = """
def update_running_stats(running_mean, running_var, num_batches_tracked, x, momentum=0.1):
    dims = [0] + list(range(2, x.dim()))
    n = num_batches_tracked + 1
    a = 1.0 / n.item() if momentum is None else momentum
    mean = (1 - a) * running_mean + a * x.mean(dim=dims)
    var = (1 - a) * running_var + a * x.var(dim=dims)
    return mean, var, n
"""

PLAIN_EVAL = """
def batch_norm_eval(x, running_mean, running_var, weight=None, bias=None, eps=1e-5):
    shape = [1, -1] + [1] * (x.dim() - 2)
    y = (x - running_mean.reshape(shape)) / torch.sqrt(running_var.reshape(shape) + eps)
    if weight is not None:
        y = y * weight.reshape(shape)
    if bias is not None:
        y = y + bias.reshape(shape)
    return y
"""

PLAIN_EVALUATE = """
def evaluate(model, loader):
    modes = {m: m.training for m in model.modules()}
    model.eval()
    correct = total = 0
    with torch.no_grad():
        for images, labels in loader:
            correct += (model(images).argmax(dim=1) == labels).sum().item()
            total += len(labels)
    for m, training in modes.items():
        m.training = training
    return correct / total
"""

PLAIN_RECALIBRATE = """
def recalibrate_bn(model, loader, num_batches=None):
    layers = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    momenta = [layer.momentum for layer in layers]
    modes = {m: m.training for m in model.modules()}
    for layer in layers:
        layer.reset_running_stats()
        layer.momentum = None
    model.train()
    with torch.no_grad():
        for index, (images, _) in enumerate(loader):
            if num_batches is not None and index >= num_batches:
                break
            model(images)
    for layer, momentum in zip(layers, momenta):
        layer.momentum = momentum
    for m, training in modes.items():
        m.training = training
    return model
"""

PLAIN_FOLD = """
def fold_batchnorm(conv, bn):
    fused = copy.deepcopy(conv)
    with torch.no_grad():
        scale = 1 / torch.sqrt(bn.running_var + bn.eps)
        shift = -bn.running_mean * scale
        if bn.weight is not None:
            scale = scale * bn.weight
            shift = shift * bn.weight + bn.bias
        conv_bias = conv.bias if conv.bias is not None else torch.zeros_like(bn.running_mean)
        fused.weight.copy_(conv.weight * scale.reshape(-1, 1, 1, 1))
        fused.bias = nn.Parameter(conv_bias * scale + shift)
    return fused
"""


WRONG = {
    "update_running_stats": [
        ("stores the biased batch variance in running_var", """
def update_running_stats(running_mean, running_var, num_batches_tracked, x, momentum=0.1):
    dims = [0] + list(range(2, x.dim()))
    n = num_batches_tracked + 1
    a = 1.0 / n.item() if momentum is None else momentum
    mean = (1 - a) * running_mean + a * x.mean(dim=dims)
    var = (1 - a) * running_var + a * x.var(dim=dims, unbiased=False)
    return mean, var, n
""", "test_update_running_stats_values"),
        ("weighs the old value with momentum (the Keras way)", """
def update_running_stats(running_mean, running_var, num_batches_tracked, x, momentum=0.1):
    dims = [0] + list(range(2, x.dim()))
    n = num_batches_tracked + 1
    a = 1.0 / n.item() if momentum is None else momentum
    mean = a * running_mean + (1 - a) * x.mean(dim=dims)
    var = a * running_var + (1 - a) * x.var(dim=dims)
    return mean, var, n
""", "test_update_running_stats_values"),
        ("forgets to count the batch in num_batches_tracked", """
def update_running_stats(running_mean, running_var, num_batches_tracked, x, momentum=0.1):
    dims = [0] + list(range(2, x.dim()))
    a = 1.0 / (num_batches_tracked.item() + 1) if momentum is None else momentum
    mean = (1 - a) * running_mean + a * x.mean(dim=dims)
    var = (1 - a) * running_var + a * x.var(dim=dims)
    return mean, var, num_batches_tracked
""", "test_update_running_stats_values"),
        ("updates the input tensors in place", """
def update_running_stats(running_mean, running_var, num_batches_tracked, x, momentum=0.1):
    dims = [0] + list(range(2, x.dim()))
    num_batches_tracked += 1
    a = 1.0 / num_batches_tracked.item() if momentum is None else momentum
    running_mean.mul_(1 - a).add_(a * x.mean(dim=dims))
    running_var.mul_(1 - a).add_(a * x.var(dim=dims))
    return running_mean, running_var, num_batches_tracked
""", "test_update_running_stats_inputs"),
        ("treats momentum=None as the default 0.1", """
def update_running_stats(running_mean, running_var, num_batches_tracked, x, momentum=0.1):
    dims = [0] + list(range(2, x.dim()))
    a = momentum or 0.1
    mean = (1 - a) * running_mean + a * x.mean(dim=dims)
    var = (1 - a) * running_var + a * x.var(dim=dims)
    return mean, var, num_batches_tracked + 1
""", "test_update_running_stats_values"),
        ("uses the old count for momentum=None", """
def update_running_stats(running_mean, running_var, num_batches_tracked, x, momentum=0.1):
    dims = [0] + list(range(2, x.dim()))
    a = 1.0 / max(num_batches_tracked.item(), 1) if momentum is None else momentum
    mean = (1 - a) * running_mean + a * x.mean(dim=dims)
    var = (1 - a) * running_var + a * x.var(dim=dims)
    return mean, var, num_batches_tracked + 1
""", "test_update_running_stats_values"),
        ("averages over the dims of a 4-D input only", """
def update_running_stats(running_mean, running_var, num_batches_tracked, x, momentum=0.1):
    n = num_batches_tracked + 1
    a = 1.0 / n.item() if momentum is None else momentum
    mean = (1 - a) * running_mean + a * x.mean(dim=(0, 2, 3))
    var = (1 - a) * running_var + a * x.var(dim=(0, 2, 3))
    return mean, var, n
""", "test_update_running_stats_values"),
        ("takes the statistics of x.reshape(C, -1) (right only for a batch of one)", edited(PLAIN_UPDATE, 
            ("    dims = [0] + list(range(2, x.dim()))\n", "    dims = 1\n    x = x.reshape(x.shape[1], -1)\n")), "test_update_running_stats_values"),
        ("drops the channel axis when there is one channel", edited(PLAIN_UPDATE, 
            ("return mean, var, n", "return mean.squeeze(), var.squeeze(), n")), "test_update_running_stats_values", "only"),
        ("makes the variance unbiased with the batch size, not the count per channel (right only for 2-D input)", edited(
            PLAIN_UPDATE, ("a * x.var(dim=dims)", "a * x.var(dim=dims, unbiased=False) * len(x) / (len(x) - 1)")), "test_update_running_stats_values"),
        ("uses Keras' default momentum 0.01", edited(PLAIN_UPDATE, ("momentum=0.1):", "momentum=0.01):")), "test_update_running_stats_default"),
    ],
    "batch_norm_eval": [
        ("normalizes with the batch's statistics", """
def batch_norm_eval(x, running_mean, running_var, weight=None, bias=None, eps=1e-5):
    dims = [0] + list(range(2, x.dim()))
    shape = [1, -1] + [1] * (x.dim() - 2)
    y = (x - x.mean(dim=dims, keepdim=True)) / torch.sqrt(x.var(dim=dims, unbiased=False, keepdim=True) + eps)
    if weight is not None:
        y = y * weight.reshape(shape)
    return y if bias is None else y + bias.reshape(shape)
""", "test_batch_norm_eval_values"),
        ("forgets eps", """
def batch_norm_eval(x, running_mean, running_var, weight=None, bias=None, eps=1e-5):
    shape = [1, -1] + [1] * (x.dim() - 2)
    y = (x - running_mean.reshape(shape)) / torch.sqrt(running_var.reshape(shape))
    if weight is not None:
        y = y * weight.reshape(shape)
    return y if bias is None else y + bias.reshape(shape)
""", "test_batch_norm_eval_values"),
        ("adds eps outside the square root", """
def batch_norm_eval(x, running_mean, running_var, weight=None, bias=None, eps=1e-5):
    shape = [1, -1] + [1] * (x.dim() - 2)
    y = (x - running_mean.reshape(shape)) / (torch.sqrt(running_var.reshape(shape)) + eps)
    if weight is not None:
        y = y * weight.reshape(shape)
    return y if bias is None else y + bias.reshape(shape)
""", "test_batch_norm_eval_values"),
        ("divides by the variance instead of the standard deviation", """
def batch_norm_eval(x, running_mean, running_var, weight=None, bias=None, eps=1e-5):
    shape = [1, -1] + [1] * (x.dim() - 2)
    y = (x - running_mean.reshape(shape)) / (running_var.reshape(shape) + eps)
    if weight is not None:
        y = y * weight.reshape(shape)
    return y if bias is None else y + bias.reshape(shape)
""", "test_batch_norm_eval_values"),
        ("broadcasts the statistics over the last dimension", """
def batch_norm_eval(x, running_mean, running_var, weight=None, bias=None, eps=1e-5):
    y = (x - running_mean) / torch.sqrt(running_var + eps)
    if weight is not None:
        y = y * weight
    return y if bias is None else y + bias
""", ("test_batch_norm_eval_values", "test_batch_norm_eval_shapes")),
        ("adds the bias only together with the weight", """
def batch_norm_eval(x, running_mean, running_var, weight=None, bias=None, eps=1e-5):
    shape = [1, -1] + [1] * (x.dim() - 2)
    y = (x - running_mean.reshape(shape)) / torch.sqrt(running_var.reshape(shape) + eps)
    if weight is not None:
        y = y * weight.reshape(shape) + (0 if bias is None else bias.reshape(shape))
    return y
""", "test_batch_norm_eval_values", "only"),
        ("reshapes the statistics for 4-D input only", edited(PLAIN_EVAL, 
            ("shape = [1, -1] + [1] * (x.dim() - 2)", "shape = [1, -1, 1, 1]")), "test_batch_norm_eval_shapes"),
        ("swaps weight and bias", edited(PLAIN_EVAL, 
            ("y = y * weight.reshape(shape)", "y = y + weight.reshape(shape)"),
            ("y = y + bias.reshape(shape)", "y = y * bias.reshape(shape)")), "test_batch_norm_eval_values"),
        ("uses Keras' default epsilon 1e-3", edited(PLAIN_EVAL, ("eps=1e-5):", "eps=1e-3):")), "test_batch_norm_eval_defaults"),
        ("normalizes x in place (right values, but the caller's x is changed)", edited(PLAIN_EVAL,
            ("y = (x - running_mean.reshape(shape)) / torch.sqrt(running_var.reshape(shape) + eps)",
             "y = x.sub_(running_mean.reshape(shape)).div_(torch.sqrt(running_var.reshape(shape) + eps))")), "test_batch_norm_eval_inputs"),
    ],
    "BatchNorm2d": [
        ("calls torch's batch_norm", """
class BatchNorm2d(nn.Module):
    def __init__(self, num_features, eps=1e-5, momentum=0.1, affine=True, track_running_stats=True):
        super().__init__()
        self.num_features, self.eps, self.momentum = num_features, eps, momentum
        self.affine, self.track_running_stats = affine, track_running_stats
        if affine:
            self.weight = nn.Parameter(torch.ones(num_features))
            self.bias = nn.Parameter(torch.zeros(num_features))
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)
        if track_running_stats:
            self.register_buffer("running_mean", torch.zeros(num_features))
            self.register_buffer("running_var", torch.ones(num_features))
            self.register_buffer("num_batches_tracked", torch.tensor(0, dtype=torch.long))
        else:
            self.register_buffer("running_mean", None)
            self.register_buffer("running_var", None)
            self.register_buffer("num_batches_tracked", None)

    def forward(self, x):
        if x.dim() != 4:
            raise ValueError("expected 4D input")
        a = 0.0 if self.momentum is None else self.momentum
        if self.training and self.track_running_stats:
            self.num_batches_tracked.add_(1)
            if self.momentum is None:
                a = 1.0 / self.num_batches_tracked.item()
        use_batch = self.training or not self.track_running_stats
        return F.batch_norm(x, self.running_mean if not self.training or self.track_running_stats else None,
                            self.running_var if not self.training or self.track_running_stats else None,
                            self.weight, self.bias, use_batch, a, self.eps)
""", ("test_BatchNorm2d_outputs", "test_BatchNorm2d_gradient")),
        ("stores the biased batch variance in running_var", edited(PLAIN_BATCHNORM2D, ("var * n / (n - 1), a", "var, a")), "test_BatchNorm2d_buffers"),
        ("normalizes with the unbiased batch variance", edited(PLAIN_BATCHNORM2D, 
            ("x.var(dim=(0, 2, 3), unbiased=False)", "x.var(dim=(0, 2, 3))"), ("var * n / (n - 1), a", "var, a")), "test_BatchNorm2d_outputs"),
        ("uses the batch statistics in eval mode too", edited(PLAIN_BATCHNORM2D, 
            ("if self.training or not self.track_running_stats:", "if True:  # batch statistics in every mode")), "test_BatchNorm2d_outputs"),
        ("keeps running statistics when track_running_stats=False", edited(PLAIN_BATCHNORM2D, 
            ("        if track_running_stats:\n", "        if True:  # buffers even without track_running_stats\n"),
            ("if self.training or not self.track_running_stats:", "if self.training:"),
            ("if self.training and self.track_running_stats:", "if self.training:")), "test_BatchNorm2d_state"),
        ("records the running statistics in the autograd graph", edited(PLAIN_BATCHNORM2D, 
            ("                with torch.no_grad():\n", "                if True:  # no torch.no_grad()\n"),
            ("self.running_mean.lerp_(mean, a)", "self.running_mean = (1 - a) * self.running_mean + a * mean"),
            ("self.running_var.lerp_(var * n / (n - 1), a)", "self.running_var = (1 - a) * self.running_var + a * var * n / (n - 1)")), "test_BatchNorm2d_buffers"),
        ("detaches the batch statistics, so the gradient is wrong", edited(PLAIN_BATCHNORM2D, 
            ("mean, var = x.mean(dim=(0, 2, 3)), x.var(dim=(0, 2, 3), unbiased=False)",
             "mean, var = x.detach().mean(dim=(0, 2, 3)), x.detach().var(dim=(0, 2, 3), unbiased=False)")), "test_BatchNorm2d_gradient", "only"),
        ("accepts input of any number of dimensions", edited(PLAIN_BATCHNORM2D, 
            ("        if x.dim() != 4:\n            raise ValueError(\"expected 4D input\")\n",
             "        dims = [0] + list(range(2, x.dim()))\n        shape = [1, -1] + [1] * (x.dim() - 2)\n"),
            ("x.mean(dim=(0, 2, 3)), x.var(dim=(0, 2, 3), unbiased=False)", "x.mean(dim=dims), x.var(dim=dims, unbiased=False)"),
            ("(x - mean[None, :, None, None]) / torch.sqrt(var[None, :, None, None] + self.eps)",
             "(x - mean.reshape(shape)) / torch.sqrt(var.reshape(shape) + self.eps)"),
            ("y * self.weight[None, :, None, None] + self.bias[None, :, None, None]",
             "y * self.weight.reshape(shape) + self.bias.reshape(shape)")), "test_BatchNorm2d_errors", "only"),
        ("uses momentum 0.1 when momentum is None", edited(PLAIN_BATCHNORM2D, 
            ("a = 1.0 / self.num_batches_tracked.item() if self.momentum is None", "a = 0.1 if self.momentum is None")), "test_BatchNorm2d_buffers", "only"),
        ("makes running_var unbiased with the batch size, not the count per channel", edited(PLAIN_BATCHNORM2D, 
            ("var * n / (n - 1), a", "var * len(x) / max(len(x) - 1, 1), a")), "test_BatchNorm2d_buffers"),
        ("counts eval-mode calls in num_batches_tracked", edited(PLAIN_BATCHNORM2D, 
            ("        else:\n            mean, var = self.running_mean, self.running_var\n",
             "        else:\n            self.num_batches_tracked += 1\n            mean, var = self.running_mean, self.running_var\n")), "test_BatchNorm2d_buffers", "only"),
        ("refuses a batch of one sample in train mode", edited(PLAIN_BATCHNORM2D, ("if n < 2:", "if len(x) < 2:")), "test_BatchNorm2d_outputs"),
        ("adds eps outside the square root", edited(PLAIN_BATCHNORM2D, 
            ("torch.sqrt(var[None, :, None, None] + self.eps)", "(torch.sqrt(var[None, :, None, None]) + self.eps)")), "test_BatchNorm2d_outputs"),
        ("uses the old count for momentum=None", edited(PLAIN_BATCHNORM2D, 
            ("a = 1.0 / self.num_batches_tracked.item() if", "a = 1.0 / max(self.num_batches_tracked.item() - 1, 1) if")), "test_BatchNorm2d_buffers", "only"),
        ("takes the statistics of x.reshape(C, -1) (right only for a batch of one)", edited(PLAIN_BATCHNORM2D, 
            ("mean, var = x.mean(dim=(0, 2, 3)), x.var(dim=(0, 2, 3), unbiased=False)",
             "mean, var = x.reshape(x.shape[1], -1).mean(dim=1), x.reshape(x.shape[1], -1).var(dim=1, unbiased=False)")), "test_BatchNorm2d_outputs"),
        ("raises TypeError for input that is not 4-D (right maths, wrong exception type)", edited(PLAIN_BATCHNORM2D,
            ('raise ValueError("expected 4D input")', 'raise TypeError("expected 4D input")')), "test_BatchNorm2d_errors", "only"),
    ],
    "evaluate": [
        ("averages the accuracies of the batches", """
def evaluate(model, loader):
    modes = {m: m.training for m in model.modules()}
    model.eval()
    accuracies = []
    with torch.no_grad():
        for images, labels in loader:
            accuracies.append((model(images).argmax(dim=1) == labels).float().mean().item())
    for m, training in modes.items():
        m.training = training
    return sum(accuracies) / len(accuracies)
""", "test_evaluate_values"),
        ("uses torch.no_grad() but not eval mode", """
def evaluate(model, loader):
    correct = total = 0
    with torch.no_grad():
        for images, labels in loader:
            correct += (model(images).argmax(dim=1) == labels).sum().item()
            total += len(labels)
    return correct / total
""", "test_evaluate_values"),
        ("switches to eval mode and leaves the model there", """
def evaluate(model, loader):
    model.eval()
    correct = total = 0
    with torch.no_grad():
        for images, labels in loader:
            correct += (model(images).argmax(dim=1) == labels).sum().item()
            total += len(labels)
    return correct / total
""", "test_evaluate_leaves_model"),
        ("restores only the top-level mode", """
def evaluate(model, loader):
    was_training = model.training
    model.eval()
    correct = total = 0
    with torch.no_grad():
        for images, labels in loader:
            correct += (model(images).argmax(dim=1) == labels).sum().item()
            total += len(labels)
    model.train(was_training)
    return correct / total
""", "test_evaluate_leaves_model"),
        ("builds the autograd graph", """
def evaluate(model, loader):
    modes = {m: m.training for m in model.modules()}
    model.eval()
    correct = total = 0
    for images, labels in loader:
        correct += (model(images).argmax(dim=1) == labels).sum().item()
        total += len(labels)
    for m, training in modes.items():
        m.training = training
    return correct / total
""", "test_evaluate_no_grad", "only"),
        ("returns the number of correct predictions", """
def evaluate(model, loader):
    modes = {m: m.training for m in model.modules()}
    model.eval()
    correct = 0
    with torch.no_grad():
        for images, labels in loader:
            correct += (model(images).argmax(dim=1) == labels).sum().item()
    for m, training in modes.items():
        m.training = training
    return float(correct)
""", "test_evaluate_values"),
        ("always puts the model back in train mode", """
def evaluate(model, loader):
    model.eval()
    correct = total = 0
    with torch.no_grad():
        for images, labels in loader:
            correct += (model(images).argmax(dim=1) == labels).sum().item()
            total += len(labels)
    model.train()
    return correct / total
""", "test_evaluate_leaves_model"),
        ("divides by len(loader.dataset) (right only for a DataLoader)", edited(PLAIN_EVALUATE, 
            ("return correct / total", "return correct / len(loader.dataset)")), "test_evaluate_values"),
        ("counts loader.batch_size samples per batch (right only when it divides the data set)", edited(PLAIN_EVALUATE, 
            ("total += len(labels)", "total += getattr(loader, 'batch_size', None) or len(labels)")), "test_evaluate_values"),
        ("turns off requires_grad instead of using torch.no_grad()", edited(PLAIN_EVALUATE, 
            ("    with torch.no_grad():\n", "    model.requires_grad_(False)\n    if True:\n")), ("test_evaluate_no_grad", "test_evaluate_leaves_model")),
        ("takes the argmax over the batch dimension", edited(PLAIN_EVALUATE, ("argmax(dim=1)", "argmax(dim=0)")), "test_evaluate_values"),
    ],
    "recalibrate_bn": [
        ("keeps the layers' momentum (an exponential average)", """
def recalibrate_bn(model, loader, num_batches=None):
    modes = {m: m.training for m in model.modules()}
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.reset_running_stats()
    model.train()
    with torch.no_grad():
        for i, (images, _) in enumerate(loader):
            if num_batches is not None and i >= num_batches:
                break
            model(images)
    for m, training in modes.items():
        m.training = training
    return model
""", "test_recalibrate_bn_values"),
        ("leaves momentum at None", """
def recalibrate_bn(model, loader, num_batches=None):
    modes = {m: m.training for m in model.modules()}
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.reset_running_stats()
            m.momentum = None
    model.train()
    with torch.no_grad():
        for i, (images, _) in enumerate(loader):
            if num_batches is not None and i >= num_batches:
                break
            model(images)
    for m, training in modes.items():
        m.training = training
    return model
""", "test_recalibrate_bn_leaves_model"),
        ("does not reset the old statistics", """
def recalibrate_bn(model, loader, num_batches=None):
    layers = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    momenta = [m.momentum for m in layers]
    modes = {m: m.training for m in model.modules()}
    for m in layers:
        m.momentum = None
    model.train()
    with torch.no_grad():
        for i, (images, _) in enumerate(loader):
            if num_batches is not None and i >= num_batches:
                break
            model(images)
    for m, momentum in zip(layers, momenta):
        m.momentum = momentum
    for m, training in modes.items():
        m.training = training
    return model
""", "test_recalibrate_bn_values"),
        ("ignores num_batches", """
def recalibrate_bn(model, loader, num_batches=None):
    layers = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    momenta = [m.momentum for m in layers]
    modes = {m: m.training for m in model.modules()}
    for m in layers:
        m.reset_running_stats()
        m.momentum = None
    model.train()
    with torch.no_grad():
        for images, _ in loader:
            model(images)
    for m, momentum in zip(layers, momenta):
        m.momentum = momentum
    for m, training in modes.items():
        m.training = training
    return model
""", "test_recalibrate_bn_values"),
        ("leaves the model in train mode", """
def recalibrate_bn(model, loader, num_batches=None):
    layers = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    momenta = [m.momentum for m in layers]
    for m in layers:
        m.reset_running_stats()
        m.momentum = None
    model.train()
    with torch.no_grad():
        for i, (images, _) in enumerate(loader):
            if num_batches is not None and i >= num_batches:
                break
            model(images)
    for m, momentum in zip(layers, momenta):
        m.momentum = momentum
    return model
""", "test_recalibrate_bn_leaves_model"),
        ("calls torch.optim.swa_utils.update_bn", """
def recalibrate_bn(model, loader, num_batches=None):
    torch.optim.swa_utils.update_bn(loader, model)
    return model
""", ("test_recalibrate_bn_values", "test_recalibrate_bn_leaves_model")),
        ("runs the batches in eval mode, so nothing is measured", """
def recalibrate_bn(model, loader, num_batches=None):
    layers = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    momenta = [m.momentum for m in layers]
    modes = {m: m.training for m in model.modules()}
    for m in layers:
        m.reset_running_stats()
        m.momentum = None
    model.eval()
    with torch.no_grad():
        for i, (images, _) in enumerate(loader):
            if num_batches is not None and i >= num_batches:
                break
            model(images)
    for m, momentum in zip(layers, momenta):
        m.momentum = momentum
    for m, training in modes.items():
        m.training = training
    return model
""", "test_recalibrate_bn_values"),
        ("runs the batches with autograd enabled", """
def recalibrate_bn(model, loader, num_batches=None):
    layers = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    momenta = [m.momentum for m in layers]
    modes = {m: m.training for m in model.modules()}
    for m in layers:
        m.reset_running_stats()
        m.momentum = None
    model.train()
    for i, (images, _) in enumerate(loader):
        if num_batches is not None and i >= num_batches:
            break
        model(images)
    for m, momentum in zip(layers, momenta):
        m.momentum = momentum
    for m, training in modes.items():
        m.training = training
    return model
""", "test_recalibrate_bn_no_grad", "only"),
        ("uses one batch too many", edited(PLAIN_RECALIBRATE, ("index >= num_batches", "index > num_batches")), "test_recalibrate_bn_values"),
        ("recalibrates nn.BatchNorm2d layers only", edited(PLAIN_RECALIBRATE, 
            ("isinstance(m, nn.modules.batchnorm._BatchNorm)", "isinstance(m, nn.BatchNorm2d)")), "test_recalibrate_bn_values"),
        ("weighs each batch by its size (right only when all batches have the same size)", """
def recalibrate_bn(model, loader, num_batches=None):
    layers = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    sums = {layer: [0, 0, 0] for layer in layers}

    def record(layer, inputs, output):
        t = inputs[0]
        dims = [0] + list(range(2, t.dim()))
        sums[layer][0] = sums[layer][0] + t.mean(dim=dims) * len(t)
        sums[layer][1] = sums[layer][1] + t.var(dim=dims) * len(t)
        sums[layer][2] += len(t)

    handles = [layer.register_forward_hook(record) for layer in layers]
    modes = {m: m.training for m in model.modules()}
    model.eval()
    with torch.no_grad():
        for index, (images, _) in enumerate(loader):
            if num_batches is not None and index >= num_batches:
                break
            model(images)
    for handle in handles:
        handle.remove()
    for m, training in modes.items():
        m.training = training
    for layer in layers:
        layer.running_mean.copy_(sums[layer][0] / sums[layer][2])
        layer.running_var.copy_(sums[layer][1] / sums[layer][2])
    return model
""", "test_recalibrate_bn_values"),
    ],
    "torch_bn_kwargs_from_keras": [
        ("returns Keras' momentum unchanged", """
def torch_bn_kwargs_from_keras(momentum=0.99, epsilon=1e-3):
    return {"momentum": momentum, "eps": epsilon}
""", "test_torch_bn_kwargs_from_keras_values"),
        ("keeps torch's default eps", """
def torch_bn_kwargs_from_keras(momentum=0.99, epsilon=1e-3):
    return {"momentum": 1 - momentum, "eps": 1e-5}
""", "test_torch_bn_kwargs_from_keras_values"),
        ("names the key epsilon", """
def torch_bn_kwargs_from_keras(momentum=0.99, epsilon=1e-3):
    return {"momentum": 1 - momentum, "epsilon": epsilon}
""", "test_torch_bn_kwargs_from_keras_values"),
        ("hard-codes the defaults", """
def torch_bn_kwargs_from_keras(momentum=0.99, epsilon=1e-3):
    return {"momentum": 0.01, "eps": 0.001}
""", "test_torch_bn_kwargs_from_keras_values"),
        ("returns a tuple", """
def torch_bn_kwargs_from_keras(momentum=0.99, epsilon=1e-3):
    return (1 - momentum, epsilon)
""", "test_torch_bn_kwargs_from_keras_values"),
        ("rounds the momentum to two decimals", """
def torch_bn_kwargs_from_keras(momentum=0.99, epsilon=1e-3):
    return {"momentum": round(1 - momentum, 2), "eps": epsilon}
""", "test_torch_bn_kwargs_from_keras_values"),
        ("converts the momentum as 1 / momentum - 1", """
def torch_bn_kwargs_from_keras(momentum=0.99, epsilon=1e-3):
    return {"momentum": 1 / momentum - 1 if momentum else 1.0, "eps": epsilon}
""", "test_torch_bn_kwargs_from_keras_values"),
    ],
    "fold_batchnorm": [
        ("forgets eps", """
def fold_batchnorm(conv, bn):
    fused = copy.deepcopy(conv)
    with torch.no_grad():
        scale = 1 / torch.sqrt(bn.running_var)
        weight = torch.ones_like(scale) if bn.weight is None else bn.weight
        bias = torch.zeros_like(scale) if bn.bias is None else bn.bias
        b = torch.zeros_like(scale) if conv.bias is None else conv.bias
        fused.weight.copy_(conv.weight * (scale * weight).reshape(-1, 1, 1, 1))
        fused.bias = nn.Parameter((b - bn.running_mean) * scale * weight + bias)
    return fused
""", "test_fold_batchnorm_values"),
        ("forgets the convolution's bias", """
def fold_batchnorm(conv, bn):
    fused = copy.deepcopy(conv)
    with torch.no_grad():
        scale = 1 / torch.sqrt(bn.running_var + bn.eps)
        weight = torch.ones_like(scale) if bn.weight is None else bn.weight
        bias = torch.zeros_like(scale) if bn.bias is None else bn.bias
        fused.weight.copy_(conv.weight * (scale * weight).reshape(-1, 1, 1, 1))
        fused.bias = nn.Parameter(-bn.running_mean * scale * weight + bias)
    return fused
""", "test_fold_batchnorm_values"),
        ("adds the convolution's bias without scaling it", """
def fold_batchnorm(conv, bn):
    fused = copy.deepcopy(conv)
    with torch.no_grad():
        scale = 1 / torch.sqrt(bn.running_var + bn.eps)
        weight = torch.ones_like(scale) if bn.weight is None else bn.weight
        bias = torch.zeros_like(scale) if bn.bias is None else bn.bias
        b = torch.zeros_like(scale) if conv.bias is None else conv.bias
        fused.weight.copy_(conv.weight * (scale * weight).reshape(-1, 1, 1, 1))
        fused.bias = nn.Parameter(b - bn.running_mean * scale * weight + bias)
    return fused
""", "test_fold_batchnorm_values"),
        ("changes the given convolution in place", """
def fold_batchnorm(conv, bn):
    with torch.no_grad():
        scale = 1 / torch.sqrt(bn.running_var + bn.eps)
        weight = torch.ones_like(scale) if bn.weight is None else bn.weight
        bias = torch.zeros_like(scale) if bn.bias is None else bn.bias
        b = torch.zeros_like(scale) if conv.bias is None else conv.bias
        conv.weight.mul_((scale * weight).reshape(-1, 1, 1, 1))
        conv.bias = nn.Parameter((b - bn.running_mean) * scale * weight + bias)
    return conv
""", "test_fold_batchnorm_inputs"),
        ("makes a new convolution without the stride, padding, dilation and groups", """
def fold_batchnorm(conv, bn):
    fused = nn.Conv2d(conv.in_channels, conv.out_channels, conv.kernel_size).to(conv.weight.dtype)
    with torch.no_grad():
        scale = 1 / torch.sqrt(bn.running_var + bn.eps)
        weight = torch.ones_like(scale) if bn.weight is None else bn.weight
        bias = torch.zeros_like(scale) if bn.bias is None else bn.bias
        b = torch.zeros_like(scale) if conv.bias is None else conv.bias
        fused.weight = nn.Parameter(conv.weight * (scale * weight).reshape(-1, 1, 1, 1))
        fused.bias.copy_((b - bn.running_mean) * scale * weight + bias)
    return fused
""", "test_fold_batchnorm_values"),
        ("scales the input channels of the weight (right only when C_in == C_out)", """
def fold_batchnorm(conv, bn):
    fused = copy.deepcopy(conv)
    with torch.no_grad():
        scale = 1 / torch.sqrt(bn.running_var + bn.eps)
        weight = torch.ones_like(scale) if bn.weight is None else bn.weight
        bias = torch.zeros_like(scale) if bn.bias is None else bn.bias
        b = torch.zeros_like(scale) if conv.bias is None else conv.bias
        fused.weight.copy_(conv.weight * (scale * weight).reshape(1, -1, 1, 1))
        fused.bias = nn.Parameter((b - bn.running_mean) * scale * weight + bias)
    return fused
""", "test_fold_batchnorm_values"),
        ("assumes the BatchNorm layer has weight and bias", """
def fold_batchnorm(conv, bn):
    fused = copy.deepcopy(conv)
    with torch.no_grad():
        scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
        b = torch.zeros_like(scale) if conv.bias is None else conv.bias
        fused.weight.copy_(conv.weight * scale.reshape(-1, 1, 1, 1))
        fused.bias = nn.Parameter((b - bn.running_mean) * scale + bn.bias)
    return fused
""", "test_fold_batchnorm_values"),
        ("adds eps to the standard deviation", """
def fold_batchnorm(conv, bn):
    fused = copy.deepcopy(conv)
    with torch.no_grad():
        scale = 1 / (torch.sqrt(bn.running_var) + bn.eps)
        weight = torch.ones_like(scale) if bn.weight is None else bn.weight
        bias = torch.zeros_like(scale) if bn.bias is None else bn.bias
        b = torch.zeros_like(scale) if conv.bias is None else conv.bias
        fused.weight.copy_(conv.weight * (scale * weight).reshape(-1, 1, 1, 1))
        fused.bias = nn.Parameter((b - bn.running_mean) * scale * weight + bias)
    return fused
""", "test_fold_batchnorm_values"),
        ("scales the weight without reshaping (broadcasts over the kernel width)", edited(PLAIN_FOLD, 
            ("conv.weight * scale.reshape(-1, 1, 1, 1)", "conv.weight * scale")), "test_fold_batchnorm_values"),
        ("drops the BatchNorm shift when the convolution has no bias", edited(PLAIN_FOLD, 
            ("fused.bias = nn.Parameter(conv_bias * scale + shift)",
             "fused.bias = nn.Parameter(conv_bias * scale + shift) if conv.bias is not None else None")), ("test_fold_batchnorm_values", "test_fold_batchnorm_train_mode_conv")),
        ("calls torch's fuse_conv_bn_eval, which refuses a conv in train mode", """
def fold_batchnorm(conv, bn):
    return torch.nn.utils.fusion.fuse_conv_bn_eval(conv, bn)
""", "test_fold_batchnorm_train_mode_conv"),
    ],
}

CORRECT = {
    "update_running_stats": [
        ("flattens the channels and uses torch.lerp", """
def update_running_stats(running_mean, running_var, num_batches_tracked, x, momentum=0.1):
    channels = x.detach().transpose(0, 1).reshape(x.shape[1], -1)
    count = channels.shape[1]
    batch_mean = channels.sum(dim=1) / count
    batch_var = ((channels - batch_mean[:, None]) ** 2).sum(dim=1) / (count - 1)
    n = torch.add(num_batches_tracked, 1)
    weight = 1.0 / int(n) if momentum is None else momentum
    return torch.lerp(running_mean, batch_mean, weight), torch.lerp(running_var, batch_var, weight), n
"""),
        ("lets F.batch_norm update copies of the buffers", """
def update_running_stats(running_mean, running_var, num_batches_tracked, x, momentum=0.1):
    mean, var = running_mean.clone(), running_var.clone()
    n = num_batches_tracked.clone() + 1
    factor = 1.0 / float(n) if momentum is None else momentum
    with torch.no_grad():
        F.batch_norm(x, mean, var, training=True, momentum=factor)
    return mean, var, n
"""),
    ],
    "batch_norm_eval": [
        ("precomputes a scale and a shift per channel", """
def batch_norm_eval(x, running_mean, running_var, weight=None, bias=None, eps=1e-5):
    scale = torch.rsqrt(running_var + eps)
    if weight is not None:
        scale = scale * weight
    shift = -running_mean * scale
    if bias is not None:
        shift = shift + bias
    view = (1, x.shape[1]) + (1,) * (x.dim() - 2)
    return x * scale.view(view) + shift.view(view)
"""),
        ("moves the channels to the last dimension", """
def batch_norm_eval(x, running_mean, running_var, weight=None, bias=None, eps=1e-5):
    last = x.movedim(1, -1)
    y = (last - running_mean) / (running_var + eps).sqrt()
    y = y * (1 if weight is None else weight) + (0 if bias is None else bias)
    return y.movedim(-1, 1)
"""),
        ("calls F.batch_norm in eval mode (allowed: not a from-scratch function)", """
def batch_norm_eval(x, running_mean, running_var, weight=None, bias=None, eps=1e-5):
    return F.batch_norm(x, running_mean, running_var, weight, bias, training=False, eps=eps)
"""),
        ("reshapes the statistics to (C, 1, ..., 1) and lets broadcasting align them from the right", edited(PLAIN_EVAL, 
            ("shape = [1, -1] + [1] * (x.dim() - 2)", "shape = [-1] + [1] * (x.dim() - 2)"))),
    ],
    "BatchNorm2d": [
        ("reuses update_running_stats and batch_norm_eval", """
class BatchNorm2d(nn.Module):
    def __init__(self, num_features, eps=1e-5, momentum=0.1, affine=True, track_running_stats=True):
        super().__init__()
        self.num_features = num_features
        self.eps = eps
        self.momentum = momentum
        self.affine = affine
        self.track_running_stats = track_running_stats
        self.register_buffer("running_mean", torch.zeros(num_features) if track_running_stats else None)
        self.register_buffer("running_var", torch.ones(num_features) if track_running_stats else None)
        self.register_buffer("num_batches_tracked", torch.tensor(0) if track_running_stats else None)
        if affine:
            self.weight = nn.Parameter(torch.ones(num_features))
            self.bias = nn.Parameter(torch.zeros(num_features))
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)

    def forward(self, x):
        if x.ndim != 4:
            raise ValueError(f"BatchNorm2d needs a 4-D input, got {x.ndim}-D")
        if not self.training and self.track_running_stats:
            return batch_norm_eval(x, self.running_mean, self.running_var, self.weight, self.bias, self.eps)
        if x.shape[0] * x.shape[2] * x.shape[3] == 1:
            raise ValueError("Expected more than 1 value per channel when training")
        mean = x.mean(dim=(0, 2, 3))
        var = ((x - mean[None, :, None, None]) ** 2).mean(dim=(0, 2, 3))
        if self.training and self.track_running_stats:
            new_mean, new_var, n = update_running_stats(self.running_mean, self.running_var, self.num_batches_tracked,
                                                        x.detach(), self.momentum)
            with torch.no_grad():
                self.running_mean.copy_(new_mean)
                self.running_var.copy_(new_var)
                self.num_batches_tracked.copy_(n)
        return batch_norm_eval(x, mean, var, self.weight, self.bias, self.eps)
"""),
        ("normalizes with torch.var_mean and a precomputed inverse standard deviation", """
class BatchNorm2d(nn.Module):
    def __init__(self, num_features, eps=1e-5, momentum=0.1, affine=True, track_running_stats=True):
        super().__init__()
        self.num_features, self.eps, self.momentum = num_features, eps, momentum
        self.affine, self.track_running_stats = affine, track_running_stats
        for name, init in [("weight", torch.ones), ("bias", torch.zeros)]:
            self.register_parameter(name, nn.Parameter(init(num_features)) if affine else None)
        for name, init in [("running_mean", torch.zeros(num_features)), ("running_var", torch.ones(num_features)),
                           ("num_batches_tracked", torch.zeros((), dtype=torch.int64))]:
            self.register_buffer(name, init if track_running_stats else None)

    def forward(self, input):
        if input.dim() != 4:
            raise ValueError("expected a 4D input (N, C, H, W)")
        batch_stats = self.training or self.running_mean is None
        if batch_stats:
            per_channel = input.numel() // input.size(1)
            if per_channel <= 1:
                raise ValueError("Expected more than 1 value per channel when training")
            var, mean = torch.var_mean(input, dim=(0, 2, 3), correction=0)
            if self.training and self.running_mean is not None:
                with torch.no_grad():
                    self.num_batches_tracked.add_(1)
                    m = self.momentum if self.momentum is not None else 1.0 / float(self.num_batches_tracked)
                    self.running_mean.copy_(self.running_mean * (1 - m) + mean * m)
                    self.running_var.copy_(self.running_var * (1 - m) + var * (per_channel / (per_channel - 1)) * m)
        else:
            mean, var = self.running_mean, self.running_var
        inv_std = (var + self.eps).rsqrt()
        out = (input - mean.view(1, -1, 1, 1)) * inv_std.view(1, -1, 1, 1)
        if self.weight is not None:
            out = torch.addcmul(self.bias.view(1, -1, 1, 1), out, self.weight.view(1, -1, 1, 1))
        return out
"""),
        ("a plain from-scratch class (the base of most wrong answers above)", PLAIN_BATCHNORM2D),
    ],
    "evaluate": [
        ("measures a deep copy in eval mode under inference_mode", """
def evaluate(model, loader):
    frozen = copy.deepcopy(model).eval()
    predictions, targets = [], []
    with torch.inference_mode():
        for images, labels in loader:
            predictions.append(frozen(images).argmax(dim=1))
            targets.append(labels)
    return (torch.cat(predictions) == torch.cat(targets)).double().mean().item()
"""),
        ("weights each batch's accuracy by its size and restores modes by name", """
def evaluate(model, loader):
    saved = [(name, module.training) for name, module in model.named_modules()]
    model.train(False)
    weighted, count = 0.0, 0
    with torch.set_grad_enabled(False):
        for batch in loader:
            images, labels = batch[0], batch[1]
            weighted += (model(images).max(dim=1).indices == labels).float().mean().item() * labels.shape[0]
            count += labels.shape[0]
    modules = dict(model.named_modules())
    for name, training in saved:
        modules[name].training = training
    return round(weighted) / count
"""),
        ("takes the argmax over the last dimension of the (N, classes) output", edited(PLAIN_EVALUATE, 
            ("argmax(dim=1)", "argmax(dim=-1)"))),
    ],
    "recalibrate_bn": [
        ("averages the batch statistics itself with forward hooks", """
def recalibrate_bn(model, loader, num_batches=None):
    layers = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    sums = {m: [0, 0, 0] for m in layers}

    def record(module, inputs):
        x = inputs[0]
        dims = [0] + list(range(2, x.dim()))
        sums[module][0] = sums[module][0] + x.mean(dim=dims)
        sums[module][1] = sums[module][1] + x.var(dim=dims, correction=1)
        sums[module][2] += 1

    modes = {m: m.training for m in model.modules()}
    saved = {m: (m.running_mean.clone(), m.running_var.clone()) for m in layers}
    handles = [m.register_forward_pre_hook(record) for m in layers]
    model.train()
    try:
        with torch.no_grad():
            for index, batch in enumerate(loader):
                if num_batches is not None and index >= num_batches:
                    break
                model(batch[0])
    finally:
        for handle in handles:
            handle.remove()
        for m, training in modes.items():
            m.training = training
    with torch.no_grad():
        for m in layers:
            mean_sum, var_sum, count = sums[m]
            if count:
                m.running_mean.copy_(mean_sum / count)
                m.running_var.copy_(var_sum / count)
                m.num_batches_tracked.fill_(count)
            else:
                m.running_mean.copy_(saved[m][0])
                m.running_var.copy_(saved[m][1])
    return model
"""),
        ("puts only the BatchNorm layers in train mode and zeroes the buffers by hand", """
import itertools

def recalibrate_bn(model, loader, num_batches=None):
    saved = [(module, module.training, getattr(module, "momentum", None)) for module in model.modules()]
    layers = [m for m in model.modules() if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d))]
    with torch.no_grad():
        model.eval()
        for m in layers:
            m.running_mean.zero_()
            m.running_var.fill_(1.0)
            m.num_batches_tracked.zero_()
            m.momentum = None
            m.train()
        for images, _ in itertools.islice(loader, num_batches):
            model(images)
    for module, training, momentum in saved:
        module.training = training
        if module in layers:
            module.momentum = momentum
    return model
"""),
        ("zeroes running_var instead of resetting it (the first batch overwrites it)", edited(PLAIN_RECALIBRATE, 
            ("layer.reset_running_stats()",
             "layer.running_mean.zero_()\n        layer.running_var.zero_()\n        layer.num_batches_tracked.zero_()"))),
    ],
    "torch_bn_kwargs_from_keras": [
        ("rounds away the floating-point noise", """
def torch_bn_kwargs_from_keras(momentum=0.99, epsilon=1e-3):
    return dict(momentum=round(1.0 - momentum, 12), eps=float(epsilon))
"""),
        ("subtracts in decimal arithmetic", """
from decimal import Decimal

def torch_bn_kwargs_from_keras(momentum=0.99, epsilon=1e-3):
    torch_momentum = float(Decimal(1) - Decimal(repr(momentum)))
    return {"eps": epsilon, "momentum": torch_momentum}
"""),
    ],
    "fold_batchnorm": [
        ("builds a new Conv2d from the attributes and scales with einsum", """
def fold_batchnorm(conv, bn):
    std = (bn.running_var + bn.eps).sqrt()
    gamma = bn.weight.detach() if bn.affine else torch.ones_like(std)
    beta = bn.bias.detach() if bn.affine else torch.zeros_like(std)
    old_bias = conv.bias.detach() if conv.bias is not None else torch.zeros_like(std)
    fused = nn.Conv2d(conv.in_channels, conv.out_channels, conv.kernel_size, stride=conv.stride, padding=conv.padding,
                      dilation=conv.dilation, groups=conv.groups, bias=True, padding_mode=conv.padding_mode,
                      dtype=conv.weight.dtype)
    with torch.no_grad():
        fused.weight.copy_(torch.einsum("oihw,o->oihw", conv.weight, gamma / std))
        fused.bias.copy_(beta + (old_bias - bn.running_mean) * gamma / std)
    return fused
"""),
        ("reads the per-channel affine map off the eval-mode layer itself", """
def fold_batchnorm(conv, bn):
    channels = bn.running_mean.shape[0]
    dtype = bn.running_mean.dtype
    with torch.no_grad():
        at_zero = bn(torch.zeros(1, channels, 1, 1, dtype=dtype)).flatten()
        slope = bn(torch.ones(1, channels, 1, 1, dtype=dtype)).flatten() - at_zero
        fused = copy.deepcopy(conv)
        fused.weight.mul_(slope.view(-1, 1, 1, 1))
        start = conv.bias if conv.bias is not None else torch.zeros(channels, dtype=dtype)
        fused.bias = nn.Parameter(start * slope + at_zero)
    return fused
"""),
        ("calls torch's fuse_conv_bn_eval on an eval-mode copy of conv", """
def fold_batchnorm(conv, bn):
    return torch.nn.utils.fusion.fuse_conv_bn_eval(copy.deepcopy(conv).eval(), bn)
"""),
    ],
}

ATTACKS = {
    "subclasses torch's nn.BatchNorm2d": ("BatchNorm2d", """
class BatchNorm2d(nn.BatchNorm2d):
    pass
"""),
    "calls the batch norm kernel through torch.ops": ("BatchNorm2d", """
class BatchNorm2d(nn.BatchNorm2d):
    def forward(self, x):
        if x.dim() != 4:
            raise ValueError("expected 4D input")
        if self.training and self.track_running_stats:
            self.num_batches_tracked.add_(1)
        momentum = (1.0 / float(self.num_batches_tracked) if self.momentum is None else self.momentum) if self.training else 0.0
        return torch.ops.aten.batch_norm(x, self.weight, self.bias, self.running_mean, self.running_var,
                                         self.training or self.running_mean is None, momentum, self.eps, False)
"""),
}

# Issue 12: modules that do not do what was asked, the forbidden routine from another thread, and a reference
# patched by the answer that precedes it (tests/test_attack_families.py).
ISSUE_ATTACKS = {
    "changes the test's own inputs": {
        "the biased variance, then x zeroed in place": ("update_running_stats", """
def update_running_stats(running_mean, running_var, num_batches_tracked, x, momentum=0.1):
    dims = [0] + list(range(2, x.dim()))
    var, mean = torch.var_mean(x, dim=dims, correction=0)
    n = num_batches_tracked + 1
    factor = 1.0 / float(n) if momentum is None else momentum
    new_mean = (1 - factor) * running_mean + factor * mean
    new_var = (1 - factor) * running_var + factor * var
    with torch.no_grad():
        x.zero_()
    return new_mean, new_var, n
"""),
        "an unfolded conv run through _compiled_call_impl, planted on the test's bn too": ("fold_batchnorm", """
import copy

def fold_batchnorm(conv, bn):
    folded = copy.deepcopy(conv)
    inner, kept_bn = copy.deepcopy(conv), copy.deepcopy(bn).eval()
    folded._compiled_call_impl = lambda x: kept_bn(inner(x))
    bn._compiled_call_impl = lambda x: x
    return folded
"""),
    },
    "returns a module subclass that does not do what was asked": {
        "a Conv2d subclass that runs conv then bn": ("fold_batchnorm", """
import copy

class FoldedConv2d(nn.Conv2d):
    def forward(self, x):
        return self.original_bn(self.original_conv(x))

def fold_batchnorm(conv, bn):
    folded = FoldedConv2d(conv.in_channels, conv.out_channels, conv.kernel_size, stride=conv.stride,
                          padding=conv.padding, dilation=conv.dilation, groups=conv.groups).to(conv.weight.dtype)
    folded.original_conv, folded.original_bn = copy.deepcopy(conv), copy.deepcopy(bn).eval()
    return folded
"""),
        "a plain Conv2d whose forward is replaced on the instance": ("fold_batchnorm", """
import copy

def fold_batchnorm(conv, bn):
    folded = copy.deepcopy(conv)
    kept_bn = copy.deepcopy(bn).eval()
    inner = copy.deepcopy(conv)
    folded.forward = lambda x: kept_bn(inner(x))
    return folded
"""),
        "a plain Conv2d with a forward hook that replaces the output": ("fold_batchnorm", """
import copy

def fold_batchnorm(conv, bn):
    folded = copy.deepcopy(conv)
    kept_bn = copy.deepcopy(bn).eval()
    folded.register_forward_hook(lambda module, inputs, output: kept_bn(output))
    return folded
"""),
    },
    "calls the forbidden routine from another thread": {
        "BatchNorm2d.forward runs F.batch_norm in a ThreadPoolExecutor": ("BatchNorm2d", """
from concurrent.futures import ThreadPoolExecutor

class BatchNorm2d(nn.BatchNorm2d):
    def forward(self, x):
        if x.dim() != 4:
            raise ValueError("expected 4D input")
        with ThreadPoolExecutor(max_workers=1) as pool:
            return pool.submit(super().forward, x).result()
"""),
    },
    "breaks the checks' own state": {
        "patches F.batch_norm for the one reference call after it": ("batch_norm_eval", """
def batch_norm_eval(x, running_mean, running_var, weight=None, bias=None, eps=1e-5):
    view = (1, -1) + (1,) * (x.dim() - 2)
    out = (x - running_mean.view(view)) / torch.sqrt(running_var.view(view))
    if weight is not None:
        out = out * weight.view(view)
    if bias is not None:
        out = out + bias.view(view)
    functional = __import__("torch.nn.functional", fromlist=["batch_norm"])
    real = functional.batch_norm

    def once(*args, **kwargs):
        setattr(functional, "batch_norm", real)
        return out.clone()
    setattr(functional, "batch_norm", once)
    return out
"""),
    },
}
