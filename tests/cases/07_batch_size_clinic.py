"""Answers for 07_batch_size_clinic that the grader must score correctly (see 00's file for the format)."""

from batchcourse.grading import edited


# A correct diagnose written plainly; several wrong answers are this function with one mistake edited in, so that each
# entry shows exactly what is wrong.
PLAIN_DIAGNOSE = """
def diagnose(model, x):
    causes = set()
    with torch.random.fork_rng(), torch.no_grad():
        probe = copy.deepcopy(model)
        full = probe(x)
        if not torch.equal(probe(x), full):
            causes.add("random")
        wide, x64 = copy.deepcopy(model).double(), x.double()
        torch.manual_seed(0)
        a = wide(x64)[:1]
        torch.manual_seed(0)
        if not torch.allclose(wide(torch.cat([x64[:1], x64[1:] * 3 + 1]))[:1], a, rtol=1e-7, atol=1e-9):
            causes.add("crosstalk")
        if causes:
            return causes
        full64 = wide(x64)
        for k in range(1, len(x)):
            if not torch.equal(probe(x[:k]), full[:k]):
                if not torch.allclose(wide(x64[:k]), full64[:k], rtol=1e-7, atol=1e-9):
                    return {"crosstalk"}
                causes.add("floating_point")
    return causes
"""
PLAIN_DIAGNOSE_LOOP = """        full64 = wide(x64)
        for k in range(1, len(x)):
            if not torch.equal(probe(x[:k]), full[:k]):
                if not torch.allclose(wide(x64[:k]), full64[:k], rtol=1e-7, atol=1e-9):
                    return {"crosstalk"}
                causes.add("floating_point")
"""


