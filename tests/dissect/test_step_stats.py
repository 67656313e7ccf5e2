"""StepStats (every coordinate's statistics at every step, fused, into kept buffers) against
stats_from_moments and an explicit float64 loop over examples, and the Linear rule's S_1 taken from
autograd's own weight gradient."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch
from torch import nn
from torch.nn import functional as F

import adamlab.dissect.step_stats as step_stats
from adamlab.dissect.moments import MomentRecorder, Moments
from adamlab.dissect.stats import stats_from_moments
from adamlab.dissect.step_stats import FIELDS, StepStats

from .test_moments import _assert_moments_match, _close, _loop, _model


def _recorded(kind: str = "conv2d") -> tuple[nn.Module, dict[str, Moments], dict[str, np.ndarray]]:
    model, x, y = _model(kind)
    with MomentRecorder(model) as rec:
        F.cross_entropy(model(x), y).backward()
    return model, rec.moments(), _loop(model, x, y)


def _reference(moments: dict[str, Moments], b: int | None = None):
    n = next(iter(moments.values())).n
    return stats_from_moments({k: m.mean() for k, m in moments.items()},
                              {k: m.variance() for k, m in moments.items()}, n, n if b is None else b)


@pytest.mark.parametrize("kind", ["linear", "conv2d", "embedding"])
def test_eager_float64_is_stats_from_moments_bit_for_bit_and_matches_the_loop(kind):
    _, moments, loop = _recorded(kind)
    got = StepStats(dtype=torch.float64, compiled=False)(moments, batch_size=3)
    ref = _reference(moments, 3)
    assert got.names == ref.names and got.batch_size == 3 and got.n_examples == ref.n_examples
    for field in FIELDS:
        for name in ref.names:
            assert torch.equal(getattr(got, field)[name], getattr(ref, field)[name]), (field, name)
    for name, g in loop.items():  # and the equations, from the per-example gradients themselves
        _close(got.mean[name], g.mean(0))
        _close(got.variance[name], g.var(0, ddof=1))
        sigma2 = g.var(0, ddof=1) / 3
        _close(got.sigma2[name], sigma2)
        mean = g.mean(0)
        live = (mean != 0) & (sigma2 > 0)
        eta2 = sigma2[live] / mean[live] ** 2
        rho = 0.5 * (1 + np.vectorize(math.erf)(np.abs(mean[live]) / np.sqrt(2 * sigma2[live])))
        _close(got.eta2[name].numpy()[live], eta2)
        _close(got.rho_gaussian[name].numpy()[live], rho)
        _close(got.gamma_grad[name].numpy()[live], 1 / (1 + eta2))
        _close(got.gamma_sign_gaussian[name].numpy()[live], 2 * rho - 1)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_compiled_agrees_with_the_eager_pass(dtype):
    """The compiled kernel against the same functions run eagerly, in the same dtype: float64 to 1e-12,
    float32 to a few units in the last place (5e-7 absolute where 2 rho - 1 is small: erf differs by an ulp or two)."""
    _, moments, _ = _recorded("linear")
    moments = {k: Moments(m.s1.to(dtype), m.s2.to(dtype), m.n) for k, m in moments.items()}
    ref = StepStats(compiled=False)(moments)
    got = StepStats(compiled=True)(moments)
    rtol, atol = (1e-12, 1e-14) if dtype == torch.float64 else (1e-6, 5e-7)
    for field in FIELDS:
        a, b = got.flat(field), ref.flat(field)
        assert a.dtype == dtype
        ok = torch.isfinite(b) & (b.abs() < 1e8)
        assert torch.equal(torch.isfinite(a), torch.isfinite(b)), field
        np.testing.assert_allclose(a[ok].numpy(), b[ok].numpy(), rtol=rtol, atol=atol, err_msg=field)


def test_default_dtype_is_the_moments_and_float32_is_close_to_float64():
    model, x, y = _model("linear")
    model = model.float()
    with MomentRecorder(model) as rec:
        F.cross_entropy(model(x.float()), y).backward()
    moments = rec.moments()
    got = StepStats(compiled=False)(moments)
    ref = _reference(moments)
    for field in FIELDS:
        a, b = got.flat(field), ref.flat(field)
        assert a.dtype == torch.float32, field
        if field == "gamma_sign_gaussian":  # 2 rho - 1 near 0: an absolute error of float32's rounding
            np.testing.assert_allclose(a.double().numpy(), b.numpy(), atol=1e-6)
        else:
            ok = b.abs() < 1e8
            np.testing.assert_allclose(a.double()[ok].numpy(), b[ok].numpy(), rtol=1e-5, atol=1e-12, err_msg=field)


def test_buffers_are_kept_and_overwritten_by_the_next_call():
    g = torch.Generator().manual_seed(0)

    def moments(scale: float) -> dict[str, Moments]:
        s1 = {k: scale * torch.randn(shape, generator=g, dtype=torch.float64) for k, shape in
              (("w", (4, 5)), ("b", (4,)))}
        return {k: Moments(v, v.square() / 6 + torch.rand(v.shape, generator=g, dtype=torch.float64), 6)
                for k, v in s1.items()}

    stats = StepStats(compiled=False)
    first_moments, second_moments = moments(1.0), moments(3.0)
    first = stats(first_moments)
    pointer = first.mean["w"].data_ptr()
    second = stats(second_moments)
    assert second.mean["w"].data_ptr() == pointer  # the same memory: nothing allocated per step
    assert torch.equal(first.mean["w"], second.mean["w"])  # the first result was overwritten
    ref = _reference(second_moments)
    for field in FIELDS:
        assert torch.equal(second.flat(field), ref.flat(field)), field
    assert second.mean["w"].shape == (4, 5) and second.mean["b"].shape == (4,)


def test_groups_of_different_counts_and_dtypes():
    g = torch.Generator().manual_seed(1)
    s1 = torch.randn(7, generator=g, dtype=torch.float64)
    parts = {"a": Moments(s1, s1.square() + 1.0, 5), "b": Moments(s1.float(), s1.float().square() + 1.0, 8),
             "c": Moments(s1 * 2, s1.square() * 4 + 2.0, 5)}
    got = StepStats(dtype=torch.float64, compiled=False)(parts)
    assert got.n_examples == 5 and got.names == ["a", "b", "c"]
    for name, m in parts.items():
        ref = stats_from_moments({name: m.mean()}, {name: m.variance()}, m.n, m.n)
        for field in FIELDS:
            assert torch.equal(getattr(got, field)[name], getattr(ref, field)[name]), (name, field)


def test_bad_arguments_name_themselves():
    with pytest.raises(ValueError, match="dtype"):
        StepStats(dtype=torch.int64)
    s1 = torch.ones(3)
    with pytest.raises(ValueError, match="batch_size"):
        StepStats()({"w": Moments(s1, s1, 4)}, batch_size=0)
    with pytest.raises(ValueError, match=r"moments\['w'\]: need at least 2 examples"):
        StepStats()({"w": Moments(s1, s1, 1)})


def test_compile_failure_warns_once_and_computes_eagerly(monkeypatch):
    def broken() -> object:
        def kernel(*args: object) -> None:
            raise RuntimeError("no compiler here")
        return kernel

    monkeypatch.setattr(step_stats, "_compiled_kernel", broken)
    monkeypatch.setattr(step_stats, "_BROKEN", None)
    monkeypatch.setattr(step_stats, "_WARNED", False)
    _, moments, _ = _recorded("linear")
    with pytest.warns(RuntimeWarning, match="no compiler here"):
        got = StepStats(dtype=torch.float64, compiled=True)(moments)
    ref = _reference(moments)
    for field in FIELDS:
        assert torch.equal(got.flat(field), ref.flat(field)), field
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # once per process
        StepStats(dtype=torch.float64, compiled=True)(moments)


def test_the_path_is_a_function_of_the_program(monkeypatch):
    """compiled=None compiles only large groups, never under ADAMLAB_NO_COMPILE; False never."""
    calls = []

    def spy() -> object:
        def kernel(*args: object) -> None:
            calls.append(args[0].numel())
            step_stats._stats_into(*args)
        return kernel

    monkeypatch.setattr(step_stats, "_compiled_kernel", spy)
    monkeypatch.setattr(step_stats, "_BROKEN", None)
    monkeypatch.setattr(step_stats, "COMPILE_MIN_NUMEL", 100)
    small, large = torch.ones(99), torch.ones(100)
    for s1 in (small, large):
        StepStats()({"w": Moments(s1, s1 * 2, 4)})
        StepStats(compiled=False)({"w": Moments(s1, s1 * 2, 4)})
    assert calls == [100]
    monkeypatch.setenv("ADAMLAB_NO_COMPILE", "1")
    StepStats()({"w": Moments(large, large * 2, 4)})
    assert calls == [100]


# -- the Linear rule takes S_1 from autograd's addmm/mm node -------------------------------------------

def test_linear_s1_excludes_a_penalty_in_the_loss_and_never_aliases_grad():
    """The node's weight gradient is the data term's alone (a penalty on the weight reaches .grad by
    another path), and the recorded S_1 is its own tensor, not .grad's."""
    model, x, y = _model("linear")
    ref = _loop(model, x, y)
    for reduction in ("mean", "sum"):
        model.zero_grad()
        with MomentRecorder(model, reduction=reduction) as rec:
            loss = F.cross_entropy(model(x), y, reduction=reduction)
            (loss + 0.7 * sum(p.square().sum() for p in model.parameters())).backward()
        moments = rec.moments()
        _assert_moments_match(moments, ref)
        for name, p in model.named_parameters():
            assert moments[name].s1.untyped_storage().data_ptr() != p.grad.untyped_storage().data_ptr()


