"""Backward-pass moments (MomentRecorder, backward_stats) against an explicit float64 loop over examples and
against the torch.func path (gradient_stats), layer type by layer type, at 1e-10 relative."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn
from torch.nn import functional as F
from torch.utils._python_dispatch import TorchDispatchMode

import adamlab.dissect.moments as moments_mod
from adamlab.dissect.moments import MomentRecorder, backward_stats
from adamlab.dissect.stats import gradient_stats

RTOL = 1e-10


class _Seq(nn.Module):
    """(n, 5, 4) sequence -> per-position linear -> LayerNorm -> mean over positions -> 3 classes."""

    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(4, 6)
        self.norm = nn.LayerNorm(6)
        self.out = nn.Linear(6, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(torch.tanh(self.norm(self.lin(x))).mean(1))


class _Emb(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.emb = nn.Embedding(7, 4, padding_idx=0)
        self.out = nn.Linear(4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.emb(x).sum(1))


class _Twice(nn.Module):
    """One Linear applied twice: the per-example gradient is the sum of both uses (whole-model fallback)."""

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Linear(6, 6)
        self.b = nn.Linear(6, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.b(torch.tanh(self.a(torch.tanh(self.a(x)))))


def _model(kind: str) -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(3)
    n = 9
    y = torch.randint(0, 3, (n,), generator=g)
    if kind == "linear":
        m: nn.Module = nn.Sequential(nn.Linear(6, 8), nn.Tanh(), nn.Linear(8, 3))
        x = torch.randn(n, 6, generator=g)
    elif kind == "seq_layernorm":
        m, x = _Seq(), torch.randn(n, 5, 4, generator=g)
    elif kind == "conv2d":
        m = nn.Sequential(nn.Conv2d(2, 4, 3, padding=1, stride=2), nn.Tanh(),
                          nn.Conv2d(4, 4, 2, groups=2, dilation=2, bias=False), nn.Tanh(),
                          nn.Conv2d(4, 3, (3, 2), stride=(2, 1), dilation=(1, 2), padding=(2, 1)), nn.Tanh(),
                          nn.Flatten(), nn.LazyLinear(3))
        x = torch.randn(n, 2, 9, 8, generator=g)
        m(x.float())
    elif kind == "conv1d":
        m = nn.Sequential(nn.Conv1d(3, 4, 3, padding=2, stride=2), nn.Tanh(), nn.Conv1d(4, 2, 2, dilation=2),
                          nn.Tanh(), nn.Flatten(), nn.LazyLinear(3))
        x = torch.randn(n, 3, 8, generator=g)
        m(x.float())
    elif kind == "embedding":
        m = _Emb()
        x = torch.randint(0, 7, (n, 5), generator=g)
        x[0, :2] = 0
        x[1] = 3  # repeated index within one example
    elif kind == "batchnorm":
        m = nn.Sequential(nn.Conv2d(2, 3, 3), nn.BatchNorm2d(3), nn.Tanh(), nn.Flatten(), nn.LazyLinear(4),
                          nn.BatchNorm1d(4), nn.Tanh(), nn.Linear(4, 3))
        x = torch.randn(n, 2, 5, 5, generator=g)
        m.train()
        m(x.float() * 2 + 1)  # non-trivial running statistics
        m.eval()
    elif kind == "fallback":  # GroupNorm and PReLU have no rule: torch.func on the module
        m = nn.Sequential(nn.Linear(6, 8), nn.GroupNorm(2, 8), nn.PReLU(8), nn.Linear(8, 3))
        x = torch.randn(n, 6, generator=g)
    elif kind == "twice":
        m, x = _Twice(), torch.randn(n, 6, generator=g)
    else:
        raise AssertionError(kind)
    m = m.double()
    with torch.no_grad():  # non-trivial affine parameters
        for name, p in m.named_parameters():
            if "norm" in name or "weight" in name and p.dim() == 1:
                p.add_(0.3 * torch.randn(p.shape, generator=g, dtype=p.dtype))
    return m, (x if x.dtype == torch.long else x.double()), y


KINDS = ["linear", "seq_layernorm", "conv2d", "conv1d", "embedding", "batchnorm", "fallback", "twice"]


def _loop(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> dict[str, np.ndarray]:
    out: dict[str, list[np.ndarray]] = {n: [] for n, _ in model.named_parameters()}
    for k in range(x.shape[0]):
        model.zero_grad()
        F.cross_entropy(model(x[k:k + 1]), y[k:k + 1]).backward()
        for n, p in model.named_parameters():
            out[n].append(p.grad.detach().numpy().copy())
    return {n: np.stack(v) for n, v in out.items()}


def _close(a: torch.Tensor | np.ndarray, b: torch.Tensor | np.ndarray) -> None:
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    np.testing.assert_allclose(a, b, rtol=RTOL, atol=RTOL * max(1e-300, float(np.abs(b).max())))


def _assert_moments_match(moments: dict, ref: dict[str, np.ndarray]) -> None:
    """Each parameter's recorded mean and variance against the float64 loop's per-example gradients."""
    for name, g in ref.items():
        _close(moments[name].mean(), g.mean(0))
        _close(moments[name].variance(), g.var(0, ddof=1))


@pytest.mark.parametrize("kind", KINDS)
def test_moments_match_float64_loop_and_torch_func(kind):
    model, x, y = _model(kind)
    ref = _loop(model, x, y)
    fast = backward_stats(model, F.cross_entropy, x, y, sign_agreement=True)
    func = gradient_stats(model, F.cross_entropy, x, y)
    assert set(fast.names) == set(ref)
    for name, g in ref.items():
        _close(fast.mean[name], g.mean(0))
        _close(fast.variance[name], g.var(0, ddof=1))
        for stat in ("mean", "variance", "sigma2", "rho_gaussian", "gamma_grad", "gamma_sign_gaussian",
                     "rho_empirical", "gamma_sign"):
            _close(getattr(fast, stat)[name], getattr(func, stat)[name])
        ok = np.isfinite(func.eta2[name].numpy()) & (func.eta2[name].numpy() < 1e8)
        _close(fast.eta2[name].numpy()[ok], func.eta2[name].numpy()[ok])
    expected = {"fallback": {"1", "2"}, "twice": {"a"}}.get(kind, set())
    assert set(fast.fell_back) == expected


def test_supported_layers_do_not_fall_back():
    rec = MomentRecorder(_model("batchnorm")[0])
    assert rec.fell_back == {} and rec.skipped == {}


def test_sum_reduction_gives_the_same_per_example_moments():
    model, x, y = _model("linear")
    out = {}
    for reduction in ("mean", "sum"):
        with MomentRecorder(model, reduction=reduction) as rec:
            model.zero_grad()
            F.cross_entropy(model(x), y, reduction=reduction).backward()
        out[reduction] = rec.moments()
    ref = _loop(model, x, y)
    for name, g in ref.items():
        for reduction in ("mean", "sum"):
            _close(out[reduction][name].mean(), g.mean(0))
            _close(out[reduction][name].variance(), g.var(0, ddof=1))
    with pytest.raises(ValueError, match="reduction"):
        MomentRecorder(model, reduction="none")


def test_dropout_in_training_mode_each_example_its_own_mask():
    """The hooks see the step's real dropout masks: the reference is each example's own loss term of the
    same forward pass (same seed), differentiated alone."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 16), nn.Tanh(), nn.Dropout(0.5), nn.Linear(16, 3)).double().train()
    x = torch.randn(10, 6, dtype=torch.float64)
    y = torch.randint(0, 3, (10,))
    torch.manual_seed(42)
    fast = backward_stats(model, F.cross_entropy, x, y)
    torch.manual_seed(42)
    losses = F.cross_entropy(model(x), y, reduction="none")
    params = list(model.parameters())
    per = [torch.autograd.grad(losses[k], params, retain_graph=True) for k in range(10)]
    for i, (name, _) in enumerate(model.named_parameters()):
        g = torch.stack([p[i] for p in per]).numpy()
        _close(fast.mean[name], g.mean(0))
        _close(fast.variance[name], g.var(0, ddof=1))


