"""IDX gzip reader: round trip, magic numbers, dimensions, truncation."""

from __future__ import annotations

import gzip

import numpy as np
import pytest

from adamlab.data import DataFormatError, DataIntegrityError, load
from adamlab.data.idx import read_idx_gz, read_idx_pair
from adamlab.data.testing import idx_bytes, write_idx_gz


def test_round_trip_and_header_bytes(tmp_path):
    rng = np.random.default_rng(0)
    a = rng.integers(0, 256, size=(5, 28, 28), dtype=np.uint8)
    write_idx_gz(tmp_path / "x.gz", a)
    raw = gzip.decompress((tmp_path / "x.gz").read_bytes())
    # Header written by hand from the format description: magic 0x00000803, dims big-endian.
    assert raw[:16] == bytes([0, 0, 8, 3, 0, 0, 0, 5, 0, 0, 0, 28, 0, 0, 0, 28])
    np.testing.assert_array_equal(read_idx_gz(tmp_path / "x.gz", 3), a)


def test_wrong_magic_raises(tmp_path):
    raw = bytearray(idx_bytes(np.zeros((3,), np.uint8)))
    raw[2] = 0x0D  # float type code, not unsigned byte
    (tmp_path / "l.gz").write_bytes(gzip.compress(bytes(raw)))
    with pytest.raises(DataFormatError, match="magic number 0x00000d01, expected 0x00000801"):
        read_idx_gz(tmp_path / "l.gz", 1)


def test_wrong_ndim_raises(tmp_path):
    write_idx_gz(tmp_path / "x.gz", np.zeros((2, 28, 28), np.uint8))
    with pytest.raises(DataFormatError, match="magic"):
        read_idx_gz(tmp_path / "x.gz", 1)


def test_length_mismatch_raises(tmp_path):
    raw = idx_bytes(np.zeros((4, 28, 28), np.uint8))
    (tmp_path / "x.gz").write_bytes(gzip.compress(raw[:-10]))
    with pytest.raises(DataFormatError, match="dimensions"):
        read_idx_gz(tmp_path / "x.gz", 3)


def test_truncated_gzip_raises(tmp_path):
    write_idx_gz(
        tmp_path / "x.gz", np.arange(4 * 28 * 28, dtype=np.uint64).astype(np.uint8).reshape(4, 28, 28)
    )
    data = (tmp_path / "x.gz").read_bytes()
    (tmp_path / "x.gz").write_bytes(data[: len(data) // 2])
    with pytest.raises(DataFormatError, match="gzip") as info:
        read_idx_gz(tmp_path / "x.gz", 3, "mnist", "mnist/x.gz")
    assert isinstance(info.value, DataIntegrityError) and isinstance(info.value, ValueError)


def test_not_gzip_raises(tmp_path):
    (tmp_path / "x.gz").write_bytes(idx_bytes(np.zeros((2,), np.uint8)))
    with pytest.raises(DataFormatError):
        read_idx_gz(tmp_path / "x.gz", 1)


def test_pair_checks_counts_and_labels(tmp_path):
    write_idx_gz(tmp_path / "i.gz", np.zeros((3, 28, 28), np.uint8))
    write_idx_gz(tmp_path / "l.gz", np.array([0, 1], np.uint8))
    with pytest.raises(DataFormatError, match="2 labels for 3 images"):
        read_idx_pair(tmp_path / "i.gz", tmp_path / "l.gz", "mnist")
    write_idx_gz(tmp_path / "l.gz", np.array([0, 1, 10], np.uint8))
    with pytest.raises(DataFormatError, match="label 10 outside"):
        read_idx_pair(tmp_path / "i.gz", tmp_path / "l.gz", "mnist")


@pytest.mark.parametrize("name", ["mnist", "fashion_mnist"])
def test_load_tiny_matches_written_arrays(tiny_root, name):
    x, y = load(name, "train", root=tiny_root)
    raw_x = read_idx_gz(tiny_root / name / "train-images-idx3-ubyte.gz", 3)
    raw_y = read_idx_gz(tiny_root / name / "train-labels-idx1-ubyte.gz", 1)
    assert x.dtype.is_floating_point is False and str(x.dtype) == "torch.uint8"
    assert str(y.dtype) == "torch.int64"
    assert tuple(x.shape) == (64, 28, 28)
    np.testing.assert_array_equal(x.numpy(), raw_x)
    np.testing.assert_array_equal(y.numpy(), raw_y.astype(np.int64))
    assert sorted(set(y.tolist())) == list(range(10))
    xt, yt = load(name, "test", root=tiny_root)
    assert tuple(xt.shape) == (32, 28, 28) and tuple(yt.shape) == (32,)
