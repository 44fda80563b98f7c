import pytest
import torch

from fmnist_tui.config import make_config
from fmnist_tui.engine import models


@pytest.mark.parametrize("model", ["tutorial_mlp", "mlp", "cnn", "resnet"])
def test_each_model_gives_ten_logits(model):
    net = models.build(make_config({"model": model, "width": 8, "hidden": 32}))
    net.eval()
    assert net(torch.rand(3, 1, 28, 28)).shape == (3, 10)


def test_tutorial_mlp_is_the_tutorials_network():
    net = models.tutorial_mlp()
    linear = [m for m in net if isinstance(m, torch.nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linear] == [(784, 512), (512, 512), (512, 10)]
    assert isinstance(net[-1], torch.nn.ReLU)  # the tutorial's final ReLU, kept on purpose
    assert (net(torch.randn(5, 1, 28, 28)) >= 0).all()
    assert not isinstance(models.tutorial_mlp(final_relu=False)[-1], torch.nn.ReLU)
