"""Answers for 06_groupnorm_and_friends that the grader must score correctly (see 00's file for the format).

Round k grades entry k of every function together. The hidden tests of layer_norm_chw and instance_norm replace
`group_norm` by a correct, recording version while they run, so those two are graded on their own even where entry k
of group_norm is wrong.
"""

from batchcourse.grading import edited


# A plain from-scratch group_norm; most wrong answers below are this function with one mistake edited in.
PLAIN_GROUP_NORM = """
def group_norm(x, num_groups, weight=None, bias=None, eps=1e-5):
    n, c = x.shape[0], x.shape[1]
    if c % num_groups != 0:
        raise ValueError("the channels do not divide into the groups")
    rows = x.reshape(n, num_groups, -1)
    mean = rows.mean(dim=-1, keepdim=True)
    var = rows.var(dim=-1, unbiased=False, keepdim=True)
    y = ((rows - mean) / torch.sqrt(var + eps)).reshape(x.shape)
    view = [1, c] + [1] * (x.dim() - 2)
    if weight is not None:
        y = y * weight.reshape(view)
    if bias is not None:
        y = y + bias.reshape(view)
    return y
"""


WRONG = {
    "group_norm": [
        ("takes strided groups (channel c in group c % G) instead of blocks of consecutive channels", edited(PLAIN_GROUP_NORM, 
            ("rows = x.reshape(n, num_groups, -1)",
             "rows = x.reshape(n, c // num_groups, num_groups, -1).transpose(1, 2).reshape(n, num_groups, -1)"),
            ("y = ((rows - mean) / torch.sqrt(var + eps)).reshape(x.shape)",
             "y = ((rows - mean) / torch.sqrt(var + eps)).reshape(n, num_groups, c // num_groups, -1).transpose(1, 2).reshape(x.shape)")),
         "test_group_norm_values"),
        ("normalizes with the unbiased variance", edited(PLAIN_GROUP_NORM, ("unbiased=False", "unbiased=True")), "test_group_norm_values"),
        ("adds eps outside the square root", edited(PLAIN_GROUP_NORM, ("torch.sqrt(var + eps)", "(torch.sqrt(var) + eps)")),
         "test_group_norm_values"),
        ("applies weight and bias per group instead of per channel", edited(PLAIN_GROUP_NORM, 
            ("y = y * weight.reshape(view)", "y = y * weight[:num_groups].repeat_interleave(c // num_groups).reshape(view)"),
            ("y = y + bias.reshape(view)", "y = y + bias[:num_groups].repeat_interleave(c // num_groups).reshape(view)")),
         "test_group_norm_values"),
        ("takes the statistics over the batch too", edited(PLAIN_GROUP_NORM, 
            ("mean = rows.mean(dim=-1, keepdim=True)", "mean = rows.mean(dim=(0, 2), keepdim=True)"),
            ("var = rows.var(dim=-1, unbiased=False, keepdim=True)", "var = rows.var(dim=(0, 2), unbiased=False, keepdim=True)")),
         "test_group_norm_values"),
        ("forgets to reshape back to the shape of x (returns (N, C, H*W))", """
def group_norm(x, num_groups, weight=None, bias=None, eps=1e-5):
    n, c = x.shape[0], x.shape[1]
    if c % num_groups != 0:
        raise ValueError("the channels do not divide into the groups")
    rows = x.reshape(n, num_groups, -1)
    y = (rows - rows.mean(-1, keepdim=True)) / torch.sqrt(rows.var(-1, unbiased=False, keepdim=True) + eps)
    y = y.reshape(n, c, -1)
    if weight is not None:
        y = y * weight.reshape(1, c, 1)
    if bias is not None:
        y = y + bias.reshape(1, c, 1)
    return y
""", "test_group_norm_values"),
        ("never raises ValueError (reshape works whenever C·H·W divides by G)", edited(PLAIN_GROUP_NORM, 
            ("    if c % num_groups != 0:\n        raise ValueError(\"the channels do not divide into the groups\")\n", "")),
         "test_group_norm_error", "only"),
        ("calls torch's F.group_norm", """
def group_norm(x, num_groups, weight=None, bias=None, eps=1e-5):
    if x.shape[1] % num_groups != 0:
        raise ValueError("the channels do not divide into the groups")
    return F.group_norm(x, num_groups, weight, bias, eps)
""", "test_group_norm_values"),
        ("takes num_groups as the number of channels per group (right only when C == num_groups ** 2)", edited(PLAIN_GROUP_NORM, 
            ("rows = x.reshape(n, num_groups, -1)", "rows = x.reshape(n, c // num_groups, -1)")),
         "test_group_norm_values"),
        ("raises RuntimeError, as torch's F.group_norm does, where the task asks for ValueError", edited(PLAIN_GROUP_NORM,
            ('raise ValueError("the channels do not divide into the groups")',
             'raise RuntimeError(f"Expected number of channels in input to be divisible by num_groups, but got input of shape {list(x.shape)} and num_groups={num_groups}")')),
         "test_group_norm_error", "only"),
        ("the GroupNorm paper's recipe: reshapes to (N, G, C // G, ...) and lets reshape's RuntimeError through", """
def group_norm(x, num_groups, weight=None, bias=None, eps=1e-5):
    n, c, *rest = x.shape
    grouped = x.reshape(n, num_groups, c // num_groups, *rest)
    dims = tuple(range(2, grouped.dim()))
    mean = grouped.mean(dim=dims, keepdim=True)
    var = grouped.var(dim=dims, unbiased=False, keepdim=True)
    y = ((grouped - mean) / torch.sqrt(var + eps)).reshape(x.shape)
    view = [1, c] + [1] * len(rest)
    if weight is not None:
        y = y * weight.reshape(view)
    if bias is not None:
        y = y + bias.reshape(view)
    return y
""", "test_group_norm_error", "only"),
        ("applies weight and bias only when both are given", edited(PLAIN_GROUP_NORM,
            ("    if weight is not None:\n        y = y * weight.reshape(view)\n    if bias is not None:\n        y = y + bias.reshape(view)\n",
             "    if weight is not None and bias is not None:\n        y = y * weight.reshape(view) + bias.reshape(view)\n")),
         "test_group_norm_defaults", "only"),
        ("takes Keras's default epsilon, 1e-3", edited(PLAIN_GROUP_NORM,
            ("def group_norm(x, num_groups, weight=None, bias=None, eps=1e-5):", "def group_norm(x, num_groups, weight=None, bias=None, eps=1e-3):")),
         "test_group_norm_defaults"),
        ("detaches the mean and the variance, so the gradient misses their terms", edited(PLAIN_GROUP_NORM,
            ("mean = rows.mean(dim=-1, keepdim=True)", "mean = rows.mean(dim=-1, keepdim=True).detach()"),
            ("var = rows.var(dim=-1, unbiased=False, keepdim=True)", "var = rows.var(dim=-1, unbiased=False, keepdim=True).detach()")),
         "test_group_norm_gradient", "only"),
        ("normalizes in place through a view of x, which changes x", edited(PLAIN_GROUP_NORM,
            ("y = ((rows - mean) / torch.sqrt(var + eps)).reshape(x.shape)", "y = rows.sub_(mean).div_(torch.sqrt(var + eps)).reshape(x.shape)")),
         "test_group_norm_input_unchanged"),
    ],
    "layer_norm_chw": [
        ("uses one group per channel (that is InstanceNorm)", """
def layer_norm_chw(x, eps=1e-5):
    return group_norm(x, x.shape[1], eps=eps)
""", "test_layer_norm_chw_values"),
        ("computes LayerNorm directly instead of calling group_norm", """
def layer_norm_chw(x, eps=1e-5):
    dims = tuple(range(1, x.dim()))
    mean = x.mean(dim=dims, keepdim=True)
    var = x.var(dim=dims, unbiased=False, keepdim=True)
    return (x - mean) / torch.sqrt(var + eps)
""", "test_layer_norm_chw_calls_group_norm", "only"),
        ("calls torch's F.layer_norm", """
def layer_norm_chw(x, eps=1e-5):
    return F.layer_norm(x, x.shape[1:], eps=eps)
""", "test_layer_norm_chw_calls_group_norm", "only"),
        ("does not pass eps on", """
def layer_norm_chw(x, eps=1e-5):
    return group_norm(x, 1)
""", "test_layer_norm_chw_eps", "only"),
        ("normalizes the whole batch as one group", """
def layer_norm_chw(x, eps=1e-5):
    return group_norm(x.reshape(1, -1), 1, eps=eps).reshape(x.shape)
""", "test_layer_norm_chw_values"),
    ],
    "instance_norm": [
        ("uses one group (that is LayerNorm)", """
def instance_norm(x, eps=1e-5):
    return group_norm(x, 1, eps=eps)
""", "test_instance_norm_values"),
        ("computes InstanceNorm directly instead of calling group_norm", """
def instance_norm(x, eps=1e-5):
    dims = tuple(range(2, x.dim()))
    mean = x.mean(dim=dims, keepdim=True)
    var = x.var(dim=dims, unbiased=False, keepdim=True)
    return (x - mean) / torch.sqrt(var + eps)
""", "test_instance_norm_calls_group_norm", "only"),
        ("calls torch's F.instance_norm", """
def instance_norm(x, eps=1e-5):
    return F.instance_norm(x, eps=eps)
""", "test_instance_norm_calls_group_norm", "only"),
        ("does not pass eps on", """
def instance_norm(x, eps=1e-5):
    return group_norm(x, x.shape[1])
""", "test_instance_norm_eps", "only"),
        ("normalizes each channel over the whole batch (that is BatchNorm)", """
def instance_norm(x, eps=1e-5):
    n, c = x.shape[0], x.shape[1]
    per_channel = x.transpose(0, 1).reshape(1, c, -1)
    return group_norm(per_channel, c, eps=eps).reshape(c, n, *x.shape[2:]).transpose(0, 1)
""", "test_instance_norm_values"),
    ],
    "replace_batchnorm": [
        ("replaces BatchNorm2d only", """
def replace_batchnorm(module, make_norm):
    if isinstance(module, nn.BatchNorm2d):
        return make_norm(module.num_features)
    for name, child in module.named_children():
        setattr(module, name, replace_batchnorm(child, make_norm))
    return module
""", "test_replace_batchnorm_kinds", "only"),
        ("checks the exact types BatchNorm1d/2d/3d (misses SyncBatchNorm and subclasses)", """
def replace_batchnorm(module, make_norm):
    if type(module) in (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d):
        return make_norm(module.num_features)
    for name, child in module.named_children():
        setattr(module, name, replace_batchnorm(child, make_norm))
    return module
""", "test_replace_batchnorm_kinds", "only"),
        ("replaces the direct children only", """
def replace_batchnorm(module, make_norm):
    if isinstance(module, nn.modules.batchnorm._BatchNorm):
        return make_norm(module.num_features)
    for name, child in module.named_children():
        if isinstance(child, nn.modules.batchnorm._BatchNorm):
            setattr(module, name, make_norm(child.num_features))
    return module
""", "test_replace_batchnorm_tree", "only"),
        ("sets dotted names from named_modules() on the root", """
def replace_batchnorm(module, make_norm):
    if isinstance(module, nn.modules.batchnorm._BatchNorm):
        return make_norm(module.num_features)
    for name, child in list(module.named_modules()):
        if isinstance(child, nn.modules.batchnorm._BatchNorm):
            setattr(module, name, make_norm(child.num_features))
    return module
""", "test_replace_batchnorm_tree", "only"),
        ("never replaces the root", """
def replace_batchnorm(module, make_norm):
    for name, child in module.named_children():
        if isinstance(child, nn.modules.batchnorm._BatchNorm):
            setattr(module, name, make_norm(child.num_features))
        else:
            replace_batchnorm(child, make_norm)
    return module
""", "test_replace_batchnorm_root", "only"),
        ("also replaces InstanceNorm layers (any _NormBase)", """
def replace_batchnorm(module, make_norm):
    if isinstance(module, nn.modules.batchnorm._NormBase):
        return make_norm(module.num_features)
    for name, child in module.named_children():
        setattr(module, name, replace_batchnorm(child, make_norm))
    return module
""", "test_replace_batchnorm_kinds", "only"),
        ("deletes and re-adds the layer, which moves it to the end", """
def replace_batchnorm(module, make_norm):
    if isinstance(module, nn.modules.batchnorm._BatchNorm):
        return make_norm(module.num_features)
    for name, child in list(module.named_children()):
        if isinstance(child, nn.modules.batchnorm._BatchNorm):
            delattr(module, name)
            module.add_module(name, make_norm(child.num_features))
        else:
            replace_batchnorm(child, make_norm)
    return module
""", "test_replace_batchnorm_tree"),
        ("reads num_features from the weight (fails for affine=False)", """
def replace_batchnorm(module, make_norm):
    if isinstance(module, nn.modules.batchnorm._BatchNorm):
        return make_norm(module.weight.shape[0])
    for name, child in module.named_children():
        setattr(module, name, replace_batchnorm(child, make_norm))
    return module
""", "test_replace_batchnorm_kinds", "only"),
        ("works on a copy instead of in place", """
def replace_batchnorm(module, make_norm):
    if isinstance(module, nn.modules.batchnorm._BatchNorm):
        return make_norm(module.num_features)
    module = copy.deepcopy(module)
    for name, child in module.named_children():
        setattr(module, name, replace_batchnorm(child, make_norm))
    return module
""", "test_replace_batchnorm_in_place"),
    ],
}

