"""Answers for 02_minibatch_gradients that the grader must score correctly (see 00's file for the format)."""

from batchcourse.grading import edited

# Plain correct answers; some wrong answers below are one of these with one mistake edited in.
LOOP_PER_SAMPLE = """
def per_sample_gradients(model, loss_fn, x, y):
    named = [(name, p) for name, p in model.named_parameters() if p.requires_grad]
    rows = [torch.autograd.grad(loss_fn(model(x[i:i + 1]), y[i:i + 1]), [p for _, p in named]) for i in range(len(x))]
    return {name: torch.stack([row[k] for row in rows]) for k, (name, _) in enumerate(named)}
"""

PLAIN_ACCUMULATE = """
def accumulate_gradients(model, loss_fn, x, y, micro_batch_size):
    model.zero_grad()
    n = len(x)
    total = 0.0
    for x_part, y_part in zip(x.split(micro_batch_size), y.split(micro_batch_size)):
        loss = loss_fn(model(x_part), y_part)
        (loss * len(x_part) / n).backward()
        total += loss.item() * len(x_part)
    return total / n
"""

WRONG = {
    "per_sample_gradients": [
        ("gives every sample the gradient of the whole batch", """
def per_sample_gradients(model, loss_fn, x, y):
    named = [(name, p) for name, p in model.named_parameters() if p.requires_grad]
    grads = torch.autograd.grad(loss_fn(model(x), y), [p for _, p in named])
    return {name: g.expand(len(x), *g.shape).clone() for (name, _), g in zip(named, grads)}
""", "test_per_sample_gradients_values"),
        ("lets .grad add up over the samples", """
def per_sample_gradients(model, loss_fn, x, y):
    rows = {name: [] for name, p in model.named_parameters() if p.requires_grad}
    model.zero_grad()
    for i in range(len(x)):
        loss_fn(model(x[i:i + 1]), y[i:i + 1]).backward()
        for name, p in model.named_parameters():
            if p.requires_grad:
                rows[name].append(p.grad.clone())
    return {name: torch.stack(r) for name, r in rows.items()}
""", "test_per_sample_gradients_values"),
        ("stores p.grad itself, not a copy", """
def per_sample_gradients(model, loss_fn, x, y):
    rows = {name: [] for name, p in model.named_parameters() if p.requires_grad}
    for i in range(len(x)):
        for p in model.parameters():
            if p.grad is not None:
                p.grad.zero_()
        loss_fn(model(x[i:i + 1]), y[i:i + 1]).backward()
        for name, p in model.named_parameters():
            if p.requires_grad:
                rows[name].append(p.grad)
    return {name: torch.stack(r) for name, r in rows.items()}
""", "test_per_sample_gradients_values"),
        ("divides each sample's gradient by the batch size", """
def per_sample_gradients(model, loss_fn, x, y):
    named = [(name, p) for name, p in model.named_parameters() if p.requires_grad]
    rows = [torch.autograd.grad(loss_fn(model(x[i:i + 1]), y[i:i + 1]), [p for _, p in named]) for i in range(len(x))]
    return {name: torch.stack([row[k] for row in rows]) / len(x) for k, (name, _) in enumerate(named)}
""", "test_per_sample_gradients_values"),
        ("includes frozen parameters (with zero gradients)", """
def per_sample_gradients(model, loss_fn, x, y):
    params = {name: p.detach() for name, p in model.named_parameters()}

    def loss_of_one(params, x_i, y_i):
        return loss_fn(torch.func.functional_call(model, params, (x_i.unsqueeze(0),)), y_i.unsqueeze(0))

    return torch.func.vmap(torch.func.grad(loss_of_one), in_dims=(None, 0, 0))(params, x, y)
""", "test_per_sample_gradients_values", "only"),
        ("returns a list of gradients, not a dict", """
def per_sample_gradients(model, loss_fn, x, y):
    params = [p for p in model.parameters() if p.requires_grad]
    rows = [torch.autograd.grad(loss_fn(model(x[i:i + 1]), y[i:i + 1]), params) for i in range(len(x))]
    return [torch.stack([row[k] for row in rows]) for k in range(len(params))]
""", "test_per_sample_gradients_values"),
        ("runs the whole batch through the model once (right only for a model without crosstalk)", """
def per_sample_gradients(model, loss_fn, x, y):
    named = [(name, p) for name, p in model.named_parameters() if p.requires_grad]
    output = model(x)
    rows = [torch.autograd.grad(loss_fn(output[i:i + 1], y[i:i + 1]), [p for _, p in named], retain_graph=True)
            for i in range(len(x))]
    return {name: torch.stack([row[k] for row in rows]) for k, (name, _) in enumerate(named)}
""", "test_per_sample_gradients_values", "only"),
        ("drops the sample dimension for a batch of one", edited(LOOP_PER_SAMPLE, 
            ("torch.stack([row[k] for row in rows])", "torch.stack([row[k] for row in rows]).squeeze(0)")), "test_per_sample_gradients_batch_of_one", "only"),
        ("puts the model in eval mode and leaves it there (the gradients are right)", """
def per_sample_gradients(model, loss_fn, x, y):
    model.eval()
    named = [(name, p) for name, p in model.named_parameters() if p.requires_grad]
    rows = [torch.autograd.grad(loss_fn(model(x[i:i + 1]), y[i:i + 1]), [p for _, p in named]) for i in range(len(x))]
    return {name: torch.stack([row[k] for row in rows]) for k, (name, _) in enumerate(named)}
""", "test_per_sample_gradients_leaves_model"),
        ("unfreezes the frozen parameters to take their gradients, and leaves them unfrozen", """
def per_sample_gradients(model, loss_fn, x, y):
    names = [name for name, p in model.named_parameters() if p.requires_grad]
    for p in model.parameters():
        p.requires_grad_(True)
    params = [p for _, p in model.named_parameters()]
    rows = [torch.autograd.grad(loss_fn(model(x[i:i + 1]), y[i:i + 1]), params) for i in range(len(x))]
    grads = {name: torch.stack([row[k] for row in rows]) for k, (name, _) in enumerate(model.named_parameters())}
    return {name: grads[name] for name in names}
""", "test_per_sample_gradients_leaves_model"),
    ],
    "accumulate_gradients": [
        ("adds the micro-batch mean losses without weighing them", """
def accumulate_gradients(model, loss_fn, x, y, micro_batch_size):
    model.zero_grad()
    total = 0.0
    for start in range(0, len(x), micro_batch_size):
        loss = loss_fn(model(x[start:start + micro_batch_size]), y[start:start + micro_batch_size])
        loss.backward()
        total += loss.item() * len(x[start:start + micro_batch_size])
    return total / len(x)
""", "test_accumulate_gradients_hidden"),
        ("divides by the number of micro-batches", """
def accumulate_gradients(model, loss_fn, x, y, micro_batch_size):
    model.zero_grad()
    parts = list(zip(x.split(micro_batch_size), y.split(micro_batch_size)))
    total = 0.0
    for xp, yp in parts:
        loss = loss_fn(model(xp), yp)
        (loss / len(parts)).backward()
        total += loss.item() * len(xp)
    return total / len(x)
""", "test_accumulate_gradients_hidden", "only"),
        ("keeps what was in .grad before", """
def accumulate_gradients(model, loss_fn, x, y, micro_batch_size):
    total = 0.0
    for xp, yp in zip(x.split(micro_batch_size), y.split(micro_batch_size)):
        loss = loss_fn(model(xp), yp)
        (loss * len(xp) / len(x)).backward()
        total += loss.item() * len(xp)
    return total / len(x)
""", "test_accumulate_gradients_old_grad", "only"),
        ("zeroes the gradients inside the loop", """
def accumulate_gradients(model, loss_fn, x, y, micro_batch_size):
    total = 0.0
    for xp, yp in zip(x.split(micro_batch_size), y.split(micro_batch_size)):
        model.zero_grad()
        loss = loss_fn(model(xp), yp)
        (loss * len(xp) / len(x)).backward()
        total += loss.item() * len(xp)
    return total / len(x)
""", "test_accumulate_gradients_hidden"),
        ("returns the plain mean of the micro-batch losses", """
def accumulate_gradients(model, loss_fn, x, y, micro_batch_size):
    model.zero_grad()
    losses = []
    for xp, yp in zip(x.split(micro_batch_size), y.split(micro_batch_size)):
        loss = loss_fn(model(xp), yp)
        (loss * len(xp) / len(x)).backward()
        losses.append(loss.detach())
    return torch.stack(losses).mean()
""", "test_accumulate_gradients_hidden", "only"),
        ("runs the whole batch at once", """
def accumulate_gradients(model, loss_fn, x, y, micro_batch_size):
    model.zero_grad()
    loss = loss_fn(model(x), y)
    loss.backward()
    return loss.detach()
""", "test_accumulate_gradients_micro_batches", "only"),
        ("runs the whole batch at once, then forges the record of batch sizes a test module keeps (model.seen)", """
def accumulate_gradients(model, loss_fn, x, y, micro_batch_size):
    model.zero_grad()
    loss = loss_fn(model(x), y)
    loss.backward()
    model.seen = [len(part) for part in x.split(micro_batch_size)]
    return loss.detach()
""", "test_accumulate_gradients_micro_batches", "only"),
        ("makes micro_batch_size chunks with x.chunk (right only when that gives chunks of at most micro_batch_size)",
         edited(PLAIN_ACCUMULATE, ("zip(x.split(micro_batch_size), y.split(micro_batch_size))",
                                   "zip(x.chunk(micro_batch_size), y.chunk(micro_batch_size))")), "test_accumulate_gradients_micro_batches", "only"),
        ("drops the last, smaller micro-batch", edited(PLAIN_ACCUMULATE, 
            ("zip(x.split(micro_batch_size), y.split(micro_batch_size))",
             "list(zip(x.split(micro_batch_size), y.split(micro_batch_size)))[:max(len(x) // micro_batch_size, 1)]")), "test_accumulate_gradients_hidden", "only"),
        ("weighs every micro-batch by micro_batch_size / N", edited(PLAIN_ACCUMULATE, 
            ("(loss * len(x_part) / n).backward()", "(loss * micro_batch_size / n).backward()"),
            ("total += loss.item() * len(x_part)", "total += loss.item() * micro_batch_size")), "test_accumulate_gradients_hidden", "only"),
        ("returns the loss with its graph", """
def accumulate_gradients(model, loss_fn, x, y, micro_batch_size):
    model.zero_grad()
    total = 0
    for xp, yp in zip(x.split(micro_batch_size), y.split(micro_batch_size)):
        loss = loss_fn(model(xp), yp) * len(xp) / len(x)
        loss.backward(retain_graph=True)
        total = total + loss
    return total
""", "test_accumulate_gradients_hidden"),
    ],
}

