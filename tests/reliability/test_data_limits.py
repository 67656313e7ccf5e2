"""Item 14 of issue 23 (data): a file is refused from its size before it is hashed; an IDX header
whose dimension product overflows int64 is a clear format error."""

from __future__ import annotations

import gzip
import os

import pytest

from adamlab.data import DataFormatError, integrity
from adamlab.data.idx import read_idx_gz
from adamlab.data.testing import tiny_datasets


def test_a_huge_sparse_data_file_is_refused_from_its_size_without_hashing(tmp_path, monkeypatch):
    with tiny_datasets(tmp_path / "root") as root:
        target = root / "mnist" / "train-images-idx3-ubyte.gz"
        with open(target, "r+b") as fh:
            fh.truncate(integrity.MAX_FILE_BYTES + 1)  # sparse: no disk used

        real = integrity.hash_file

        def never(path, *args, **kwargs):
            assert path != target, "the huge file was hashed"
            return real(path, *args, **kwargs)

        monkeypatch.setattr(integrity, "hash_file", never)
        statuses = {s.relpath: s for s in integrity.check_dataset("mnist", root, rehash=True)}
    bad = statuses["mnist/train-images-idx3-ubyte.gz"]
    assert bad.status == "BAD" and "larger than any dataset file" in bad.found


def test_an_idx_header_whose_dimension_product_overflows_int64_is_a_format_error(tmp_path):
    # 2**22 * 2**21 * 2**21 = 2**64, which int64 wraps to 0: the old check took 0 data bytes as right
    header = bytes([0, 0, 8, 3]) + (2**22).to_bytes(4, "big") + (2**21).to_bytes(4, "big") * 2
    path = tmp_path / "forged.gz"
    path.write_bytes(gzip.compress(header))
    with pytest.raises(DataFormatError, match="need 18446744073709551616"):
        read_idx_gz(path, 3)


@pytest.mark.parametrize("value", [0, 0.0, 1e-9, -1.0, float("nan"), 200.0])
def test_store_heartbeat_every_out_of_range_is_refused(tmp_path, value):
    from adamlab.store import Store

    with pytest.raises(ValueError, match="heartbeat_every must be in"):
        Store(tmp_path / "s.sqlite", claim_timeout=300.0, heartbeat_every=value)
    assert not os.path.exists(tmp_path / "s.sqlite")