def test_linear_s1_when_autograd_skips_the_weight_gradient():
    """torch.autograd.grad for the input alone: the node computes no weight gradient, the rule does."""
    model, x, y = _model("linear")
    ref = _loop(model, x, y)
    x = x.clone().requires_grad_()
    with MomentRecorder(model) as rec:
        torch.autograd.grad(F.cross_entropy(model(x), y), [x])
    _assert_moments_match(rec.moments(), ref)


def test_linear_followed_by_an_in_place_activation():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 8), nn.ReLU(inplace=True), nn.Linear(8, 3)).double()
    x, y = torch.randn(9, 6, dtype=torch.float64), torch.randint(0, 3, (9,))
    ref = _loop(model, x, y)
    with MomentRecorder(model) as rec:
        F.cross_entropy(model(x), y).backward()
    _assert_moments_match(rec.moments(), ref)


# -- MomentRecorder(keep_buffers=True) ------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["linear", "conv2d", "embedding", "seq_layernorm", "fallback"])
def test_kept_buffers_hold_the_same_moments_and_are_reused(kind):
    model, x, y = _model(kind)
    fresh = MomentRecorder(model).attach()
    kept = MomentRecorder(model, keep_buffers=True).attach()
    pointers = None
    for scale in (1.0, 0.5):
        fresh.reset()
        kept.reset()
        F.cross_entropy(model(x * scale if x.is_floating_point() else x), y).backward()
        a, b = fresh.moments(), kept.moments()
        assert list(a) == list(b)
        for name in a:
            assert a[name].n == b[name].n
            assert torch.equal(a[name].s1, b[name].s1) and torch.equal(a[name].s2, b[name].s2), name
        now = {k: (m.s1.data_ptr(), m.s2.data_ptr()) for k, m in b.items()}
        assert pointers is None or now == pointers  # the same memory at every step
        pointers = now
    fresh.detach()
    kept.detach()