CORRECT = {
    "per_sample_gradients": [
        ("a loop with torch.autograd.grad", """
def per_sample_gradients(model, loss_fn, x, y):
    names = [name for name, p in model.named_parameters() if p.requires_grad]
    params = [p for p in model.parameters() if p.requires_grad]
    result = {name: [] for name in names}
    for x_i, y_i in zip(x, y):
        grads = torch.autograd.grad(loss_fn(model(x_i[None]), y_i[None]), params)
        for name, g in zip(names, grads):
            result[name].append(g)
    return {name: torch.stack(rows) for name, rows in result.items()}
"""),
        ("backward on a copy of the model, cloning .grad each time", """
def per_sample_gradients(model, loss_fn, x, y):
    work = copy.deepcopy(model)
    out = {}
    for i in range(x.shape[0]):
        work.zero_grad(set_to_none=True)
        loss_fn(work(x[i:i + 1]), y[i:i + 1]).backward()
        for name, p in work.named_parameters():
            if p.requires_grad:
                out.setdefault(name, []).append(p.grad.detach().clone())
    return {name: torch.stack(g, dim=0) for name, g in out.items()}
"""),
    ],
    "accumulate_gradients": [
        ("torch.autograd.grad per micro-batch, .grad set at the end", """
def accumulate_gradients(model, loss_fn, x, y, micro_batch_size):
    params = [p for p in model.parameters() if p.requires_grad]
    sums = [torch.zeros_like(p) for p in params]
    loss_sum = torch.zeros((), dtype=x.dtype)
    n = x.shape[0]
    start = 0
    while start < n:
        stop = min(start + micro_batch_size, n)
        loss = loss_fn(model(x[start:stop]), y[start:stop])
        grads = torch.autograd.grad(loss, params)
        weight = (stop - start) / n
        sums = [s + weight * g for s, g in zip(sums, grads)]
        loss_sum = loss_sum + loss.detach() * (stop - start)
        start = stop
    for p, s in zip(params, sums):
        p.grad = s
    return loss_sum / n
"""),
        ("summed losses divided by N, returned as a float", """
def accumulate_gradients(model, loss_fn, x, y, micro_batch_size):
    for p in model.parameters():
        p.grad = None
    n = len(x)
    total = 0.0
    for idx in torch.arange(n).split(micro_batch_size):
        loss = loss_fn(model(x[idx]), y[idx]) * len(idx)
        (loss / n).backward()
        total += loss.item()
    return total / n
"""),
        ("one sample at a time (micro-batches of one are at most micro_batch_size)", edited(PLAIN_ACCUMULATE, 
            ("zip(x.split(micro_batch_size), y.split(micro_batch_size))", "zip(x.split(1), y.split(1))"))),
        ("slices x[start:start + micro_batch_size] for start in range(0, N, micro_batch_size)", """
def accumulate_gradients(model, loss_fn, x, y, micro_batch_size):
    model.zero_grad()
    n = x.shape[0]
    total = torch.zeros((), dtype=x.dtype)
    for start in range(0, n, micro_batch_size):
        x_part, y_part = x[start:start + micro_batch_size], y[start:start + micro_batch_size]
        loss = loss_fn(model(x_part), y_part)
        (loss * x_part.shape[0] / n).backward()
        total += loss.detach() * x_part.shape[0]
    return total / n
"""),
    ],
}
