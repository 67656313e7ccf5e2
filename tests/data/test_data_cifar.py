"""CIFAR binary reader: record layout, tarball and folder forms, never unpickling."""

from __future__ import annotations

import gzip
import io
import pickle
import tarfile

import numpy as np
import pytest

from adamlab.data import DataFormatError, load
from adamlab.data.cifar import parse_records
from adamlab.data.registry import Checksum, override_checksums
from adamlab.data.testing import cifar_records


@pytest.fixture(autouse=True)
def _no_pickle(monkeypatch):
    """Any attempt to unpickle during these tests fails loudly."""

    def boom(*args, **kwargs):
        raise AssertionError("pickle must never be used to read CIFAR")

    monkeypatch.setattr(pickle, "load", boom)
    monkeypatch.setattr(pickle, "loads", boom)
    monkeypatch.setattr(pickle, "Unpickler", boom)


def _record(label_bytes: list[int], seed: int) -> tuple[bytes, np.ndarray]:
    px = np.random.default_rng(seed).integers(0, 256, size=3072, dtype=np.uint8)
    return bytes(label_bytes) + px.tobytes(), px


def test_record_layout_cifar10(tmp_path):
    rec0, px0 = _record([7], 0)
    rec1, px1 = _record([2], 1)
    x, y = parse_records(rec0 + rec1, 1, "cifar10", "f", tmp_path)
    assert x.shape == (2, 3, 32, 32) and y[:, 0].tolist() == [7, 2]
    # Channel-major: the first 1024 bytes are red, row-major 32 x 32.
    assert x[0, 0, 0, 1] == px0[1] and x[0, 1, 0, 0] == px0[1024] and x[1, 2, 31, 31] == px1[3071]
    assert x[0, 0, 1, 0] == px0[32]


def test_record_layout_cifar100_coarse_then_fine(tmp_path):
    rec, px = _record([3, 42], 0)
    x, y = parse_records(rec, 2, "cifar100", "f", tmp_path)
    assert y.tolist() == [[3, 42]] and x[0, 2, 0, 0] == px[2048]


def test_partial_record_raises(tmp_path):
    rec, _ = _record([1], 0)
    with pytest.raises(DataFormatError, match="whole number of 3073-byte records"):
        parse_records(rec + rec[:100], 1, "cifar10", "f", tmp_path)


def test_load_folder_form(tiny_root):
    x, y = load("cifar10", "train", root=tiny_root)
    assert (
        tuple(x.shape) == (60, 3, 32, 32) and str(x.dtype) == "torch.uint8" and str(y.dtype) == "torch.int64"
    )
    raw = (tiny_root / "cifar10/cifar-10-batches-bin/data_batch_2.bin").read_bytes()
    np.testing.assert_array_equal(x[12].numpy().ravel(), np.frombuffer(raw[1:3073], np.uint8))
    assert int(y[12]) == raw[0]
    xt, yt = load("cifar10", "test", root=tiny_root)
    assert tuple(xt.shape) == (16, 3, 32, 32) and int(yt.max()) < 10


def test_cifar100_fine_and_coarse(tiny_root):
    raw = np.frombuffer((tiny_root / "cifar100/cifar-100-binary/train.bin").read_bytes(), np.uint8)
    raw = raw.reshape(-1, 3074)
    _, fine = load("cifar100", "train", root=tiny_root)
    _, coarse = load("cifar100", "train", root=tiny_root, label="coarse")
    np.testing.assert_array_equal(fine.numpy(), raw[:, 1])
    np.testing.assert_array_equal(coarse.numpy(), raw[:, 0])
    with pytest.raises(ValueError, match="label must be"):
        load("cifar100", "train", root=tiny_root, label="medium")


def _write_tar(path, members: dict[str, bytes]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    path.write_bytes(gzip.compress(buf.getvalue()))


def test_tarball_form_equals_folder_form(tmp_path):
    import hashlib

    rng = np.random.default_rng(9)
    files = {f"data_batch_{i}.bin": cifar_records(rng, 3, False) for i in range(1, 6)}
    files["test_batch.bin"] = cifar_records(rng, 4, False)
    tar = tmp_path / "cifar10" / "cifar-10-binary.tar.gz"
    members = {f"cifar-10-batches-bin/{k}": v for k, v in files.items()}
    members["cifar-10-batches-bin/batches.meta.txt"] = b"airplane\n"
    _write_tar(tar, members)
    md5 = hashlib.md5(tar.read_bytes()).hexdigest()
    with override_checksums({"cifar10/cifar-10-binary.tar.gz": Checksum("md5", md5)}):
        x, y = load("cifar10", "train", root=tmp_path)
    expect = np.frombuffer(b"".join(files[f"data_batch_{i}.bin"] for i in range(1, 6)), np.uint8)
    expect = expect.reshape(-1, 3073)
    np.testing.assert_array_equal(y.numpy(), expect[:, 0])
    np.testing.assert_array_equal(x.numpy().reshape(15, -1), expect[:, 1:])


def test_tarball_missing_member_raises(tmp_path):
    import hashlib

    tar = tmp_path / "cifar100" / "cifar-100-binary.tar.gz"
    _write_tar(tar, {"cifar-100-binary/train.bin": cifar_records(np.random.default_rng(0), 2, True)})
    md5 = hashlib.md5(tar.read_bytes()).hexdigest()
    with override_checksums({"cifar100/cifar-100-binary.tar.gz": Checksum("md5", md5)}):
        assert load("cifar100", "train", root=tmp_path)[0].shape[0] == 2
        with pytest.raises(DataFormatError, match="lacks cifar-100-binary/test.bin"):
            load("cifar100", "test", root=tmp_path)


def test_label_out_of_range_raises(tiny_root):
    p = tiny_root / "cifar10/cifar-10-batches-bin/test_batch.bin"
    raw = bytearray(p.read_bytes())
    raw[0] = 10
    bad = tiny_root.parent / "bad"
    (bad / "cifar10/cifar-10-batches-bin").mkdir(parents=True)
    for f in (tiny_root / "cifar10/cifar-10-batches-bin").iterdir():
        (bad / "cifar10/cifar-10-batches-bin" / f.name).write_bytes(f.read_bytes())
    (bad / "cifar10/cifar-10-batches-bin/test_batch.bin").write_bytes(bytes(raw))
    import hashlib

    with (
        override_checksums(
            {
                "cifar10/cifar-10-batches-bin/test_batch.bin": Checksum(
                    "sha256", hashlib.sha256(raw).hexdigest()
                )
            }
        ),
        pytest.raises(DataFormatError, match="label 10 outside"),
    ):
        load("cifar10", "test", root=bad)