def test_kept_buffers_accumulate_without_reset_and_step_stats_reads_the_block(monkeypatch):
    model, x, y = _model("linear")
    ref = MomentRecorder(model).attach()
    kept = MomentRecorder(model, keep_buffers=True).attach()
    for _ in range(2):  # two backward passes, no reset: the sums add up
        F.cross_entropy(model(x), y).backward()
    a, b = ref.moments(), kept.moments()
    for name in a:
        assert b[name].n == 2 * x.shape[0]
        assert torch.equal(a[name].s1, b[name].s1) and torch.equal(a[name].s2, b[name].s2)
    cats = []
    real_cat = torch.cat
    monkeypatch.setattr(torch, "cat", lambda *args, **kw: cats.append(1) or real_cat(*args, **kw))
    got = StepStats(dtype=torch.float64, compiled=False)(b)
    assert cats == []  # one block of the recorder: read in place, not copied
    ref_stats = _reference(a)
    for field in FIELDS:
        for name in a:
            assert torch.equal(getattr(got, field)[name], getattr(ref_stats, field)[name]), (field, name)
    StepStats(dtype=torch.float64, compiled=False)(a)
    assert cats  # separate tensors: copied into one


def test_monitor_with_a_module_that_falls_back_to_torch_func():
    """The monitor's recorder stays attached while it reads the moments: the fallback's own calls of the
    module (under torch.func) must not be recorded as a forward pass."""
    from adamlab.dissect.monitor import Monitor
    from adamlab.optim.registry import make_optimizer

    model, x, y = _model("fallback")
    opt = make_optimizer("adam", model.parameters(), lr=1e-3)
    monitor = Monitor(model, opt, every=1, sample=None)
    for _ in range(3):
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        opt.step()
    monitor.close()
    assert [r["step"] for r in monitor.history] == [1.0, 2.0, 3.0]
    assert set(monitor.fell_back) == {"1", "2"} and math.isfinite(monitor.history[-1]["eta2_median/1"])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device (benchmarks/gpu_check.sh runs it)")
