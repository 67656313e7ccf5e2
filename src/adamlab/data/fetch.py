"""Download dataset files from their official URLs, verified before they land in place.

Each file is streamed to a temporary file in its destination folder
(:func:`adamlab.util.files.atomic_path`) while its checksum is computed; only a file with the expected
checksum is moved (atomically) onto its final name.
URLs are tried in order (official first, then known mirrors with byte-identical files).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import IO

from tqdm.auto import tqdm

from adamlab.data.errors import DataFetchError, DataIntegrityError, DataNotFoundError
from adamlab.data.integrity import FileStatus, check_file, resolve
from adamlab.data.paths import data_root
from adamlab.data.registry import FileSpec, expected_checksum, get_spec
from adamlab.util.files import atomic_path

Opener = Callable[[str], IO[bytes]]
_CHUNK = 1 << 16


def _default_opener(url: str) -> IO[bytes]:
    req = urllib.request.Request(url, headers={"User-Agent": "adamlab-data-fetch"})
    return urllib.request.urlopen(req, timeout=60)  # noqa: S310 - official dataset URLs / file:// in tests


def download_file(
    dataset: str, spec: FileSpec, root: Path, *, opener: Opener | None = None, progress: bool = True
) -> Path:
    """Download ``spec`` to ``root / spec.relpath`` from the first URL that yields the right bytes.

    Raises
    ------
    DataFetchError
        Every URL failed; the message lists each URL's error (network error or checksum mismatch
        with expected and found digests).
    """
    checksum = expected_checksum(spec)
    if not spec.urls:
        raise DataFetchError(f"{dataset}: no download URL is known for {spec.relpath}")
    dest = root / spec.relpath
    dest.parent.mkdir(parents=True, exist_ok=True)
    open_url = opener or _default_opener
    errors: list[str] = []
    for url in spec.urls:
        try:
            # The temporary file is moved onto dest only when the block ends normally, so a rejected
            # download (_Rejected) or a network error leaves dest as it was and no temporary behind.
            with atomic_path(dest, fsync=True) as tmp:
                digest, size = _stream(open_url, url, tmp, checksum.algorithm if checksum else None,
                                       f"{dataset}: {spec.name}", progress)
                if checksum is not None and digest != checksum.hexdigest.lower():
                    raise _Rejected(f"expected {checksum}, found {checksum.algorithm}:{digest}")
                if checksum is None and spec.size is not None and size != spec.size:
                    raise _Rejected(f"expected size {spec.size} bytes, found {size}")
            return dest
        except (_Rejected, OSError) as err:  # URLError and HTTPError are OSErrors
            errors.append(f"{url}: {err}")
    raise DataFetchError(f"{dataset}: could not download {spec.relpath} to {dest}: " + "; ".join(errors))


class _Rejected(Exception):
    """A download that completed but has the wrong checksum or size."""


def _stream(open_url: Opener, url: str, tmp: Path, algorithm: str | None, desc: str,
            progress: bool) -> tuple[str | None, int]:
    """Copy ``url`` to ``tmp`` while hashing it; returns ``(hex digest or None, size in bytes)``."""
    h = hashlib.new(algorithm) if algorithm else None
    size = 0
    with open(tmp, "wb") as out, contextlib.closing(open_url(url)) as resp:
        total = getattr(resp, "length", None) or None
        with tqdm(total=total, unit="B", unit_scale=True, desc=desc, disable=not progress) as bar:
            while chunk := resp.read(_CHUNK):
                out.write(chunk)
                if h is not None:
                    h.update(chunk)
                size += len(chunk)
                bar.update(len(chunk))
    return (h.hexdigest() if h is not None else None), size


def fetch(
    name: str,
    root: str | os.PathLike[str] | None = None,
    *,
    opener: Opener | None = None,
    progress: bool = True,
) -> list[FileStatus]:
    """Make dataset ``name`` present and verified under the root, downloading what is needed.

    If any accepted form is already complete and valid nothing is downloaded. Otherwise every
    file of the dataset's downloadable form that is missing or bad is fetched.

    Parameters
    ----------
    name:
        A dataset name (see :func:`adamlab.data.names`).
    root:
        Data root (default ``$ADAMLAB_DATA``, else ``~/.cache/adamlab``); must be writable.
    opener:
        ``url -> binary file-like`` (default :func:`urllib.request.urlopen`); tests pass their own.
    progress:
        Show a tqdm progress bar per file.

    Returns
    -------
    list of FileStatus
        The verified files of the form now present.
    """
    spec = get_spec(name)
    base = data_root(root)
    with contextlib.suppress(DataNotFoundError, DataIntegrityError):
        return list(resolve(name, base).statuses)
    variant = spec.variant(spec.fetch_variant)
    for f in variant.files:
        if check_file(name, f, base).status not in ("ok", "ok-size"):
            download_file(name, f, base, opener=opener, progress=progress)
    return list(resolve(name, base).statuses)
