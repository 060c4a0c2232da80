import torch
from torch import nn

from batchcourse.models import MnistCNN, batch_norm


def test_mnist_cnn_shapes_and_slices():
    model = MnistCNN(make_norm=batch_norm, channels=(4, 8)).eval()
    assert model(torch.zeros(3, 1, 28, 28)).shape == (3, 10)
    head = model[:4]
    assert type(head) is nn.Sequential and len(head) == 4
    assert isinstance(model[0], nn.Conv2d) and model[0].bias is None


def test_strided_cnn_shrinks_the_maps_to_one_value_per_image():
    from batchcourse.models import strided_cnn

    model = strided_cnn(batch_norm, width=4).eval()
    assert model(torch.zeros(3, 1, 28, 28)).shape == (3, 10)
    maps = model[:-2](torch.zeros(3, 1, 28, 28))
    assert maps.shape == (3, 16, 1, 1)
    assert all(layer.bias is None for layer in model if isinstance(layer, nn.Conv2d))
