"""``--device``: parsing, the availability check (one line), the record of where a run ran, determinism."""

from __future__ import annotations

import os

import pytest
import torch

from adamlab.runs import device as dev
from tests.devices.conftest import has_cuda, has_mps


@pytest.mark.parametrize("spec", [None, "cpu", "CPU", " cpu ", torch.device("cpu")])
def test_cpu_forms_give_the_cpu(spec):
    assert dev.parse_device(spec) == torch.device("cpu")


def test_auto_picks_an_accelerator_only_when_there_is_one():
    got = dev.parse_device("auto")
    if has_cuda():
        assert got.type == "cuda" and got.index is not None
    elif has_mps():
        assert got.type == "mps"
    else:
        assert got == torch.device("cpu")


@pytest.mark.parametrize("spec", ["gpu", "cuda:", "cuda:-1", "cuda:x", "", "cpu:0", "tpu", "cuda0"])
def test_bad_spellings_name_the_parameter_and_the_allowed_forms(spec):
    with pytest.raises(ValueError) as err:
        dev.parse_device(spec)
    message = str(err.value)
    assert not isinstance(err.value, dev.DeviceUnavailableError)
    assert message.startswith("device must be one of cpu, cuda, cuda:N, mps, auto")
    assert "\n" not in message


@pytest.mark.skipif(has_cuda(), reason="this machine has CUDA")
@pytest.mark.parametrize("spec", ["cuda", "cuda:0", "cuda:3"])
def test_missing_cuda_is_one_line_naming_the_device(spec):
    with pytest.raises(dev.DeviceUnavailableError) as err:
        dev.parse_device(spec)
    message = str(err.value)
    assert f"device {spec!r} is not available here" in message and "--device cpu" in message
    assert "\n" not in message
    assert isinstance(err.value, ValueError)  # the CLI's exit 2


@pytest.mark.skipif(not has_cuda(), reason="needs a CUDA device")
def test_a_cuda_index_past_the_last_gpu_is_unavailable():
    n = torch.cuda.device_count()
    assert dev.parse_device("cuda:0") == torch.device("cuda", 0)
    with pytest.raises(dev.DeviceUnavailableError, match=f"there are {n} CUDA device"):
        dev.parse_device(f"cuda:{n}")


@pytest.mark.skipif(has_mps(), reason="this machine has MPS")
def test_missing_mps_is_one_line():
    with pytest.raises(dev.DeviceUnavailableError, match="device 'mps' is not available here"):
        dev.parse_device("mps")


def test_a_cpu_run_adds_nothing_to_its_execution_record_unless_deterministic():
    assert dev.execution_record(None) == {} and dev.execution_record(torch.device("cpu")) == {}
    dev.set_deterministic(True)
    record = dev.execution_record("cpu")
    assert record["device"] == "cpu" and record["device_type"] == "cpu" and record["deterministic"] is True
    assert record["torch"] == torch.__version__ and record["cuda"] is None


def test_device_record_names_type_name_and_versions():
    record = dev.device_record(torch.device("cpu"))
    assert set(record) == {"device", "device_type", "device_name", "torch", "cuda", "deterministic"}
    assert record["device_name"]  # the processor, never empty


@pytest.mark.skipif(not has_cuda(), reason="needs a CUDA device")
def test_device_record_of_a_gpu():
    record = dev.device_record(torch.device("cuda", 0))
    assert record["device"] == "cuda:0" and record["device_type"] == "cuda"
    assert record["device_name"] == torch.cuda.get_device_name(0) and record["cuda"] == torch.version.cuda


def test_device_label_reads_an_execution_record():
    assert dev.device_label(None) is None
    assert dev.device_label({"backend": "serial", "block_size": 1}) == "cpu"
    assert dev.device_label({"device": "cuda:1", "device_name": "NVIDIA H200"}) == "cuda:1 (NVIDIA H200)"
    assert dev.device_label({"device": "cpu", "device_name": "x86_64"}) == "cpu"


def test_set_deterministic_switches_torch_and_cudnn_and_sets_cublas_workspace():
    dev.set_deterministic(True)
    assert torch.are_deterministic_algorithms_enabled()
    assert torch.backends.cudnn.deterministic and not torch.backends.cudnn.benchmark
    assert os.environ["CUBLAS_WORKSPACE_CONFIG"] == dev.CUBLAS_WORKSPACE
    dev.set_deterministic(False)
    assert not torch.are_deterministic_algorithms_enabled() and not torch.backends.cudnn.deterministic


def test_setup_device_checks_before_switching_determinism():
    with pytest.raises(ValueError):
        dev.setup_device("gpu", deterministic=True)
    assert not torch.are_deterministic_algorithms_enabled()
    assert dev.setup_device("cpu", deterministic=True) == torch.device("cpu")
    assert torch.are_deterministic_algorithms_enabled()
