"""Errors raised by :mod:`adamlab.data`.

Every message names the dataset, the file, its path, the expected and the found checksum
(or what is wrong with the file), and says how to fix it.
"""

from __future__ import annotations

from pathlib import Path


def fix_hint(dataset: str) -> str:
    """The one-line remedy appended to every data error message."""
    return (
        f"Fix: run `adamlab data fetch {dataset}` (or point --root / $ADAMLAB_DATA at a folder "
        f"holding the original files); `adamlab data verify {dataset}` shows what is present."
    )


class DataNotFoundError(FileNotFoundError):
    """A dataset file is missing under the data root.

    Attributes
    ----------
    dataset, file, path, expected:
        The dataset name, the file's path relative to the root, its absolute path, and the
        expected checksum as ``"algorithm:hexdigest"`` (or a description when no checksum exists).
    """

    def __init__(self, dataset: str, file: str, path: Path | str, expected: str, detail: str = "") -> None:
        self.dataset = dataset
        self.file = file
        self.path = Path(path)
        self.expected = expected
        self.found = "missing"
        msg = (
            f"{dataset}: file {file!r} is missing (looked for {self.path}; expected {expected}, "
            f"found: missing)."
        )
        if detail:
            msg += f" {detail}"
        super().__init__(f"{msg} {fix_hint(dataset)}")

    def __str__(self) -> str:  # FileNotFoundError would otherwise print "[Errno ...]" forms
        return str(self.args[0])


class DataIntegrityError(ValueError):
    """A dataset file is present but corrupted, truncated or not in the expected format.

    Attributes
    ----------
    dataset, file, path, expected, found:
        The dataset name, the file's path relative to the root, its absolute path, the expected
        checksum (``"algorithm:hexdigest"``) and the one computed from the file (or a description
        of the format problem).
    """

    def __init__(
        self, dataset: str, file: str, path: Path | str, expected: str, found: str, detail: str = ""
    ) -> None:
        self.dataset = dataset
        self.file = file
        self.path = Path(path)
        self.expected = expected
        self.found = found
        msg = (
            f"{dataset}: file {file!r} at {self.path} failed its integrity check: "
            f"expected {expected}, found {found}."
        )
        if detail:
            msg += f" {detail}"
        msg += " The file is corrupted, truncated or not the original release; delete it. "
        super().__init__(msg + fix_hint(dataset))


class DataFormatError(DataIntegrityError):
    """A file does not follow its format (bad magic number, wrong dimensions, truncated stream)."""

    def __init__(self, dataset: str, file: str, path: Path | str, problem: str) -> None:
        super().__init__(dataset, file, path, expected="a valid file", found=problem)


class DataFetchError(OSError):
    """Downloading a dataset file failed from every known URL."""