def test_batchnorm_in_training_mode_is_refused():
    model, x, y = _model("batchnorm")
    model.train()
    with pytest.raises(ValueError, match="BatchNorm"):
        backward_stats(model, F.cross_entropy, x, y)
    rec = MomentRecorder(model).attach()
    F.cross_entropy(model(x), y).backward()
    assert "1" in rec.skipped and "1.weight" not in rec.moments()
    model.eval()
    rec.reset()
    F.cross_entropy(model(x), y).backward()
    assert "1.weight" in rec.moments()
    rec.detach()


def test_grad_is_untouched_and_hooks_removed():
    model, x, y = _model("linear")
    before = [p.grad for p in model.parameters()]
    backward_stats(model, F.cross_entropy, x, y)
    assert [p.grad for p in model.parameters()] == before
    assert all(not m._forward_hooks for m in model.modules())


def test_sign_agreement_only_where_asked():
    model, x, y = _model("linear")
    stats = backward_stats(model, F.cross_entropy, x, y, sign_agreement=["2.weight"])
    assert set(stats.rho_empirical) == {"2.weight"} == set(stats.gamma_sign)
    assert stats.flat("rho_empirical").numel() == 3 * 8
    with pytest.raises(ValueError, match="sign_agreement"):
        backward_stats(model, F.cross_entropy, x, y, sign_agreement=["nope"])


