"""Answers for 05_batch_size_one that the grader must score correctly (see 00's file for the format)."""

WRONG = {
    "values_per_channel": [
        ("counts the channels too", """
def values_per_channel(shape):
    return math.prod(shape)
""", "test_values_per_channel_values"),
        ("counts only the batch", """
def values_per_channel(shape):
    return shape[0]
""", "test_values_per_channel_values"),
        ("counts only the positions", """
def values_per_channel(shape):
    return math.prod(shape[2:])
""", "test_values_per_channel_values"),
        ("uses the 4-D formula for every input", """
def values_per_channel(shape):
    return shape[0] * shape[2] * shape[3]
""", "test_values_per_channel_shapes"),
        ("returns a tensor instead of an int", """
def values_per_channel(shape):
    return torch.ones(shape).sum(dim=[0] + list(range(2, len(shape))))[0]
""", "test_values_per_channel_values"),
        ("forgets the last dimension", """
def values_per_channel(shape):
    return shape[0] * math.prod(shape[2:-1]) if len(shape) > 2 else shape[0]
""", "test_values_per_channel_values"),
    ],
    "bn_training_raises": [
        ("raises for every batch of one", """
def bn_training_raises(shape):
    return shape[0] == 1
""", "test_bn_training_raises_images"),
        ("counts the channels too", """
def bn_training_raises(shape):
    return math.prod(shape) == 1
""", "test_bn_training_raises_images"),
        ("uses InstanceNorm's rule", """
def bn_training_raises(shape):
    return math.prod(shape[2:]) == 1
""", "test_bn_training_raises_images"),
        ("only knows (1, C)", """
def bn_training_raises(shape):
    return len(shape) == 2 and shape[0] == 1
""", "test_bn_training_raises_images"),
        ("never raises (thinks eps saves it)", """
def bn_training_raises(shape):
    return False
""", "test_bn_training_raises_images"),
        ("uses the 4-D count for every input", """
def bn_training_raises(shape):
    return shape[0] * shape[2] * shape[3] == 1
""", "test_bn_training_raises_shapes"),
    ],
    "instance_norm_training_raises": [
        ("uses BatchNorm's rule", """
def instance_norm_training_raises(shape):
    return shape[0] * math.prod(shape[2:]) == 1
""", "test_instance_norm_training_raises_images"),
        ("accepts (N, C) input", """
def instance_norm_training_raises(shape):
    return len(shape) > 2 and math.prod(shape[2:]) == 1
""", "test_instance_norm_training_raises_shapes", "only"),
        ("raises when any spatial size is 1", """
def instance_norm_training_raises(shape):
    return len(shape) == 2 or any(size == 1 for size in shape[2:])
""", "test_instance_norm_training_raises_images"),
        ("raises for every batch of one", """
def instance_norm_training_raises(shape):
    return shape[0] == 1
""", "test_instance_norm_training_raises_images"),
        ("counts the channels too", """
def instance_norm_training_raises(shape):
    return math.prod(shape[1:]) == 1
""", "test_instance_norm_training_raises_images"),
    ],
    "batch_of_one_accuracies": [
        ('measures train mode on the model itself (its forward passes move the running statistics)', """
def batch_of_one_accuracies(model, images, labels):
    modes = {layer: layer.training for layer in model.modules()}
    accuracies = {}
    with torch.no_grad():
        for mode in ("eval_mode", "train_mode"):
            model.eval()
            if mode == "train_mode":
                for layer in model.modules():
                    if isinstance(layer, (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)):
                        layer.train()
            correct = sum((model(image[None]).argmax(dim=1) == label).item() for image, label in zip(images, labels))
            accuracies[mode] = correct / len(labels)
    for layer, training in modes.items():
        layer.training = training
    return accuracies
""", "test_batch_of_one_accuracies_leaves_model"),
        ('measures eval mode on the copy whose running statistics the train-mode passes moved', """
def batch_of_one_accuracies(model, images, labels):
    scored = copy.deepcopy(model).eval()
    accuracies = {}
    with torch.no_grad():
        for mode in ("train_mode", "eval_mode"):
            for layer in scored.modules():
                if isinstance(layer, (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)):
                    layer.train(mode == "train_mode")
            correct = sum((scored(image[None]).argmax(dim=1) == label).item() for image, label in zip(images, labels))
            accuracies[mode] = correct / len(labels)
    return accuracies
""", "test_batch_of_one_accuracies_values"),
        ('puts the whole model in train mode (Dropout on too)', """
def batch_of_one_accuracies(model, images, labels):
    accuracies = {}
    for mode in ("train_mode", "eval_mode"):
        scored = copy.deepcopy(model).train(mode == "train_mode")
        with torch.no_grad():
            correct = sum((scored(image[None]).argmax(dim=1) == label).item() for image, label in zip(images, labels))
        accuracies[mode] = correct / len(labels)
    return accuracies
""", "test_batch_of_one_accuracies_only_batchnorm", 'only'),
        ('normalizes all the images as one batch in train mode', """
def batch_of_one_accuracies(model, images, labels):
    accuracies = {}
    for mode in ("train_mode", "eval_mode"):
        scored = copy.deepcopy(model).eval()
        for layer in scored.modules():
            if isinstance(layer, (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)):
                layer.train(mode == "train_mode")
        with torch.no_grad():
            accuracies[mode] = (scored(images).argmax(dim=1) == labels).float().mean().item()
    return accuracies
""", "test_batch_of_one_accuracies_values"),
        ('restores only the top-level mode', """
def batch_of_one_accuracies(model, images, labels):
    was_training = model.training
    saved = copy.deepcopy(model.state_dict())
    accuracies = {}
    with torch.no_grad():
        for mode in ("train_mode", "eval_mode"):
            model.eval()
            if mode == "train_mode":
                for layer in model.modules():
                    if isinstance(layer, (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)):
                        layer.train()
            correct = sum((model(image[None]).argmax(dim=1) == label).item() for image, label in zip(images, labels))
            accuracies[mode] = correct / len(labels)
            model.load_state_dict(saved)
    model.train(was_training)
    return accuracies
""", "test_batch_of_one_accuracies_leaves_model"),
        ('sets momentum to 0 to keep the running statistics (num_batches_tracked still counts)', """
def batch_of_one_accuracies(model, images, labels):
    modes = {layer: layer.training for layer in model.modules()}
    norms = [layer for layer in model.modules() if isinstance(layer, (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d))]
    momenta = [layer.momentum for layer in norms]
    accuracies = {}
    with torch.no_grad():
        for mode in ("train_mode", "eval_mode"):
            model.eval()
            for layer in norms:
                layer.momentum = 0.0
                layer.train(mode == "train_mode")
            correct = sum((model(image[None]).argmax(dim=1) == label).item() for image, label in zip(images, labels))
            accuracies[mode] = correct / len(labels)
    for layer, momentum in zip(norms, momenta):
        layer.momentum = momentum
    for layer, training in modes.items():
        layer.training = training
    return accuracies
""", "test_batch_of_one_accuracies_leaves_model"),
        ('turns off track_running_stats for train mode and does not turn it back on', """
def batch_of_one_accuracies(model, images, labels):
    modes = {layer: layer.training for layer in model.modules()}
    norms = [layer for layer in model.modules() if isinstance(layer, (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d))]
    accuracies = {}
    with torch.no_grad():
        for mode in ("train_mode", "eval_mode"):
            model.eval()
            for layer in norms:
                layer.track_running_stats = False
                layer.train(mode == "train_mode")
            correct = sum((model(image[None]).argmax(dim=1) == label).item() for image, label in zip(images, labels))
            accuracies[mode] = correct / len(labels)
    for layer, training in modes.items():
        layer.training = training
    return accuracies
""", "test_batch_of_one_accuracies_leaves_model"),
        ('puts only BatchNorm2d layers in train mode', """
def batch_of_one_accuracies(model, images, labels):
    accuracies = {}
    for mode in ("train_mode", "eval_mode"):
        scored = copy.deepcopy(model).eval()
        if mode == "train_mode":
            for layer in scored.modules():
                if isinstance(layer, nn.BatchNorm2d):
                    layer.train()
        with torch.no_grad():
            correct = sum((scored(image[None]).argmax(dim=1) == label).item() for image, label in zip(images, labels))
        accuracies[mode] = correct / len(labels)
    return accuracies
""", "test_batch_of_one_accuracies_values", 'only'),
        ('forgets eval() for the eval-mode accuracy (uses the mode the model was in)', """
def batch_of_one_accuracies(model, images, labels):
    accuracies = {}
    for mode in ("train_mode", "eval_mode"):
        scored = copy.deepcopy(model)
        if mode == "train_mode":
            scored.eval()
            for layer in scored.modules():
                if isinstance(layer, (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)):
                    layer.train()
        with torch.no_grad():
            correct = sum((scored(image[None]).argmax(dim=1) == label).item() for image, label in zip(images, labels))
        accuracies[mode] = correct / len(labels)
    return accuracies
""", "test_batch_of_one_accuracies_values"),
        ('scores eval mode on all the images at once (wrong when a BatchNorm layer keeps no running statistics)', """
def batch_of_one_accuracies(model, images, labels):
    scored = copy.deepcopy(model).eval()
    with torch.no_grad():
        eval_accuracy = (scored(images).argmax(dim=1) == labels).float().mean().item()
        for layer in scored.modules():
            if isinstance(layer, (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)):
                layer.train()
        correct = sum((scored(image[None]).argmax(dim=1) == label).item() for image, label in zip(images, labels))
    return {"train_mode": correct / len(labels), "eval_mode": eval_accuracy}
""", "test_batch_of_one_accuracies_values"),
    ],
    "batch_renorm_train": [
        ("lets the gradient flow through r and d", """
def batch_renorm_train(x, running_mean, running_var, weight, bias, r_max, d_max, eps=1e-5):
    dims = [0] + list(range(2, x.dim()))
    shape = (1, -1) + (1,) * (x.dim() - 2)
    var, mean = torch.var_mean(x, dim=dims, correction=0)
    sigma_batch, sigma = torch.sqrt(var + eps), torch.sqrt(running_var + eps)
    r = (sigma_batch / sigma).clamp(1 / r_max, r_max)
    d = ((mean - running_mean) / sigma).clamp(-d_max, d_max)
    y = (x - mean.view(shape)) / sigma_batch.view(shape) * r.view(shape) + d.view(shape)
    y = y if weight is None else y * weight.view(shape)
    return y if bias is None else y + bias.view(shape)
""", "test_batch_renorm_train_gradient", "only"),
        ("uses the unbiased batch variance", """
def batch_renorm_train(x, running_mean, running_var, weight, bias, r_max, d_max, eps=1e-5):
    dims = [0] + list(range(2, x.dim()))
    shape = (1, -1) + (1,) * (x.dim() - 2)
    var, mean = torch.var_mean(x, dim=dims, correction=1)
    sigma_batch, sigma = torch.sqrt(var + eps), torch.sqrt(running_var + eps)
    r = (sigma_batch / sigma).clamp(1 / r_max, r_max).detach()
    d = ((mean - running_mean) / sigma).clamp(-d_max, d_max).detach()
    y = (x - mean.view(shape)) / sigma_batch.view(shape) * r.view(shape) + d.view(shape)
    y = y if weight is None else y * weight.view(shape)
    return y if bias is None else y + bias.view(shape)
""", "test_batch_renorm_train_values"),
        ("does not clip r and d", """
def batch_renorm_train(x, running_mean, running_var, weight, bias, r_max, d_max, eps=1e-5):
    dims = [0] + list(range(2, x.dim()))
    shape = (1, -1) + (1,) * (x.dim() - 2)
    var, mean = torch.var_mean(x, dim=dims, correction=0)
    sigma_batch, sigma = torch.sqrt(var + eps), torch.sqrt(running_var + eps)
    r = (sigma_batch / sigma).detach()
    d = ((mean - running_mean) / sigma).detach()
    y = (x - mean.view(shape)) / sigma_batch.view(shape) * r.view(shape) + d.view(shape)
    y = y if weight is None else y * weight.view(shape)
    return y if bias is None else y + bias.view(shape)
""", "test_batch_renorm_train_values"),
        ("computes both sigmas without eps", """
def batch_renorm_train(x, running_mean, running_var, weight, bias, r_max, d_max, eps=1e-5):
    dims = [0] + list(range(2, x.dim()))
    shape = (1, -1) + (1,) * (x.dim() - 2)
    var, mean = torch.var_mean(x, dim=dims, correction=0)
    sigma_batch, sigma = torch.sqrt(var), torch.sqrt(running_var)
    r = (sigma_batch / sigma).clamp(1 / r_max, r_max).detach()
    d = ((mean - running_mean) / sigma).clamp(-d_max, d_max).detach()
    y = (x - mean.view(shape)) / sigma_batch.view(shape) * r.view(shape) + d.view(shape)
    y = y if weight is None else y * weight.view(shape)
    return y if bias is None else y + bias.view(shape)
""", "test_batch_renorm_train_values"),
        ("inverts r", """
def batch_renorm_train(x, running_mean, running_var, weight, bias, r_max, d_max, eps=1e-5):
    dims = [0] + list(range(2, x.dim()))
    shape = (1, -1) + (1,) * (x.dim() - 2)
    var, mean = torch.var_mean(x, dim=dims, correction=0)
    sigma_batch, sigma = torch.sqrt(var + eps), torch.sqrt(running_var + eps)
    r = (sigma / sigma_batch).clamp(1 / r_max, r_max).detach()
    d = ((mean - running_mean) / sigma).clamp(-d_max, d_max).detach()
    y = (x - mean.view(shape)) / sigma_batch.view(shape) * r.view(shape) + d.view(shape)
    y = y if weight is None else y * weight.view(shape)
    return y if bias is None else y + bias.view(shape)
""", "test_batch_renorm_train_values"),
        ("divides d by the batch sigma", """
def batch_renorm_train(x, running_mean, running_var, weight, bias, r_max, d_max, eps=1e-5):
    dims = [0] + list(range(2, x.dim()))
    shape = (1, -1) + (1,) * (x.dim() - 2)
    var, mean = torch.var_mean(x, dim=dims, correction=0)
    sigma_batch, sigma = torch.sqrt(var + eps), torch.sqrt(running_var + eps)
    r = (sigma_batch / sigma).clamp(1 / r_max, r_max).detach()
    d = ((mean - running_mean) / sigma_batch).clamp(-d_max, d_max).detach()
    y = (x - mean.view(shape)) / sigma_batch.view(shape) * r.view(shape) + d.view(shape)
    y = y if weight is None else y * weight.view(shape)
    return y if bias is None else y + bias.view(shape)
""", "test_batch_renorm_train_values"),
        ("is plain BatchNorm (ignores the running statistics)", """
def batch_renorm_train(x, running_mean, running_var, weight, bias, r_max, d_max, eps=1e-5):
    return F.batch_norm(x, None, None, weight, bias, training=True, eps=eps)
""", "test_batch_renorm_train_values"),
        ("clips r to (0, r_max] instead of [1 / r_max, r_max]", """
def batch_renorm_train(x, running_mean, running_var, weight, bias, r_max, d_max, eps=1e-5):
    dims = [0] + list(range(2, x.dim()))
    shape = (1, -1) + (1,) * (x.dim() - 2)
    var, mean = torch.var_mean(x, dim=dims, correction=0)
    sigma_batch, sigma = torch.sqrt(var + eps), torch.sqrt(running_var + eps)
    r = (sigma_batch / sigma).clamp(max=r_max).detach()
    d = ((mean - running_mean) / sigma).clamp(-d_max, d_max).detach()
    y = (x - mean.view(shape)) / sigma_batch.view(shape) * r.view(shape) + d.view(shape)
    if weight is not None:
        y = y * weight.view(shape)
    if bias is not None:
        y = y + bias.view(shape)
    return y
""", "test_batch_renorm_train_values"),
        ("clips d to [0, d_max] instead of [-d_max, d_max]", """
def batch_renorm_train(x, running_mean, running_var, weight, bias, r_max, d_max, eps=1e-5):
    dims = [0] + list(range(2, x.dim()))
    shape = (1, -1) + (1,) * (x.dim() - 2)
    var, mean = torch.var_mean(x, dim=dims, correction=0)
    sigma_batch, sigma = torch.sqrt(var + eps), torch.sqrt(running_var + eps)
    r = (sigma_batch / sigma).clamp(1 / r_max, r_max).detach()
    d = ((mean - running_mean) / sigma).clamp(0, d_max).detach()
    y = (x - mean.view(shape)) / sigma_batch.view(shape) * r.view(shape) + d.view(shape)
    if weight is not None:
        y = y * weight.view(shape)
    if bias is not None:
        y = y + bias.view(shape)
    return y
""", "test_batch_renorm_train_values"),
        ("uses Keras' default epsilon 1e-3 (right whenever eps is passed)", """
def batch_renorm_train(x, running_mean, running_var, weight, bias, r_max, d_max, eps=1e-3):
    dims = [0] + list(range(2, x.dim()))
    shape = (1, -1) + (1,) * (x.dim() - 2)
    var, mean = torch.var_mean(x, dim=dims, correction=0)
    sigma_batch, sigma = torch.sqrt(var + eps), torch.sqrt(running_var + eps)
    r = (sigma_batch / sigma).clamp(1 / r_max, r_max).detach()
    d = ((mean - running_mean) / sigma).clamp(-d_max, d_max).detach()
    y = (x - mean.view(shape)) / sigma_batch.view(shape) * r.view(shape) + d.view(shape)
    y = y if weight is None else y * weight.view(shape)
    return y if bias is None else y + bias.view(shape)
""", "test_batch_renorm_train_defaults", "only"),
    ],
    "ghost_batch_norm": [
        ("makes ghost_batch_size chunks (x.chunk) instead of chunks of that size", """
def ghost_batch_norm(x, ghost_batch_size, weight=None, bias=None, eps=1e-5):
    return torch.cat([F.batch_norm(c, None, None, weight, bias, training=True, eps=eps) for c in x.chunk(ghost_batch_size)])
""", "test_ghost_batch_norm_values"),
        ("normalizes the whole batch", """
def ghost_batch_norm(x, ghost_batch_size, weight=None, bias=None, eps=1e-5):
    return F.batch_norm(x, None, None, weight, bias, training=True, eps=eps)
""", "test_ghost_batch_norm_values"),
        ("drops the last, smaller chunk", """
def ghost_batch_norm(x, ghost_batch_size, weight=None, bias=None, eps=1e-5):
    full = len(x) // ghost_batch_size * ghost_batch_size
    chunks = x[:full].split(ghost_batch_size)
    return torch.cat([F.batch_norm(c, None, None, weight, bias, training=True, eps=eps) for c in chunks])
""", "test_ghost_batch_norm_uneven", "only"),
        ("merges the last, smaller chunk into the one before", """
def ghost_batch_norm(x, ghost_batch_size, weight=None, bias=None, eps=1e-5):
    chunks = x.tensor_split(max(1, len(x) // ghost_batch_size))
    return torch.cat([F.batch_norm(c, None, None, weight, bias, training=True, eps=eps) for c in chunks])
""", "test_ghost_batch_norm_uneven", "only"),
        ("uses the unbiased variance in each chunk", """
def ghost_batch_norm(x, ghost_batch_size, weight=None, bias=None, eps=1e-5):
    dims = [0] + list(range(2, x.dim()))
    shape = (1, -1) + (1,) * (x.dim() - 2)
    outputs = []
    for chunk in x.split(ghost_batch_size):
        y = (chunk - chunk.mean(dim=dims, keepdim=True)) / torch.sqrt(chunk.var(dim=dims, keepdim=True) + eps)
        y = y if weight is None else y * weight.view(shape)
        outputs.append(y if bias is None else y + bias.view(shape))
    return torch.cat(outputs)
""", "test_ghost_batch_norm_values"),
        ("forgets weight and bias", """
def ghost_batch_norm(x, ghost_batch_size, weight=None, bias=None, eps=1e-5):
    return torch.cat([F.batch_norm(c, None, None, training=True, eps=eps) for c in x.split(ghost_batch_size)])
""", "test_ghost_batch_norm_values"),
        ("makes N // ghost_batch_size chunks with x.chunk (right only when ghost_batch_size divides N)", """
def ghost_batch_norm(x, ghost_batch_size, weight=None, bias=None, eps=1e-5):
    chunks = torch.chunk(x, max(len(x) // ghost_batch_size, 1))
    return torch.cat([F.batch_norm(chunk, None, None, weight, bias, training=True, eps=eps) for chunk in chunks])
""", "test_ghost_batch_norm_uneven", "only"),
        ("makes ceil(N / ghost_batch_size) chunks with x.chunk, as a popular Ghost BatchNorm does (chunks may be smaller)", """
def ghost_batch_norm(x, ghost_batch_size, weight=None, bias=None, eps=1e-5):
    chunks = x.chunk(math.ceil(x.shape[0] / ghost_batch_size), 0)
    return torch.cat([F.batch_norm(chunk, None, None, weight, bias, training=True, eps=eps) for chunk in chunks])
""", "test_ghost_batch_norm_uneven", "only"),
    ],
}

