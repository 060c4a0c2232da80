"""What each graded function may change in its arguments.

A graded call runs in the student's kernel on copies of the test's arguments. Afterwards the test process
takes back only the changes listed here (a module's buffers, its parameters' gradients, its children);
any other change to an argument fails the test, and the test's own objects keep what they held before the
call, so expected values computed from them are never the student's.
"""

PARAMETERS = {
    "stack_images": ("images",),
    "split_batch": ("x", "batch_size"),
    "to_nchw": ("x",),
    "conv2d": ("x", "weight", "bias", "stride", "padding"),
    "batch_jacobian_norms": ("f", "x"),
    "diagnose_layer": ("layer", "x"),
    "per_sample_gradients": ("model", "loss_fn", "x", "y"),
    "accumulate_gradients": ("model", "loss_fn", "x", "y", "micro_batch_size"),
    "bn_reduction_dims": ("ndim",),
    "batch_norm_train": ("x", "weight", "bias", "eps"),
    "batch_norm_backward": ("dy", "x", "weight", "eps"),
    "bn_parameter_counts": ("model",),
    "update_running_stats": ("running_mean", "running_var", "num_batches_tracked", "x", "momentum"),
    "batch_norm_eval": ("x", "running_mean", "running_var", "weight", "bias", "eps"),
    "evaluate": ("model", "loader"),
    "recalibrate_bn": ("model", "loader", "num_batches"),
    "torch_bn_kwargs_from_keras": ("momentum", "epsilon"),
    "fold_batchnorm": ("conv", "bn"),
    "values_per_channel": ("shape",),
    "bn_training_raises": ("shape",),
    "instance_norm_training_raises": ("shape",),
    "batch_of_one_accuracies": ("model", "images", "labels"),
    "batch_renorm_train": ("x", "running_mean", "running_var", "weight", "bias", "r_max", "d_max", "eps"),
    "ghost_batch_norm": ("x", "ghost_batch_size", "weight", "bias", "eps"),
    "group_norm": ("x", "num_groups", "weight", "bias", "eps"),
    "layer_norm_chw": ("x", "eps"),
    "instance_norm": ("x", "eps"),
    "replace_batchnorm": ("module", "make_norm"),
    "diagnose": ("model", "x"),
    "batch_invariant_linear": ("x", "weight", "bias"),
    "eval_transform": ("train_transform",),
}

GRADIENTS, BUFFERS, CHILDREN = "gradients", "buffers", "children"

# What the task of each function lets it change; everything not named here must come back as it went.
MAY_CHANGE = {
    # A module passed as f (BatchNorm in train mode, say) updates its running statistics when called.
    "batch_jacobian_norms": {"f": {BUFFERS}},
    "per_sample_gradients": {"model": {GRADIENTS, BUFFERS}},
    "accumulate_gradients": {"model": {GRADIENTS, BUFFERS}},
    "recalibrate_bn": {"model": {BUFFERS}},
    "replace_batchnorm": {"module": {CHILDREN}},
}


def argument_names(function: str, count: int, keywords) -> list[str]:
    """The names of a call's arguments: the task's parameter names where known, else 'argument 2'."""
    known = PARAMETERS.get(function, ())
    names = [known[i] if i < len(known) else f"argument {i + 1}" for i in range(count)]
    return names + [str(k) for k in keywords]


def allowed_changes(function: str, argument: str) -> set[str]:
    return MAY_CHANGE.get(function, {}).get(argument, set())
