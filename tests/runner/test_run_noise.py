"""Each run draws its forward-pass noise from its own generator; a checkpoint carries that generator."""

from __future__ import annotations

import torch

from adamlab import problems
from adamlab.problems import noise
from adamlab.runner.train import execute
from adamlab.runs.config import make_config


def test_dropout_draws_from_the_active_generator_and_the_global_rng_otherwise():
    layer = noise.Dropout(0.5)
    x = torch.ones(4, 1000)
    a, b = noise.run_noise(3), noise.run_noise(3)
    with a.active():
        first = layer(x)
    with b.active():
        second = layer(x)
    assert torch.equal(first, second)  # same seed, same mask
    assert set(first.unique().tolist()) == {0.0, 2.0} and 0.4 < float((first == 0).float().mean()) < 0.6
    torch.manual_seed(0)
    g1 = layer(x)
    torch.manual_seed(0)
    assert torch.equal(g1, layer(x))  # no source: torch's global RNG, as nn.Dropout
    layer.eval()
    assert torch.equal(layer(x), x)
    with noise.recording(log := []):
        layer.train()(x)
    assert log == [("uniform", (4, 1000), torch.float32)]
    assert noise.noise_seed(0) != 0 and noise.noise_seed(1) != noise.noise_seed(0)


def test_checkpoint_resume_restores_the_noise_generator(tiny_data_root, tmp_path):
    problem = problems.get("imdb.bow_logreg", eval_size=20)
    config = make_config(problem, "adam", {"lr": 1e-2}, 0, 6, batch_size=8, eval_every=2)
    reference = execute(config, problem)
    ckpt = tmp_path / "run.pt"
    execute(config, problem, checkpoint_path=ckpt, checkpoint_every=2, stop_after=3)
    resumed = execute(config, problem, checkpoint_path=ckpt, checkpoint_every=2)
    for name in ("train_loss", "test_loss", "batch_loss"):
        assert resumed.series(name) == reference.series(name)