CORRECT = {
    "group_norm": [
        ("a 5-D view with var_mean, rsqrt and addcmul", """
def group_norm(x, num_groups, weight=None, bias=None, eps=1e-5):
    n, c, *spatial = x.shape
    if c % num_groups:
        raise ValueError(f"{c} channels cannot be split into {num_groups} groups")
    grouped = x.view(n, num_groups, c // num_groups, *spatial)
    dims = tuple(range(2, grouped.dim()))
    var, mean = torch.var_mean(grouped, dim=dims, correction=0, keepdim=True)
    y = ((grouped - mean) * torch.rsqrt(var + eps)).view(x.shape)
    shape = (1, c) + (1,) * len(spatial)
    if weight is not None and bias is not None:
        return torch.addcmul(bias.view(shape), y, weight.view(shape))
    if weight is not None:
        y = y * weight.view(shape)
    if bias is not None:
        y = y + bias.view(shape)
    return y
"""),
        ("one group at a time, joined with torch.cat", """
def group_norm(x, num_groups, weight=None, bias=None, eps=1e-5):
    channels = x.size(1)
    if channels % num_groups != 0:
        raise ValueError("num_groups must divide the number of channels")
    parts = []
    for chunk in torch.split(x, channels // num_groups, dim=1):
        dims = list(range(1, chunk.dim()))
        centred = chunk - chunk.mean(dim=dims, keepdim=True)
        parts.append(centred / (centred.pow(2).mean(dim=dims, keepdim=True) + eps).sqrt())
    out = torch.cat(parts, dim=1)
    shape = [1, -1] + [1] * (x.dim() - 2)
    if weight is not None:
        out = out * weight.view(shape)
    if bias is not None:
        out = out + bias.view(shape)
    return out
"""),
        ("the plain version that the wrong answers start from", PLAIN_GROUP_NORM),
    ],
    "layer_norm_chw": [
        ("keyword arguments", """
def layer_norm_chw(x, eps=1e-5):
    return group_norm(x, num_groups=1, eps=eps)
"""),
        ("one group of one channel holding the whole image", """
def layer_norm_chw(x, eps=1e-5):
    return group_norm(x.reshape(x.shape[0], 1, -1), 1, None, None, eps).reshape(x.shape)
"""),
    ],
    "instance_norm": [
        ("keyword arguments", """
def instance_norm(x, eps=1e-5):
    return group_norm(x, num_groups=x.size(1), weight=None, bias=None, eps=eps)
"""),
        ("every channel of every image as one sample with one group", """
def instance_norm(x, eps=1e-5):
    n, c = x.shape[0], x.shape[1]
    return group_norm(x.reshape(n * c, 1, -1), 1, eps=eps).reshape(x.shape)
"""),
    ],
    "replace_batchnorm": [
        ("collects the BatchNorm layers first, then sets each on its parent", """
def replace_batchnorm(module, make_norm):
    kinds = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.SyncBatchNorm)
    if isinstance(module, kinds):
        return make_norm(module.num_features)
    found = [(name, layer) for name, layer in module.named_modules() if isinstance(layer, kinds)]
    for name, layer in found:
        parent_name, _, child_name = name.rpartition(".")
        setattr(module.get_submodule(parent_name), child_name, make_norm(layer.num_features))
    return module
"""),
        ("an inner recursive function writing into _modules", """
def replace_batchnorm(module, make_norm):
    def swap(layer):
        if isinstance(layer, torch.nn.modules.batchnorm._BatchNorm):
            return make_norm(layer.num_features)
        for key in list(layer._modules):
            if layer._modules[key] is not None:
                layer._modules[key] = swap(layer._modules[key])
        return layer
    return swap(module)
"""),
    ],
}