WRONG = {
    "diagnose": [
        ("returns a dict of bools, as diagnose_layer in 01 did", """
def diagnose(model, x):
    found = {"crosstalk": False, "random": False, "floating_point": False}
    with torch.random.fork_rng(), torch.no_grad():
        probe = copy.deepcopy(model)
        full = probe(x)
        found["random"] = not torch.equal(probe(x), full)
        wide, x64 = copy.deepcopy(model).double(), x.double()
        torch.manual_seed(0)
        a = wide(x64)[:1]
        torch.manual_seed(0)
        b = wide(torch.cat([x64[:1], x64[1:] * 3 + 1]))[:1]
        found["crosstalk"] = not torch.allclose(a, b, rtol=1e-7, atol=1e-9)
        if not found["random"] and not found["crosstalk"]:
            found["floating_point"] = any(not torch.equal(probe(x[:k]), full[:k]) for k in range(1, len(x)))
    return found
""", "test_diagnose_causes"),
        ("compares with allclose everywhere, so rounding is never reported", """
def diagnose(model, x):
    causes = set()
    with torch.random.fork_rng(), torch.no_grad():
        probe = copy.deepcopy(model)
        full = probe(x)
        if not torch.allclose(probe(x), full):
            causes.add("random")
        torch.manual_seed(0)
        a = probe(x)[:1]
        torch.manual_seed(0)
        b = probe(torch.cat([x[:1], x[1:] * 3 + 1]))[:1]
        if not torch.allclose(a, b, atol=1e-5):
            causes.add("crosstalk")
        if not causes and any(not torch.allclose(probe(x[:k]), full[:k], atol=1e-5) for k in range(1, len(x))):
            causes.add("crosstalk")
    return causes
""", "test_diagnose_rounding"),
        ("reports floating_point next to crosstalk or randomness", """
def diagnose(model, x):
    causes = set()
    with torch.random.fork_rng(), torch.no_grad():
        probe = copy.deepcopy(model)
        full = probe(x)
        if not torch.equal(probe(x), full):
            causes.add("random")
        wide, x64 = copy.deepcopy(model).double(), x.double()
        torch.manual_seed(0)
        a = wide(x64)[:1]
        torch.manual_seed(0)
        b = wide(torch.cat([x64[:1], x64[1:] * 3 + 1]))[:1]
        if not torch.allclose(a, b, rtol=1e-7, atol=1e-9):
            causes.add("crosstalk")
        for k in range(1, len(x)):
            try:
                if not torch.equal(probe(x[:k]), full[:k]):
                    causes.add("floating_point")
            except ValueError:
                causes.add("floating_point")
    return causes
""", "test_diagnose_causes"),
        ("seeds both calls of the randomness check the same way, so Dropout never looks random", edited(PLAIN_DIAGNOSE, 
            ("        full = probe(x)\n",
             "        torch.manual_seed(0)\n        full = probe(x)\n        torch.manual_seed(0)\n")), "test_diagnose_causes"),
        ("calls the model itself, so BatchNorm's running statistics change", """
def diagnose(model, x):
    causes = set()
    with torch.random.fork_rng(), torch.no_grad():
        full = model(x)
        if not torch.equal(model(x), full):
            causes.add("random")
        torch.manual_seed(0)
        a = model(x)[:1]
        torch.manual_seed(0)
        if not torch.allclose(model(torch.cat([x[:1], x[1:] * 3 + 1]))[:1], a, rtol=1e-4, atol=1e-5):
            causes.add("crosstalk")
        if causes:
            return causes
        for k in range(1, len(x)):
            if not torch.equal(model(x[:k]), full[:k]):
                causes.add("floating_point")
    return causes
""", "test_diagnose_leaves_model"),
        ("seeds the global random generator and leaves it seeded", edited(PLAIN_DIAGNOSE, 
            ("with torch.random.fork_rng(), torch.no_grad():", "with torch.no_grad():")), "test_diagnose_leaves_model"),
        ("looks for rounding only at k = N // 2", edited(PLAIN_DIAGNOSE, 
            (PLAIN_DIAGNOSE_LOOP, """        k = len(x) // 2
        if not torch.equal(probe(x[:k]), full[:k]):
            if torch.allclose(wide(x64[:k]), wide(x64)[:k], rtol=1e-7, atol=1e-9):
                causes.add("floating_point")
            else:
                causes.add("crosstalk")
""")), "test_diagnose_rounding"),
        ("tells crosstalk by comparing batches of different sizes, so Dropout's new mask looks like crosstalk", """
def diagnose(model, x):
    causes = set()
    with torch.random.fork_rng(), torch.no_grad():
        probe = copy.deepcopy(model)
        full = probe(x)
        if not torch.equal(probe(x), full):
            causes.add("random")
        wide, x64 = copy.deepcopy(model).double(), x.double()
        torch.manual_seed(0)
        full64 = wide(x64)
        for k in range(1, len(x)):
            torch.manual_seed(0)
            if not torch.allclose(wide(x64[:k]), full64[:k], rtol=1e-7, atol=1e-9):
                causes.add("crosstalk")
        if not causes and any(not torch.equal(probe(x[:k]), full[:k]) for k in range(1, len(x))):
            causes.add("floating_point")
    return causes
""", "test_diagnose_causes"),
        ("changes the other samples but never removes them, so a layer that counts them is missed", edited(PLAIN_DIAGNOSE, 
            ("        if causes:\n            return causes\n" + PLAIN_DIAGNOSE_LOOP,
             """        if not causes and any(not torch.equal(probe(x[:k]), full[:k]) for k in range(1, len(x))):
            causes.add("floating_point")
""")), "test_diagnose_causes", "only"),
    ],
    "batch_invariant_linear": [
        ("just calls F.linear", """
def batch_invariant_linear(x, weight, bias=None):
    return F.linear(x, weight, bias)
""", "test_batch_invariant_linear_rows"),
        ("a matrix product, x @ weight.T + bias", """
def batch_invariant_linear(x, weight, bias=None):
    out = x @ weight.T
    return out if bias is None else out + bias
""", "test_batch_invariant_linear_rows"),
        ("calls F.linear with torch.use_deterministic_algorithms(True)", """
def batch_invariant_linear(x, weight, bias=None):
    before = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True)
    try:
        return F.linear(x, weight, bias)
    finally:
        torch.use_deterministic_algorithms(before)
""", "test_batch_invariant_linear_rows"),
        ("forgets the bias", """
def batch_invariant_linear(x, weight, bias=None):
    return (x[:, None, :] * weight[None, :, :]).sum(dim=-1)
""", "test_batch_invariant_linear_values"),
        ("adds the bias to every product before the sum", """
def batch_invariant_linear(x, weight, bias=None):
    products = x[:, None, :] * weight[None, :, :]
    if bias is not None:
        products = products + bias[None, :, None]
    return products.sum(dim=-1)
""", "test_batch_invariant_linear_values"),
        ("rounds F.linear's result to 5 decimals to hide the last bits", """
def batch_invariant_linear(x, weight, bias=None):
    return torch.round(F.linear(x, weight, bias), decimals=5)
""", "test_batch_invariant_linear_rows"),
        ("computes F.linear in float64 and rounds back, hoping rounding hides the difference", """
def batch_invariant_linear(x, weight, bias=None):
    wide = F.linear(x.double(), weight.double(), None if bias is None else bias.double())
    return wide.to(x.dtype)
""", "test_batch_invariant_linear_rows", "only"),
    ],
    "eval_transform": [
        ("returns the training pipeline unchanged", """
def eval_transform(train_transform):
    return train_transform
""", "test_eval_transform_steps"),
        ("drops every step whose name starts with Random, the crops too", """
def eval_transform(train_transform):
    family = v2 if isinstance(train_transform, v2.Transform) else T
    drop = ("Random", "ColorJitter", "GaussianBlur", "ElasticTransform", "AutoAugment", "RandAugment", "TrivialAugmentWide", "AugMix")
    steps = []
    for step in train_transform.transforms:
        if type(step).__name__ == "Compose":
            steps.extend(eval_transform(step).transforms)
        elif not type(step).__name__.startswith(drop):
            steps.append(step)
    return family.Compose(steps)
""", "test_eval_transform_steps"),
        ("turns RandomResizedCrop into a CenterCrop alone, without the Resize", """
def eval_transform(train_transform):
    family = v2 if isinstance(train_transform, v2.Transform) else T
    drop = ("Random", "ColorJitter", "GaussianBlur", "ElasticTransform", "AutoAugment", "RandAugment", "TrivialAugmentWide", "AugMix")
    steps = []
    for step in train_transform.transforms:
        name = type(step).__name__
        if name == "Compose":
            steps.extend(eval_transform(step).transforms)
        elif name in ("RandomCrop", "RandomResizedCrop"):
            steps.append(family.CenterCrop(step.size))
        elif not name.startswith(drop):
            steps.append(step)
    return family.Compose(steps)
""", "test_eval_transform_steps"),
        ("resizes to the crop size itself before the centre crop (no 8/7 margin)", """
def eval_transform(train_transform):
    family = v2 if isinstance(train_transform, v2.Transform) else T
    drop = ("Random", "ColorJitter", "GaussianBlur", "ElasticTransform", "AutoAugment", "RandAugment", "TrivialAugmentWide", "AugMix")
    steps = []
    for step in train_transform.transforms:
        name = type(step).__name__
        if name == "Compose":
            steps.extend(eval_transform(step).transforms)
        elif name == "RandomCrop":
            steps.append(family.CenterCrop(step.size))
        elif name == "RandomResizedCrop":
            steps += [family.Resize(max(step.size), interpolation=step.interpolation), family.CenterCrop(step.size)]
        elif not name.startswith(drop):
            steps.append(step)
    return family.Compose(steps)
""", "test_eval_transform_steps"),
        ("drops only flips and rotations, as if colour jitter and erasing were harmless", """
def eval_transform(train_transform):
    family = v2 if isinstance(train_transform, v2.Transform) else T
    steps = []
    for step in train_transform.transforms:
        name = type(step).__name__
        if name == "Compose":
            steps.extend(eval_transform(step).transforms)
        elif name == "RandomCrop":
            steps.append(family.CenterCrop(step.size))
        elif name == "RandomResizedCrop":
            steps += [family.Resize(max(step.size) * 8 // 7, interpolation=step.interpolation), family.CenterCrop(step.size)]
        elif name not in ("RandomHorizontalFlip", "RandomVerticalFlip", "RandomRotation"):
            steps.append(step)
    return family.Compose(steps)
""", "test_eval_transform_steps", "only"),
        ("always builds a torchvision.transforms (v1) pipeline", """
def eval_transform(train_transform):
    drop = ("Random", "ColorJitter", "GaussianBlur", "ElasticTransform", "AutoAugment", "RandAugment", "TrivialAugmentWide", "AugMix")
    steps = []
    for step in train_transform.transforms:
        name = type(step).__name__
        if name == "Compose":
            steps.extend(eval_transform(step).transforms)
        elif name == "RandomCrop":
            steps.append(T.CenterCrop(step.size))
        elif name == "RandomResizedCrop":
            steps += [T.Resize(max(step.size) * 8 // 7, interpolation=step.interpolation), T.CenterCrop(step.size)]
        elif not name.startswith(drop):
            steps.append(step)
    return T.Compose(steps)
""", "test_eval_transform_family"),
        ("keeps a nested Compose as it is, random crop inside included", """
def eval_transform(train_transform):
    family = v2 if isinstance(train_transform, v2.Transform) else T
    drop = ("Random", "ColorJitter", "GaussianBlur", "ElasticTransform", "AutoAugment", "RandAugment", "TrivialAugmentWide", "AugMix")
    steps = []
    for step in train_transform.transforms:
        name = type(step).__name__
        if name == "RandomCrop":
            steps.append(family.CenterCrop(step.size))
        elif name == "RandomResizedCrop":
            steps += [family.Resize(max(step.size) * 8 // 7, interpolation=step.interpolation), family.CenterCrop(step.size)]
        elif not name.startswith(drop):
            steps.append(step)
    return family.Compose(steps)
""", "test_eval_transform_steps", "only"),
    ],
}

