import numpy as np
import paddle
import pytest

from mnist_paddle.errors import UserError
from mnist_paddle.models import MODELS, build_model, count_parameters
from mnist_paddle.models.layers import Conv2D

# Parameter counts as paddle.summary reports them (tutorial 003 for the LeNets).
PARAMETERS = {
    "lenet5": 61_706,
    "lenet_sequential": 61_610,
    "lenet_subclass": 61_610,
    "lenet": 61_610,
    "fcnet": 8_070,
    "two_conv": 20_350,
    "conv_bn": 442_510,
    "three_conv": 21_578,
    "convnet": 66_714,
}


def test_the_table_covers_the_registry():
    assert set(PARAMETERS) == set(MODELS)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_parameter_count(name):
    model = build_model(name)
    assert count_parameters(model) == PARAMETERS[name]
    assert paddle.summary(model, (1, 1, 28, 28))["total_params"] == PARAMETERS[name]


@pytest.mark.parametrize("name", sorted(MODELS))
def test_forward_and_backward(name):
    paddle.seed(0)
    model = build_model(name)
    model.train()
    x = paddle.randn([4, 1, 28, 28])
    logits = model(x)
    assert logits.shape == [4, 10]
    assert np.isfinite(logits.numpy()).all()
    loss = paddle.nn.functional.cross_entropy(logits, paddle.to_tensor([[0], [1], [2], [3]]))
    loss.backward()
    trainable = [p for p in model.parameters() if not p.stop_gradient]
    assert trainable
    for p in trainable:
        assert p.grad is not None, p.name
        grad = p.grad.numpy()
        assert np.isfinite(grad).all() and np.abs(grad).sum() > 0, p.name


@pytest.mark.parametrize("name", sorted(MODELS))
def test_num_classes_is_honoured(name):
    model = build_model(name, num_classes=3)
    model.eval()
    assert model(paddle.zeros([2, 1, 28, 28])).shape == [2, 3]


def test_model_arguments_pass_through():
    assert count_parameters(build_model("fcnet", hidden_size=64)) > PARAMETERS["fcnet"]


def test_unknown_model_lists_the_valid_names():
    with pytest.raises(
        UserError, match="unknown model 'lenet6'; choose one of: .*lenet5.*three_conv"
    ):
        build_model("lenet6")


def test_unknown_model_argument_is_named():
    with pytest.raises(UserError, match="model 'lenet' has no argument 'hidden_size'"):
        build_model("lenet", hidden_size=3)


@pytest.mark.parametrize(
    "args",
    [
        dict(in_channels=1, out_channels=8, kernel_size=3, padding=1),  # three_conv's first
        dict(in_channels=1, out_channels=8, kernel_size=3, padding=1, stride=2),  # the line's
        dict(in_channels=6, out_channels=16, kernel_size=5),  # LeNet's, no padding
        dict(in_channels=32, out_channels=11, kernel_size=7, padding=(0, 3)),  # the window
    ],
)
def test_conv2d_trains_as_paddles_to_the_bit(args):
    # models/layers.py adds the bias channels-last while training on CPU; the outputs and
    # every gradient must be nn.Conv2D's, bit for bit, or training would change
    ours, paddles = Conv2D(**args), paddle.nn.Conv2D(**args)
    paddles.weight.set_value(ours.weight.numpy())
    paddles.bias.set_value(
        np.random.default_rng(0).normal(size=args["out_channels"]).astype("float32")
    )
    ours.bias.set_value(paddles.bias.numpy())
    x = np.random.default_rng(1).normal(size=(5, args["in_channels"], 14, 40)).astype("float32")
    results = []
    for conv in (ours, paddles):
        conv.train()
        image = paddle.to_tensor(x, stop_gradient=False)
        out = conv(image)
        (out * paddle.linspace(-1, 1, out.shape[-1])).square().sum().backward()
        results.append(
            [out.numpy(), image.grad.numpy(), conv.weight.grad.numpy(), conv.bias.grad.numpy()]
        )
    for mine, theirs in zip(*results):
        np.testing.assert_array_equal(mine, theirs)