class _MaxNumel(TorchDispatchMode):
    def __init__(self) -> None:
        super().__init__()
        self.max = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in out if isinstance(out, (tuple, list)) else [out]:
            if isinstance(t, torch.Tensor):
                self.max = max(self.max, t.numel())
        return out


@pytest.mark.parametrize("kind", ["linear2d", "linear3d", "conv"])
def test_memory_is_order_parameters_not_batch_times_parameters(kind, monkeypatch):
    """No tensor of batch x parameters is created: the largest one is bounded by the layer size, the
    activations and the chunk size, while batch x parameters is far larger."""
    monkeypatch.setattr(moments_mod, "CHUNK_ELEMENTS", 4096)
    torch.manual_seed(0)
    n = 64
    if kind == "linear2d":
        model: nn.Module = nn.Linear(300, 200)
        x = torch.randn(n, 300)
    elif kind == "linear3d":
        model, x = nn.Linear(100, 80), torch.randn(n, 3, 100)
    else:
        model, x = nn.Conv2d(32, 64, 3), torch.randn(n, 32, 4, 4)
    params = sum(p.numel() for p in model.parameters())
    out = model(x)
    with MomentRecorder(model) as rec, _MaxNumel() as probe:
        out = model(x)
        out.square().mean().backward()
    assert rec.moments()
    activations = max(x.numel() * 9, out.numel())
    assert probe.max <= max(params, activations, 4096 + params)
    assert probe.max * 8 < n * params


def test_float64_accumulation_of_a_float32_model():
    model, x, y = _model("embedding")
    model = model.float()
    ref = _loop(model.double(), x, y)
    model = model.float()
    with MomentRecorder(model, dtype=torch.float64) as rec:
        F.cross_entropy(model(x), y).backward()
    m = rec.moments()
    assert m["emb.weight"].s1.dtype == torch.float64
    np.testing.assert_allclose(m["emb.weight"].mean().numpy(), ref["emb.weight"].mean(0), rtol=1e-5, atol=1e-6)


def test_the_statistics_leave_their_inputs_as_they_were():
    """The statistics work in place on fresh tensors (to spare page faults): a float64 S1, where
    ``.double()`` would be the same tensor, and every input of ``stats_from_moments`` stay unchanged."""
    from adamlab.dissect.moments import Moments
    from adamlab.dissect.stats import (
        gaussian_sign_agreement,
        ideal_gamma_grad,
        ideal_gamma_sign,
        stats_from_moments,
    )

    g = torch.Generator().manual_seed(0)
    s1 = torch.randn(50, generator=g, dtype=torch.float64)
    s2 = s1.square() + torch.rand(50, generator=g, dtype=torch.float64)
    s1[:5] = 0.0
    saved = s1.clone(), s2.clone()
    mo = Moments(s1, s2, 4)
    mean, variance = mo.mean(), mo.variance()
    kept = mean.clone(), variance.clone()
    stats = stats_from_moments({"w": mean}, {"w": variance}, 4, 2)
    gaussian_sign_agreement(mean, variance.sqrt())
    ideal_gamma_grad(stats.eta2["w"])
    ideal_gamma_sign(stats.rho_gaussian["w"])
    assert torch.equal(s1, saved[0]) and torch.equal(s2, saved[1])
    assert torch.equal(mean, kept[0]) and torch.equal(variance, kept[1])
    assert stats.mean["w"] is not s1 and torch.equal(stats.mean["w"], s1 / 4)


@pytest.mark.parametrize("kind", ["conv2d", "conv1d"])
def test_convolutions_in_chunks_of_examples(kind, monkeypatch):
    """The Conv rule's grouped convolutions over chunks of 2 examples (9 examples: 5 chunks, the last of
    one) add up to the float64 loop's moments."""
    monkeypatch.setattr(moments_mod, "CONV_CHUNK_EXAMPLES", 2)
    model, x, y = _model(kind)
    ref = _loop(model, x, y)
    with MomentRecorder(model) as rec:
        F.cross_entropy(model(x), y).backward()
    _assert_moments_match(rec.moments(), ref)