CORRECT = {
    "diagnose": [
        ("saves and restores the state and the generator instead of copying, and perturbs with other values", """
def diagnose(model, x):
    saved = {name: t.clone() for name, t in model.state_dict().items()}
    floating = [t.dtype for t in saved.values() if t.is_floating_point()]
    own_dtype = floating[0] if floating else x.dtype
    modes = {m: m.training for m in model.modules()}
    rng = torch.get_rng_state()
    x64 = x.to(torch.float64)

    def run(inputs, dtype, seed=None):
        model.to(dtype)
        model.load_state_dict(saved)
        if seed is not None:
            torch.manual_seed(seed)
        with torch.no_grad():
            return model(inputs.to(dtype))

    def beyond_rounding(a, b):
        return bool((a - b).abs().max() > 1e-8 * (1 + b.abs().max()))

    try:
        first = run(x, own_dtype)
        random = not torch.equal(run(x, own_dtype), first)
        noise = torch.linspace(-3, 5, x64[1:].numel(), dtype=torch.float64).reshape(x64[1:].shape)
        base = run(x64, torch.float64, seed=42)
        moved = run(torch.cat([x64[:1], x64[1:].flip(0) * -2.0 + noise]), torch.float64, seed=42)
        if beyond_rounding(moved[:1], base[:1]):
            return {"crosstalk", "random"} if random else {"crosstalk"}
        if random:
            return {"random"}
        rounding = False
        for k in range(1, len(x)):
            if not torch.equal(run(x[:k], own_dtype), first[:k]):
                if beyond_rounding(run(x64[:k], torch.float64), base[:k]):
                    return {"crosstalk"}
                rounding = True
        return {"floating_point"} if rounding else set()
    finally:
        model.to(own_dtype)
        model.load_state_dict(saved)
        for module, training in modes.items():
            module.training = training
        torch.set_rng_state(rng)
"""),
        ("a fresh copy for every call, and crosstalk checked for every k by changing the samples after it", """
def diagnose(model, x):
    def call(inputs, dtype, seed=None):
        probe = copy.deepcopy(model).to(dtype)
        if seed is not None:
            torch.manual_seed(seed)
        with torch.no_grad():
            return probe(inputs.to(dtype))

    n = len(x)
    with torch.random.fork_rng():
        random = not torch.equal(call(x, x.dtype), call(x, x.dtype))
        crosstalk = False
        for k in range(1, n):
            others = torch.cat([x[:k], 2.0 - 4.0 * x[k:]])
            same = call(x, torch.float64, seed=7)[:k]
            changed = call(others, torch.float64, seed=7)[:k]
            if not torch.allclose(same, changed, rtol=1e-6, atol=1e-8):
                crosstalk = True
        verdict = {"random"} if random else set()
        if crosstalk:
            return verdict | {"crosstalk"}
        if random:
            return verdict
        full, full64 = call(x, x.dtype), call(x, torch.float64)
        differs = [k for k in range(1, n) if not torch.equal(call(x[:k], x.dtype), full[:k])]
        if any(not torch.allclose(call(x[:k], torch.float64), full64[:k], rtol=1e-6, atol=1e-8) for k in differs):
            return {"crosstalk"}
        return {"floating_point"} if differs else set()
"""),
    ],
    "batch_invariant_linear": [
        ("adds one input feature at a time with elementwise operations", """
def batch_invariant_linear(x, weight, bias=None):
    out = torch.zeros(x.shape[0], weight.shape[0], dtype=x.dtype)
    for j in range(x.shape[1]):
        out = out + x[:, j:j + 1] * weight[:, j]
    if bias is not None:
        out = out + bias
    return out
"""),
        ("broadcast products summed over the features", """
def batch_invariant_linear(x, weight, bias=None):
    out = torch.sum(x[:, None, :] * weight[None, :, :], dim=2)
    return out + bias if bias is not None else out
"""),
        ("sums the products in float64 and rounds back to the input's dtype", """
def batch_invariant_linear(x, weight, bias=None):
    products = x.to(torch.float64).unsqueeze(1) * weight.to(torch.float64).unsqueeze(0)
    out = products.sum(-1)
    if bias is not None:
        out = out + bias.to(torch.float64)
    return out.to(x.dtype)
"""),
    ],
    "eval_transform": [
        ("isinstance against both families, a work list for nested pipelines, int(size * 256 / 224)", """
def eval_transform(train_transform):
    is_v2 = isinstance(train_transform, v2.Transform)
    family = v2 if is_v2 else T
    random_kinds = (T.RandomHorizontalFlip, T.RandomVerticalFlip, T.RandomRotation, T.ColorJitter, T.RandomErasing,
                    T.RandomGrayscale, T.RandomApply, T.RandomAffine, T.TrivialAugmentWide, T.AutoAugment, T.RandAugment,
                    v2.RandomHorizontalFlip, v2.RandomVerticalFlip, v2.RandomRotation, v2.ColorJitter, v2.RandomErasing,
                    v2.RandomGrayscale, v2.RandomApply, v2.RandomAffine, v2.TrivialAugmentWide, v2.AutoAugment, v2.RandAugment)
    work, result = list(train_transform.transforms), []
    while work:
        step = work.pop(0)
        if isinstance(step, (T.Compose, v2.Compose)):
            work = list(step.transforms) + work
        elif isinstance(step, (T.RandomResizedCrop, v2.RandomResizedCrop)):
            h, w = step.size
            result.append(family.Resize(int(max(h, w) * 256 / 224), interpolation=step.interpolation, antialias=step.antialias))
            result.append(family.CenterCrop((h, w)))
        elif isinstance(step, (T.RandomCrop, v2.RandomCrop)):
            result.append(family.CenterCrop(tuple(step.size)))
        elif not isinstance(step, random_kinds):
            result.append(step)
    return family.Compose(result)
"""),
        ("a recursive helper that returns lists, and copies of the kept steps", """
def eval_transform(train_transform):
    module = v2 if type(train_transform).__module__.startswith("torchvision.transforms.v2") else T

    def convert(step):
        kind = type(step).__name__
        if kind == "Compose":
            return [s for inner in step.transforms for s in convert(inner)]
        if kind == "RandomResizedCrop":
            crop = list(step.size)
            return [module.Resize([max(crop) * 8 // 7], interpolation=step.interpolation, antialias=step.antialias),
                    module.CenterCrop(crop)]
        if kind == "RandomCrop":
            return [module.CenterCrop(list(step.size))]
        if kind.startswith("Random") or kind in {"ColorJitter", "GaussianBlur", "ElasticTransform", "AutoAugment",
                                                  "RandAugment", "TrivialAugmentWide", "AugMix"}:
            return []
        return [copy.deepcopy(step)]

    return module.Compose(convert(train_transform))
"""),
    ],
}
