"""Data-backed problems hold their data on the run's device when it fits, and slice batches there.

The ``meta`` device stands in for a GPU here: it has tensors with shapes and dtypes but no values.
"""

from __future__ import annotations

import pytest
import torch

from adamlab import problems
from adamlab.problems import datasets, noise

META = torch.device("meta")


@pytest.fixture
def fits(monkeypatch):
    monkeypatch.setattr(datasets, "fits_on", lambda device, nbytes: True)
    yield
    datasets.clear_cache()


def test_on_the_cpu_nothing_moves():
    x, y = torch.zeros(4, 2), torch.zeros(4)
    assert datasets.on_device(x, y, torch.device("cpu")) == (x, y)
    assert datasets.fits_on(torch.device("cpu"), 10**15)
    assert not datasets.fits_on(META, 1)  # an unknown kind of device holds nothing


def test_a_split_that_fits_is_copied_once_and_shared(fits):
    x, y = torch.zeros(4, 2, dtype=torch.uint8), torch.zeros(4, dtype=torch.int64)
    a = datasets.on_device(x, y, META)
    b = datasets.on_device(x, y, META)
    assert a[0].device == META and a[1].device == META
    assert a[0] is b[0] and a[1] is b[1]  # one copy per process and device


def test_a_split_that_does_not_fit_stays_on_the_host(monkeypatch):
    monkeypatch.setattr(datasets, "fits_on", lambda device, nbytes: False)
    x, y = torch.zeros(4, 2), torch.zeros(4)
    assert datasets.on_device(x, y, META) == (x, y)


def test_batches_come_out_on_the_device_and_equal_the_cpu_ones():
    x = torch.arange(40, dtype=torch.uint8).view(20, 2)
    y = torch.arange(20)
    cpu = datasets.shuffled_batches(x, y, 6, seed=3, transform=lambda t: t.float() / 255)
    same = datasets.shuffled_batches(x, y, 6, seed=3, transform=lambda t: t.float() / 255, device="cpu")
    meta = datasets.shuffled_batches(x, y, 6, seed=3, transform=lambda t: t.float() / 255, device=META)
    for _ in range(7):  # across an epoch boundary
        a, b, m = next(cpu), next(same), next(meta)
        assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
        assert m[0].device == META and m[0].dtype == torch.float32 and m[0].shape == a[0].shape


def test_a_problem_on_a_device_holds_its_data_there(tiny_data_root, fits):
    problem = problems.get("mnist.mlp", eval_size=16).set_device(META)
    inputs, targets = problem.data("train")
    assert inputs.device == META and targets.device == META
    batch = next(problem.train_batches(0, 8))
    assert batch[0].device == META and batch[1].device == META and batch[0].dtype == torch.float32
    assert problem.set_device("cpu").data("train")[0].device.type == "cpu"


def test_a_problem_whose_data_do_not_fit_still_yields_batches_on_the_device(tiny_data_root, monkeypatch):
    monkeypatch.setattr(datasets, "fits_on", lambda device, nbytes: False)
    problem = problems.get("fmnist.cnn", eval_size=16).set_device(META)
    assert problem.data("train")[0].device.type == "cpu"
    batch = next(problem.train_batches(0, 8))
    assert batch[0].device == META and batch[1].device == META


def test_the_device_is_not_part_of_a_problem_config():
    problem = problems.get("quadratic.noisy")
    before = problem.config()
    assert problem.set_device(META).config() == before and problem.device == META


def test_run_noise_on_the_cpu_is_unchanged_and_a_device_generator_draws_there():
    a, b = noise.run_noise(5), noise.run_noise(5, "cpu")
    req = [("uniform", (3, 4), torch.float32), ("normal", (2,), torch.float64)]
    for x, y in zip(a.draw_like(req), b.draw_like(req), strict=True):
        assert torch.equal(x, y) and x.device.type == "cpu"
    ref = torch.Generator().manual_seed(noise.noise_seed(5))
    assert torch.equal(noise.run_noise(5).draw_like(req[:1])[0], torch.rand(3, 4, generator=ref))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_run_noise_generator_on_cuda():
    n = noise.run_noise(5, "cuda")
    assert n.generator.device.type == "cuda"
    (x,) = n.draw_like([("uniform", (3, 4), torch.float32)])
    assert x.device.type == "cuda"
    m = noise.run_noise(5, "cuda")
    assert torch.equal(x, m.draw_like([("uniform", (3, 4), torch.float32)])[0])