@pytest.mark.parametrize("compiled", [False, True])
def test_cuda_statistics_match_the_cpu(compiled):
    _, moments, _ = _recorded("linear")
    ref = _reference(moments)
    on_gpu = {k: Moments(m.s1.cuda(), m.s2.cuda(), m.n) for k, m in moments.items()}
    got = StepStats(dtype=torch.float64, compiled=compiled)(on_gpu)
    for field in FIELDS:
        a, b = got.flat(field).cpu(), ref.flat(field)
        ok = torch.isfinite(b) & (b.abs() < 1e8)
        np.testing.assert_allclose(a[ok].numpy(), b[ok].numpy(), rtol=1e-12, atol=1e-14, err_msg=field)


def test_a_recorders_kept_block_is_planned_once_and_read_fresh_every_step(monkeypatch):
    model, x, y = _model("conv2d")
    recorder = MomentRecorder(model, keep_buffers=True).attach()
    stats = StepStats(dtype=torch.float64, compiled=False)
    plans = []
    real = stats._make_plan
    monkeypatch.setattr(stats, "_make_plan", lambda *a: plans.append(1) or real(*a))
    for scale in (1.0, 0.3, 2.0):
        recorder.reset()
        F.cross_entropy(model(x * scale), y).backward()
        got = stats(recorder.moments())
        ref = _reference(recorder.moments())
        for field in FIELDS:
            assert torch.equal(got.flat(field), ref.flat(field)), (scale, field)
    assert plans == [1]  # same tensors every step: planned once
    F.cross_entropy(model(x), y).backward()  # no reset: n doubles, a new plan
    got = stats(recorder.moments())
    assert plans == [1, 1] and got.n_examples == 2 * x.shape[0]
    assert torch.equal(got.flat("variance"), _reference(recorder.moments()).flat("variance"))
    recorder.detach()


def test_kept_buffers_follow_the_model_when_it_is_cast():
    """A model cast (or moved) after the first step gets new blocks in its new dtype (or device)."""
    model, x, y = _model("linear")
    model = model.float()
    recorder = MomentRecorder(model, keep_buffers=True).attach()
    F.cross_entropy(model(x.float()), y).backward()
    assert recorder.moments()["0.weight"].s1.dtype == torch.float32
    model.double()
    recorder.enabled = False  # the reference's own passes are not recorded
    ref = _loop(model, x, y)
    recorder.enabled = True
    recorder.reset()
    F.cross_entropy(model(x), y).backward()
    moments = recorder.moments()
    assert {m.s1.dtype for m in moments.values()} == {torch.float64}
    assert len({m.s1.untyped_storage().data_ptr() for m in moments.values()}) == 1  # one new block
    _assert_moments_match(moments, ref)
    recorder.detach()


def test_torch_func_over_the_model_leaves_an_attached_recorder_alone():
    """gradient_stats (vmap over the whole model) while a recorder is attached: its hooks stand aside, so
    the torch.func pass works and the recorded moments stay those of the real backward pass."""
    from adamlab.dissect.stats import gradient_stats

    model, x, y = _model("linear")
    recorder = MomentRecorder(model).attach()
    F.cross_entropy(model(x), y).backward()
    before = {k: (m.s1.clone(), m.s2.clone(), m.n) for k, m in recorder.moments().items()}
    stats = gradient_stats(model, F.cross_entropy, x, y)
    after = recorder.moments()
    for name, (s1, s2, n) in before.items():
        assert after[name].n == n and torch.equal(after[name].s1, s1) and torch.equal(after[name].s2, s2)
    _close(stats.mean["0.weight"], before["0.weight"][0] / n)
    recorder.detach()
