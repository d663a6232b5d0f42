"""The EoS nets: the smooth (tanh, avg-pool) scale-invariant CNN and its no-normalization twin."""
import pytest
import torch

from harness.models.cnn import PlainCNN, ScaleInvariantCNN


def _loss(model, x, y):
    return torch.nn.functional.cross_entropy(model(x), y)


@pytest.mark.parametrize("activation,pool", [("tanh", "avg"), ("relu", "max")])
def test_scale_invariant_cnn_loss_is_scale_invariant(activation, pool):
    torch.manual_seed(0)
    x, y = torch.randn(16, 1, 8, 8, dtype=torch.float64), torch.randint(0, 10, (16,))
    model = ScaleInvariantCNN(1, 10, widths=(4, 6, 8), activation=activation, pool=pool, dtype=torch.float64)
    before = _loss(model, x, y).item()
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(3.7)
    assert _loss(model, x, y).item() == pytest.approx(before, rel=1e-12)


def test_plain_cnn_is_the_same_cnn_without_normalization():
    si = ScaleInvariantCNN(3, 10, widths=(4, 6), seed=5, activation="tanh", pool="avg")
    plain = PlainCNN(3, 10, widths=(4, 6), seed=5, activation="tanh", pool="avg")
    for a, b in zip(si.convs, plain.convs):
        torch.testing.assert_close(a.weight, b.weight, rtol=0, atol=0)  # same conv weights for a seed
        assert a.bias is None and b.bias is not None
    assert not any(isinstance(m, type(si.norms[0])) for m in plain.modules())
    assert plain(torch.randn(2, 3, 32, 32)).shape == (2, 10)
    assert plain.head.weight.requires_grad  # trainable head, as PlainMLP's


def test_cnn_rejects_an_unknown_pool_or_activation():
    with pytest.raises(ValueError, match="pool"):
        ScaleInvariantCNN(1, 10, pool="median")
    with pytest.raises(ValueError, match="activation"):
        PlainCNN(1, 10, activation="gelu")
