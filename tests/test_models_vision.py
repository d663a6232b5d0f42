"""Vision models: exact scale invariance, fixed heads, deterministic seeded init, ResNet sizes."""
import pytest
import torch
import torch.nn.functional as F

from harness.models import (
    CifarResNet,
    PlainMLP,
    ScaleInvariantCNN,
    ScaleInvariantMLP,
    SmallCNN,
    resnet20,
    resnet56,
)
from harness.models.mlp import BatchNormNoAffine


def _data(shape, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(shape, generator=g, dtype=torch.float64)
    y = torch.randint(0, 10, (shape[0],), generator=g)
    return x, y


def _loss(model, x, y):
    return F.cross_entropy(model(x), y)


def _scaled_loss(model, x, y, scales):
    """Loss with each trainable parameter multiplied by its scale, parameters restored afterwards."""
    params = list(model.parameters())
    saved = [p.detach().clone() for p in params]
    with torch.no_grad():
        for p, c in zip(params, scales):
            p.mul_(c)
        out = _loss(model, x, y).item()
        for p, s in zip(params, saved):
            p.copy_(s)
    return out


SCALE_INVARIANT = [
    (lambda: ScaleInvariantMLP(64, (16, 12), activation="relu", dtype=torch.float64), (32, 64)),
    (lambda: ScaleInvariantMLP(64, (16, 12), activation="tanh", dtype=torch.float64), (32, 64)),
    (lambda: ScaleInvariantCNN(1, widths=(4, 6, 8), dtype=torch.float64), (16, 1, 8, 8)),
    (lambda: ScaleInvariantCNN(3, widths=(4, 6), track_running_stats=True, dtype=torch.float64),
     (8, 3, 32, 32)),
]


@pytest.mark.parametrize("make,shape", SCALE_INVARIANT)
def test_scale_invariant_models_loss_invariant_jointly_and_per_layer(make, shape):
    model = make()
    x, y = _data(shape)
    base = _loss(model, x, y).item()
    n = len(list(model.parameters()))
    for c in (0.3, 4.0):
        assert abs(_scaled_loss(model, x, y, [c] * n) - base) < 1e-10
        for i in range(n):
            scales = [1.0] * n
            scales[i] = c
            assert abs(_scaled_loss(model, x, y, scales) - base) < 1e-10
    assert abs(_scaled_loss(model, x, y, [0.3, 4.0] + [2.0] * (n - 2)) - base) < 1e-10


@pytest.mark.parametrize("make,shape", SCALE_INVARIANT)
def test_scale_invariant_models_gradient_orthogonal_and_scales_inversely(make, shape):
    model = make()
    x, y = _data(shape)
    grads = torch.autograd.grad(_loss(model, x, y), list(model.parameters()))
    for p, g in zip(model.parameters(), grads):
        assert abs((p * g).sum().item()) <= 1e-10 * p.norm().item() * g.norm().item() + 1e-14
    with torch.no_grad():  # ∇L(c·w) = ∇L(w) / c
        for p in model.parameters():
            p.mul_(4.0)
    grads4 = torch.autograd.grad(_loss(model, x, y), list(model.parameters()))
    for g, g4 in zip(grads, grads4):
        torch.testing.assert_close(g4, g / 4.0, rtol=1e-9, atol=1e-13)


@pytest.mark.parametrize("make,shape", SCALE_INVARIANT[::2])
def test_scale_invariant_models_head_is_fixed(make, shape):
    model = make()
    names = [name for name, _ in model.named_parameters()]
    assert all("head" not in name for name in names)
    assert "head" in model.state_dict() and not model.head.requires_grad
    assert all(p.dim() in (2, 4) for p in model.parameters())  # weight matrices / kernels only, no biases


def test_scale_invariant_mlp_positive_eps_breaks_invariance_at_small_norm():
    model = ScaleInvariantMLP(64, (16, 12), bn_eps=1e-5, dtype=torch.float64)
    x, y = _data((32, 64))
    base = _loss(model, x, y).item()
    assert abs(_scaled_loss(model, x, y, [1e-4, 1e-4]) - base) > 1e-3


def test_scale_invariant_cnn_running_stats_used_in_eval_mode():
    model = ScaleInvariantCNN(1, widths=(4, 6), track_running_stats=True, dtype=torch.float64)
    x, y = _data((16, 1, 8, 8))
    _loss(model, x, y)  # one train-mode pass fills the running statistics
    model.eval()
    base = _loss(model, x, y).item()
    assert abs(_scaled_loss(model, x, y, [4.0, 1.0]) - base) > 1e-6  # running stats do not rescale


def test_plain_mlp_not_scale_invariant_and_shares_hidden_weights():
    plain = PlainMLP(64, (16, 12), activation="tanh", dtype=torch.float64, seed=3)
    x, y = _data((32, 64))
    base = _loss(plain, x, y).item()
    n = len(list(plain.parameters()))
    assert abs(_scaled_loss(plain, x, y, [4.0] * n) - base) > 1e-3
    assert all(p.requires_grad for p in plain.parameters())
    assert n == 6  # three Linears with bias, last one trainable
    bn = ScaleInvariantMLP(64, (16, 12), dtype=torch.float64, seed=3)
    for a, b in zip(bn.linears, plain.linears[:2]):
        torch.testing.assert_close(a.weight, b.weight, rtol=0, atol=0)


@pytest.mark.parametrize("track", [False, True])
@pytest.mark.parametrize("shape", [(6, 5), (6, 5, 3, 3)])
def test_batchnorm_no_affine_matches_torch_batchnorm(track, shape):
    x = torch.randn(shape, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    ref_cls = torch.nn.BatchNorm1d if len(shape) == 2 else torch.nn.BatchNorm2d
    ref = ref_cls(5, eps=1e-5, affine=False, track_running_stats=track).double()
    mine = BatchNormNoAffine(5, eps=1e-5, track_running_stats=track).double()
    for _ in range(3):
        torch.testing.assert_close(mine(x), ref(x), rtol=1e-12, atol=1e-12)
    ref.eval()
    mine.eval()
    torch.testing.assert_close(mine(x), ref(x), rtol=1e-12, atol=1e-12)
    assert torch.isfinite(BatchNormNoAffine(5, eps=0.0)(x)).all()  # torch's own rejects eps = 0


MODELS = [
    lambda seed: ScaleInvariantMLP(64, (8, 8), seed=seed),
    lambda seed: PlainMLP(64, (8, 8), seed=seed),
    lambda seed: ScaleInvariantCNN(1, widths=(4, 4), seed=seed),
    lambda seed: SmallCNN(1, width=4, seed=seed),
    lambda seed: SmallCNN(1, width=4, batchnorm=False, seed=seed),
    lambda seed: resnet20(seed=seed),
    lambda seed: resnet20(shortcut="B", seed=seed),
]


@pytest.mark.parametrize("make", MODELS)
def test_models_deterministic_from_seed_and_leave_global_rng_alone(make):
    torch.manual_seed(123)
    state = torch.get_rng_state()
    a = make(0).state_dict()
    assert torch.equal(torch.get_rng_state(), state)
    torch.manual_seed(456)  # a different global state must not matter
    b, c = make(0).state_dict(), make(1).state_dict()
    assert a.keys() == b.keys() == c.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert any(not torch.equal(a[k], c[k]) for k in a if a[k].is_floating_point() and a[k].numel() > 1)
    assert all(torch.isfinite(v).all() for v in a.values() if v.is_floating_point())


def test_resnet_parameter_counts_and_output_shape():
    counts = {(20, "A"): 269_722, (20, "B"): 272_474, (56, "A"): 853_018, (56, "B"): 855_770}
    for (depth, shortcut), expected in counts.items():
        model = (resnet20 if depth == 20 else resnet56)(shortcut=shortcut)
        assert sum(p.numel() for p in model.parameters()) == expected
    model = resnet20()
    out = model(torch.randn(2, 3, 32, 32))
    assert out.shape == (2, 10)
    assert resnet20(num_classes=100)(torch.randn(2, 3, 32, 32)).shape == (2, 100)
    assert isinstance(model, CifarResNet) and model.depth == 20


def test_small_cnn_shapes_and_batchnorm_switch():
    x = torch.randn(4, 1, 8, 8)
    with_bn, without = SmallCNN(1, width=8), SmallCNN(1, width=8, batchnorm=False)
    assert with_bn(x).shape == without(x).shape == (4, 10)
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in with_bn.modules())
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in without.modules())
    assert ScaleInvariantCNN(3)(torch.randn(2, 3, 32, 32)).shape == (2, 10)


def test_models_reject_bad_arguments():
    with pytest.raises(ValueError, match="activation"):
        ScaleInvariantMLP(64, activation="gelu")
    with pytest.raises(ValueError, match="eps"):
        ScaleInvariantMLP(64, bn_eps=-1.0)
    with pytest.raises(TypeError, match="seed"):
        PlainMLP(64, seed=1.5)
    with pytest.raises(ValueError, match="widths"):
        ScaleInvariantMLP(64, widths=())
    with pytest.raises(ValueError, match="6n"):
        CifarResNet(depth=21)
    with pytest.raises(ValueError, match="shortcut"):
        resnet20(shortcut="C")
    with pytest.raises(ValueError, match="expected input"):
        ScaleInvariantCNN(3)(torch.randn(2, 1, 8, 8))
