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


def test_channels_last_layout_on_a_gpu_only_and_same_outputs():
    import torch

    from fmnist_tui.config import make_config
    from fmnist_tui.engine.module import Classifier, uses_channels_last

    config = make_config({"model": "resnet", "width": 8})
    assert uses_channels_last(config, torch.device("cuda"))
    assert not uses_channels_last(config, torch.device("cpu"))
    assert not uses_channels_last(make_config({"model": "mlp"}), torch.device("cuda"))
    module = Classifier(config.model_dump()).eval()
    x = torch.randn(4, 1, 28, 28)
    before = module(x)
    module.use_layout_for(torch.device("cuda"))  # converts in place, wherever the tensors are
    conv = [m for m in module.modules() if isinstance(m, torch.nn.Conv2d)][-1]  # the first has one channel
    assert conv.weight.is_contiguous(memory_format=torch.channels_last) and not conv.weight.is_contiguous()
    torch.testing.assert_close(module(x), before, rtol=1e-4, atol=1e-5)


def test_tta_flip_averages_an_image_and_its_mirror():
    import torch

    from fmnist_tui.config import make_config
    from fmnist_tui.engine.module import Classifier

    plain = Classifier(make_config({"model": "cnn", "width": 4}).model_dump()).eval()
    tta = Classifier(make_config({"model": "cnn", "width": 4, "tta_flip": True}).model_dump()).eval()
    tta.load_state_dict(plain.state_dict())
    x = torch.randn(3, 1, 28, 28)
    torch.testing.assert_close(tta.predict_logits(x), (plain(x) + plain(x.flip(-1))) / 2)
    torch.testing.assert_close(tta.predict_logits(x), tta.predict_logits(x.flip(-1)))  # mirror-symmetric
