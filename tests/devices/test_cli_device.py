"""``--device`` on run, sweep, reproduce and verify: a missing or misspelt device is one line, exit 2, before
any training (no store, no output folder is created)."""

from __future__ import annotations

import pytest
import torch

from adamlab import cli

COMMANDS = {
    "run": ["run", "quadratic.noisy", "--optimizer", "adam", "--lr", "0.01", "--steps", "3", "-q"],
    "sweep": ["sweep", "quadratic.noisy", "--optimizers", "adam", "--lr-grid", "0.01,0.1", "--steps", "3", "-q"],
    "reproduce": ["reproduce", "noisy-quadratic", "--quick", "--quiet"],
    "verify": ["verify", "--optimizer", "adam", "--property", "step_bound"],
}


def _paths(command, tmp_path):
    if command in ("run", "sweep"):
        return ["--store", str(tmp_path / "s.sqlite")]
    if command == "reproduce":
        return ["--out", str(tmp_path / "out")]
    return ["--json", str(tmp_path / "v.json")]


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
@pytest.mark.parametrize("command", sorted(COMMANDS))
@pytest.mark.parametrize("device", ["cuda", "cuda:1"])
def test_missing_cuda_is_one_line_and_exit_2_before_training(command, device, tmp_path, capsys):
    code = cli.main([*COMMANDS[command], *_paths(command, tmp_path), "--device", device, "--deterministic"])
    out, err = capsys.readouterr()
    assert code == 2
    assert err.count("\n") == 1 and err.startswith(f"adamlab {command}: error: device {device!r} is not available")
    assert list(tmp_path.iterdir()) == []  # nothing trained, nothing written
    assert not torch.are_deterministic_algorithms_enabled()  # the device is checked first


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_a_misspelt_device_lists_the_allowed_ones(command, tmp_path, capsys):
    code = cli.main([*COMMANDS[command], *_paths(command, tmp_path), "--device", "gpu"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1
    assert "device must be one of cpu, cuda, cuda:N, mps, auto; got 'gpu'" in err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_command_documents_device_and_deterministic(command, capsys):
    with pytest.raises(SystemExit):
        cli.main([command, "--help"])
    text = capsys.readouterr().out
    assert "--device DEV" in text and "--deterministic" in text and "cuda:N" in text


def test_verify_on_the_cpu_equals_the_default(tmp_path, capsys):
    from adamlab.claims.properties import verify

    a = verify(optimizers=["adam", "msvag"], properties=["step_bound", "rescaling_invariance"])
    b = verify(optimizers=["adam", "msvag"], properties=["step_bound", "rescaling_invariance"], device="cpu")
    assert [r.to_dict() for r in a] == [r.to_dict() for r in b]


def test_claims_step_their_optimizers_on_the_chosen_device(monkeypatch):
    """A fake device: the checks' optimizer sees parameters on the device given to ``verify``."""
    from adamlab.claims import properties, records

    seen = []
    real = properties._hparams

    def spy(factory, params, lr, **extra):
        seen.append(params[0].device.type)
        return real(factory, params, lr, **extra)

    monkeypatch.setattr(properties, "_hparams", spy)
    with records.on_device("cpu"):
        properties.check_rescaling_invariance("adam")
    assert seen and set(seen) == {"cpu"}
    with records.on_device("mps"):  # no float64 on MPS: the float64 checks stay on the CPU
        assert records.claims_device() == torch.device("cpu")
        assert records.claims_device(torch.float32) == torch.device("mps")
    assert records.claims_device() == torch.device("cpu")
