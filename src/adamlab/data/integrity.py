"""Checksum verification of dataset files, with a cache so each file is hashed once.

A file's digest is cached in ``<cache dir>/verified.json`` under its absolute path together with
its size and ``st_mtime_ns``; a later check with the same size and mtime reuses the digest
instead of re-reading the file. The expected checksum is compared on every call, so changing
the expected value (or the file) is always noticed.

What the cache trusts: a file whose size and modification time (nanoseconds) are unchanged is
taken to have unchanged contents, as ``make`` does. An edit that keeps the size and restores
the mtime (``touch -d``, ``os.utime``) is not noticed until the file is hashed again:
``adamlab data verify --rehash`` (or ``rehash=True``) ignores the cache and hashes every file.

The cache is only a hint: an entry that cannot be used (broken JSON, a value of the wrong
type, a digest that is not hex of the right length) is ignored, the file is hashed again and
the entry rewritten. A cache directory that cannot be written costs speed, never correctness.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import warnings
from dataclasses import dataclass
from pathlib import Path

from adamlab.data.errors import DataIntegrityError, DataNotFoundError
from adamlab.data.paths import cache_dir, data_root
from adamlab.data.registry import Checksum, DatasetSpec, FileSpec, Variant, expected_checksum, get_spec
from adamlab.util.files import atomic_open

_CACHE_NAME = "verified.json"


class DataWarning(UserWarning):
    """A dataset form was skipped because one of its files is bad, and another form was used."""


_CHUNK = 1 << 20


def hash_file(path: Path, algorithm: str) -> str:
    """Hex digest of the file at ``path`` with ``hashlib.new(algorithm)``, read in 1 MiB chunks."""
    h = hashlib.new(algorithm)
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def _cache_path() -> Path:
    return cache_dir() / _CACHE_NAME


_HEX = re.compile(r"[0-9a-f]+")


def _valid_entry(key: object, entry: object) -> bool:
    """Whether a cache entry has the shape :func:`cached_digest` or ``_check_folder`` writes."""
    if not isinstance(key, str) or not isinstance(entry, dict):
        return False
    if key.startswith("folder:"):
        fp = entry.get("fingerprint")
        return set(entry) == {"fingerprint"} and isinstance(fp, str) and len(fp) == 64 and bool(_HEX.fullmatch(fp))
    size, mtime = entry.get("size"), entry.get("mtime_ns")
    if type(size) is not int or type(mtime) is not int or size < 0:
        return False
    for algorithm, digest in entry.items():
        if algorithm in ("size", "mtime_ns"):
            continue
        try:
            length = hashlib.new(algorithm).digest_size * 2
        except (ValueError, TypeError):
            return False
        if not isinstance(digest, str) or len(digest) != length or not _HEX.fullmatch(digest):
            return False
    return True


def _load_cache() -> dict[str, dict]:
    """The usable entries of the cache file; anything unreadable is left out (and so rehashed)."""
    try:
        with open(_cache_path(), encoding="utf-8") as fh:
            data = json.load(fh)
    except (ValueError, OSError, RecursionError):  # missing, unreadable, not JSON, not UTF-8
        return {}
    if not isinstance(data, dict):
        return {}
    return {k: v for k, v in data.items() if _valid_entry(k, v)}


def _store_cache(key: str, entry: dict) -> None:
    data = _load_cache()  # drops unusable entries, so a broken file is repaired by the next write
    data[key] = entry
    try:
        with atomic_open(_cache_path(), "w", fsync=True) as fh:
            json.dump(data, fh, indent=0, sort_keys=True)
    except OSError:  # a read-only cache dir only costs speed
        pass


def cached_digest(path: Path, algorithm: str, *, rehash: bool = False) -> str:
    """``hash_file(path, algorithm)``, remembered across calls and processes by (path, size, mtime_ns).

    ``rehash=True`` ignores the cached digest (the fresh one is cached).
    """
    st = path.stat()
    key = str(path.resolve())
    entry = _load_cache().get(key, {})
    if (not rehash and entry.get("size") == st.st_size and entry.get("mtime_ns") == st.st_mtime_ns
            and algorithm in entry):
        return str(entry[algorithm])
    digest = hash_file(path, algorithm)
    if not (entry.get("size") == st.st_size and entry.get("mtime_ns") == st.st_mtime_ns):
        entry = {}
    entry.update({"size": st.st_size, "mtime_ns": st.st_mtime_ns, algorithm: digest})
    _store_cache(key, entry)
    return digest


@dataclass(frozen=True)
class FileStatus:
    """The outcome of checking one file: ``status`` is ``ok``, ``ok-size``, ``missing`` or ``BAD``.

    ``ok-size`` means the file has no published checksum and its exact size matched.
    """

    dataset: str
    relpath: str
    path: Path
    status: str
    expected: str
    found: str

    @property
    def present(self) -> bool:
        return self.status != "missing"


def describe_expected(spec: FileSpec) -> str:
    """The expected checksum (or size / manifest) of a file, as shown in messages."""
    checksum = expected_checksum(spec)
    if checksum is not None:
        return str(checksum)
    if spec.manifest is not None:
        return f"md5 of every review file as listed in {spec.manifest}"
    if spec.size is not None:
        return f"size {spec.size} bytes (no published checksum)"
    return "no checksum"


#: No file of a registered dataset is larger (the biggest, CIFAR-10's tarball, is 170 MB): a larger one
#: is refused from its size, before it is hashed.
MAX_FILE_BYTES = 2**31


def check_file(dataset: str, spec: FileSpec, root: Path, *, rehash: bool = False) -> FileStatus:
    """Check one file of ``dataset`` under ``root`` against its expected checksum; never raises
    for a missing or bad file (see ``FileStatus``). ``rehash=True``: hash it even if the cache
    knows it."""
    path = root / spec.relpath
    expected = describe_expected(spec)
    if spec.manifest is not None:
        return _check_folder(dataset, spec, root, rehash=rehash)
    if not path.is_file():
        return FileStatus(dataset, spec.relpath, path, "missing", expected, "missing")
    checksum = expected_checksum(spec)
    size = path.stat().st_size
    if size > MAX_FILE_BYTES:  # checked before hashing: hashing a huge (or sparse) file takes minutes
        return FileStatus(dataset, spec.relpath, path, "BAD", expected,
                          f"size {size} bytes, larger than any dataset file ({MAX_FILE_BYTES} bytes)")
    if checksum is not None:
        found = cached_digest(path, checksum.algorithm, rehash=rehash)
        status = "ok" if found == checksum.hexdigest.lower() else "BAD"
        return FileStatus(dataset, spec.relpath, path, status, expected, f"{checksum.algorithm}:{found}")
    if spec.size is not None and size != spec.size:
        return FileStatus(dataset, spec.relpath, path, "BAD", expected, f"size {size} bytes")
    return FileStatus(dataset, spec.relpath, path, "ok-size", expected, f"size {size} bytes")


_MANIFEST_LINE = re.compile(r"^([0-9a-fA-F]{32})\s+\*?(?:\./)?(.+)$")
_FOLDER_FILE = re.compile(r"^(?:(train|test)/(pos|neg)/\d+_\d+\.txt|imdb\.vocab)$")


def read_manifest(path: Path) -> dict[str, str]:
    """Parse an ``md5sum``-format manifest: relative path (without ``./``) -> md5 hex digest."""
    out: dict[str, str] = {}
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            line = line.rstrip("\r\n")
            if not line:
                continue
            m = _MANIFEST_LINE.match(line)
            if m is None:
                raise ValueError(f"{path}: not an md5sum manifest line: {line[:80]!r}")
            out[m.group(2)] = m.group(1).lower()
    return out


def _check_folder(dataset: str, spec: FileSpec, root: Path, *, rehash: bool = False) -> FileStatus:
    """Check imdb.vocab and the reviews (train|test)/(pos|neg)/*.txt of an aclImdb folder against the manifest.

    The verdict is cached under a fingerprint of (relpath, size, mtime_ns) of every file.
    """
    folder = root / spec.relpath
    expected = describe_expected(spec)
    manifest_path = root / str(spec.manifest)
    if not folder.is_dir():
        return FileStatus(dataset, spec.relpath, folder, "missing", expected, "missing")
    if not manifest_path.is_file():
        return FileStatus(dataset, spec.relpath, folder, "missing", expected, f"{spec.manifest} missing")
    wanted = {k: v for k, v in read_manifest(manifest_path).items() if _FOLDER_FILE.match(k)}
    present: dict[str, os.stat_result] = {}
    for split in ("train", "test"):
        for label in ("pos", "neg"):
            sub = folder / split / label
            if sub.is_dir():
                with os.scandir(sub) as it:
                    for e in it:
                        if e.name.endswith(".txt"):
                            present[f"{split}/{label}/{e.name}"] = e.stat()
    if (folder / "imdb.vocab").is_file():
        present["imdb.vocab"] = (folder / "imdb.vocab").stat()
    missing = sorted(set(wanted) - set(present))
    extra = sorted(set(present) - set(wanted))
    if missing or extra:
        what = f"{len(missing)} review files missing (e.g. {missing[:1]})" if missing else ""
        if extra:
            what += ("; " if what else "") + f"{len(extra)} files not in the manifest (e.g. {extra[:1]})"
        return FileStatus(dataset, spec.relpath, folder, "BAD", expected, what)
    fp = hashlib.sha256()
    fp.update(cached_digest(manifest_path, "sha256", rehash=rehash).encode())
    for rel in sorted(present):
        st = present[rel]
        fp.update(f"{rel}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    fingerprint = fp.hexdigest()
    key = "folder:" + str(folder.resolve())
    if not rehash and _load_cache().get(key, {}).get("fingerprint") == fingerprint:
        return FileStatus(dataset, spec.relpath, folder, "ok", expected, f"{len(present)} files match")
    bad = [rel for rel in sorted(wanted) if hash_file(folder / rel, "md5") != wanted[rel]]
    if bad:
        rel = bad[0]
        found = f"{len(bad)} files differ, e.g. {rel}: expected md5:{wanted[rel]}"
        found += f", found md5:{hash_file(folder / rel, 'md5')}"
        return FileStatus(dataset, spec.relpath, folder, "BAD", expected, found)
    _store_cache(key, {"fingerprint": fingerprint})
    return FileStatus(dataset, spec.relpath, folder, "ok", expected, f"{len(present)} files match")


def _raise_for(status: FileStatus) -> None:
    if status.status == "missing":
        raise DataNotFoundError(status.dataset, status.relpath, status.path, status.expected)
    if status.status == "BAD":
        raise DataIntegrityError(status.dataset, status.relpath, status.path, status.expected, status.found)


@dataclass(frozen=True)
class Resolved:
    """A dataset form found under the root with all its files verified."""

    spec: DatasetSpec
    variant: Variant
    root: Path
    statuses: tuple[FileStatus, ...]

    def path(self, relpath: str) -> Path:
        return self.root / relpath

    def found(self, relpath: str) -> str:
        """The digest found for ``relpath`` (``"algorithm:hex"``) or its size description."""
        for s in self.statuses:
            if s.relpath == relpath:
                return s.found
        raise KeyError(relpath)


def resolve(name: str, root: str | os.PathLike[str] | None = None) -> Resolved:
    """Find the first complete, valid form of dataset ``name`` under the root.

    Forms are tried in order of preference. A complete form with a bad file is skipped, with a
    ``DataWarning``, when a later form is complete and valid (e.g. a corrupted text tarball next
    to a freshly fetched official one); otherwise its error is raised.

    Raises
    ------
    DataNotFoundError
        No form is complete (the message names the preferred form's missing file and lists all).
    DataIntegrityError
        Every complete form has a file that does not match its checksum (the first is reported).
    """
    spec = get_spec(name)
    base = data_root(root)
    first_error: DataIntegrityError | None = None
    for variant in spec.variants:
        if all((base / f.relpath).exists() for f in variant.files):
            statuses = tuple(check_file(name, f, base) for f in variant.files)
            try:
                for s in statuses:
                    _raise_for(s)
            except DataIntegrityError as err:
                first_error = first_error or err
                continue
            if first_error is not None:
                warnings.warn(f"{first_error} Using {variant.name} form instead.", DataWarning, stacklevel=2)
            return Resolved(spec, variant, base, statuses)
    if first_error is not None:
        raise first_error
    # Nothing complete: report the first missing file of the form closest to complete.
    best = max(spec.variants, key=lambda v: sum((base / f.relpath).exists() for f in v.files))
    missing = next(f for f in best.files if not (base / f.relpath).exists())
    forms = "; ".join(" + ".join(f.relpath for f in v.files) for v in spec.variants)
    raise DataNotFoundError(
        name,
        missing.relpath,
        base / missing.relpath,
        describe_expected(missing),
        detail=f"Accepted forms under {base}: {forms}." if len(spec.variants) > 1 else "",
    )


def check_dataset(name: str, root: str | os.PathLike[str] | None = None, *,
                  rehash: bool = False) -> list[FileStatus]:
    """Statuses of every known file of ``name`` that is present, plus the missing files of
    partially present forms when no form is complete, or the downloadable form's files (as
    ``missing``) when nothing is present. Never raises for bad files. ``rehash=True`` hashes
    every file again instead of trusting the cache (size + mtime)."""
    spec = get_spec(name)
    base = data_root(root)
    out: list[FileStatus] = []
    exists = {f.relpath: (base / f.relpath).exists() for v in spec.variants for f in v.files}
    complete = any(all(exists[f.relpath] for f in v.files) for v in spec.variants)
    seen: set[str] = set()
    for variant in spec.variants:
        if not any(exists[f.relpath] for f in variant.files):
            continue
        for f in variant.files:
            # A partial form is reported in full only when no other form is complete.
            if f.relpath not in seen and (exists[f.relpath] or not complete):
                seen.add(f.relpath)
                out.append(check_file(name, f, base, rehash=rehash))
    if not out:
        fetchable = spec.variant(spec.fetch_variant)
        out.extend(check_file(name, f, base, rehash=rehash) for f in fetchable.files)
    out.extend(check_file(name, f, base, rehash=rehash) for f in spec.extras if (base / f.relpath).exists())
    return out


__all__ = [
    "Checksum",
    "DataWarning",
    "FileStatus",
    "Resolved",
    "cached_digest",
    "check_dataset",
    "check_file",
    "hash_file",
    "read_manifest",
    "resolve",
]
