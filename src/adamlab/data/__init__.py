"""Dataset readers for the original file formats, with checksums and an optional download (layer ``data``).

One job: verified files in, tensors out. ``load(name, split, root=None)`` returns ``(inputs, targets)``
tensors for ``mnist``, ``fashion_mnist``, ``imdb``, ``cifar10``, ``cifar100`` and ``tolstoi``. Files
live under the data root (``root``, else ``$ADAMLAB_DATA``, else ``~/.cache/adamlab``) in the layout
of the original releases (see :mod:`adamlab.data.registry`); every file is verified against a known
checksum before use. Processed caches go to ``$ADAMLAB_CACHE`` (else ``~/.cache/adamlab/processed``);
the data root is never written to except by ``adamlab data fetch``.

Layers, bottom to top (imports only go down; docs/architecture.md): util < plotting < functional
< optim < dissect < data < problems < runs < store < selection < runner < analysis < claims < reproduce
< commands < cli.
"""

from __future__ import annotations

from adamlab.data.errors import DataFetchError, DataFormatError, DataIntegrityError, DataNotFoundError
from adamlab.data.integrity import DataWarning, check_dataset, resolve
from adamlab.data.loaders import imdb_vocabulary, load, tolstoi_vocabulary
from adamlab.data.paths import cache_dir, data_root
from adamlab.data.registry import NAMES


def names() -> list[str]:
    """The dataset names ``load`` accepts."""
    return list(NAMES)


__all__ = [
    "DataFetchError",
    "DataFormatError",
    "DataIntegrityError",
    "DataNotFoundError",
    "DataWarning",
    "cache_dir",
    "check_dataset",
    "data_root",
    "imdb_vocabulary",
    "load",
    "names",
    "resolve",
    "tolstoi_vocabulary",
]