CORRECT = {
    "values_per_channel": [
        ("the number of elements divided by the channels", """
def values_per_channel(shape):
    return torch.Size(shape).numel() // shape[1]
"""),
        ("a loop that skips dimension 1", """
def values_per_channel(shape):
    count = 1
    for dim, size in enumerate(shape):
        if dim != 1:
            count *= size
    return int(count)
"""),
    ],
    "bn_training_raises": [
        ("asks torch itself", """
def bn_training_raises(shape):
    try:
        F.batch_norm(torch.zeros(tuple(shape)), None, None, training=True)
    except ValueError:
        return True
    return False
"""),
        ("one sample and every position axis of size 1", """
def bn_training_raises(shape):
    return bool(shape[0] == 1 and all(size == 1 for size in shape[2:]))
"""),
    ],
    "instance_norm_training_raises": [
        ("asks torch itself", """
def instance_norm_training_raises(shape):
    try:
        torch.nn.functional.instance_norm(torch.ones(tuple(shape)))
        return False
    except ValueError:
        return True
"""),
        ("every position axis of size 1 (none for (N, C))", """
def instance_norm_training_raises(shape):
    return all(size == 1 for size in list(shape)[2:])
"""),
    ],
    "batch_of_one_accuracies": [
        ("saves the state_dict and every module's mode, measures on the model itself, restores both", """
def batch_of_one_accuracies(model, images, labels):
    saved = {name: tensor.clone() for name, tensor in model.state_dict().items()}
    modes = {name: layer.training for name, layer in model.named_modules()}
    accuracies = {}
    try:
        with torch.no_grad():
            for mode in ("train_mode", "eval_mode"):
                model.eval()
                for layer in model.modules():
                    if isinstance(layer, nn.modules.batchnorm._BatchNorm):
                        layer.train(mode == "train_mode")
                predictions = torch.cat([model(images[i:i + 1]) for i in range(len(images))]).argmax(dim=1)
                accuracies[mode] = (predictions == labels).double().mean().item()
                model.load_state_dict(saved)
    finally:
        model.load_state_dict(saved)
        for name, layer in model.named_modules():
            layer.training = modes[name]
    return accuracies
"""),
        ('eval mode first, then train mode, on one copy', """
def batch_of_one_accuracies(model, images, labels):
    scored = copy.deepcopy(model).eval()
    with torch.no_grad():
        eval_accuracy = sum(int(scored(images[i:i + 1]).argmax() == labels[i]) for i in range(len(labels))) / len(labels)
        for layer in scored.modules():
            if type(layer).__name__.startswith("BatchNorm"):
                layer.train()
        hits = [int(scored(image.unsqueeze(0)).argmax() == label) for image, label in zip(images, labels)]
    return {"eval_mode": eval_accuracy, "train_mode": sum(hits) / len(hits)}
"""),
    ],
    "batch_renorm_train": [
        ("torch's BatchNorm for the normalized x, r and d under no_grad", """
def batch_renorm_train(x, running_mean, running_var, weight, bias, r_max, d_max, eps=1e-5):
    shape = (1, -1) + (1,) * (x.dim() - 2)
    dims = [0] + list(range(2, x.dim()))
    with torch.no_grad():
        mean = x.mean(dim=dims)
        std = (x.var(dim=dims, unbiased=False) + eps).sqrt()
        running_std = (running_var + eps).sqrt()
        r = torch.clamp(std / running_std, min=1.0 / r_max, max=r_max)
        d = torch.clamp((mean - running_mean) / running_std, min=-d_max, max=d_max)
    y = F.batch_norm(x, None, None, training=True, eps=eps) * r.view(shape) + d.view(shape)
    if weight is not None:
        y = y * weight.view(shape)
    if bias is not None:
        y = y + bias.view(shape)
    return y
"""),
        ("channel-first rows, rsqrt, and minimum/maximum for the clipping", """
def batch_renorm_train(x, running_mean, running_var, weight, bias, r_max, d_max, eps=1e-5):
    c = x.shape[1]
    rows = x.transpose(0, 1).reshape(c, -1)
    mean = rows.mean(dim=1)
    centered = rows - mean[:, None]
    inv_batch = torch.rsqrt((centered * centered).mean(dim=1) + eps)
    inv_running = torch.rsqrt(running_var + eps)
    r = (inv_running / inv_batch).detach()
    r = torch.maximum(torch.minimum(r, torch.full_like(r, r_max)), torch.full_like(r, 1.0 / r_max))
    d = ((mean - running_mean) * inv_running).detach()
    d = torch.maximum(torch.minimum(d, torch.full_like(d, d_max)), torch.full_like(d, -d_max))
    out = centered * (inv_batch * r)[:, None] + d[:, None]
    if weight is not None:
        out = out * weight[:, None]
    if bias is not None:
        out = out + bias[:, None]
    return out.reshape(c, x.shape[0], *x.shape[2:]).transpose(0, 1)
"""),
    ],
    "ghost_batch_norm": [
        ("a loop over start indices with var_mean", """
def ghost_batch_norm(x, ghost_batch_size, weight=None, bias=None, eps=1e-5):
    dims = [0] + list(range(2, x.dim()))
    shape = (1, -1) + (1,) * (x.dim() - 2)
    pieces = []
    for start in range(0, x.shape[0], ghost_batch_size):
        chunk = x[start:start + ghost_batch_size]
        var, mean = torch.var_mean(chunk, dim=dims, correction=0, keepdim=True)
        pieces.append((chunk - mean) / torch.sqrt(var + eps))
    y = torch.cat(pieces, dim=0)
    if weight is not None:
        y = y * weight.view(shape)
    if bias is not None:
        y = y + bias.view(shape)
    return y
"""),
        ("full chunks at once by reshaping, the rest on its own", """
def ghost_batch_norm(x, ghost_batch_size, weight=None, bias=None, eps=1e-5):
    n, c = x.shape[0], x.shape[1]
    g = min(ghost_batch_size, n)
    full = n // g * g
    parts = []
    for block, groups in ((x[:full], full // g), (x[full:], 1)):
        if len(block) == 0:
            continue
        grouped = block.reshape(groups, len(block) // groups, c, -1)
        var, mean = torch.var_mean(grouped, dim=(1, 3), correction=0, keepdim=True)
        parts.append(((grouped - mean) / torch.sqrt(var + eps)).reshape(block.shape))
    y = torch.cat(parts)
    scale_shape = (1, c) + (1,) * (x.dim() - 2)
    if weight is not None:
        y = y * weight.reshape(scale_shape)
    if bias is not None:
        y = y + bias.reshape(scale_shape)
    return y
"""),
    ],
}
