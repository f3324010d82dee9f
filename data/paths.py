"""Where the feature pickle of a dataset lives: ``--data-path``, ``--data-root`` or ``MMSA_DATA_ROOT``.

The reference (§2, §8 item 14) hard-codes ``{data_root}/Datasets/<dataset>/Processed/<file>.pkl`` with a
``data_root`` the user must edit in ``config/get_data_root.py``, while its README draws the tree without
the ``Datasets`` level. Here the root comes from ``--data-root`` or the ``MMSA_DATA_ROOT`` environment
variable and both layouts are accepted: ``ROOT/<cfg.data_file>`` and ``ROOT/Datasets/<cfg.data_file>``
(``cfg.normalized_data_file`` with ``cfg.use_normalized_data``, SIMS only). ``--data-path`` names any
MMSA-format pickle directly and wins over both.

A file found through a data root is in the *official layout*: ``run.py`` then treats feature widths that
disagree with ``cfg.feature_dims`` as an error, whereas a file given by ``--data-path`` may have its own.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from config import Config
from utils.errors import ConfigError, DataError

#: Environment variable naming the data root when ``--data-root`` is not given.
DATA_ROOT_ENV = "MMSA_DATA_ROOT"

#: The extra folder level the reference's code puts between the data root and the dataset folders.
REFERENCE_SUBDIR = "Datasets"

_HOW_TO_FIX = (
    f"pass --data-root DIR (or set {DATA_ROOT_ENV}=DIR) where DIR holds the MMSA tree, "
    "or --data-path FILE.pkl to name a feature file directly"
)


@dataclass(frozen=True)
class DataSource:
    """A resolved feature file; ``official_layout`` is True when it was found under a data root."""

    path: Path
    official_layout: bool


def relative_data_file(cfg: Config) -> str:
    """The dataset's pickle relative to a data root: the normalised copy with ``use_normalized_data``."""
    if not cfg.use_normalized_data:
        return cfg.data_file
    if not cfg.normalized_data_file:
        raise ConfigError(
            f"use_normalized_data is set but dataset '{cfg.dataset}' has no normalised file "
            "(only SIMS has one, written by `python -m preprocess.normalize_sims`)"
        )
    return cfg.normalized_data_file


def candidate_paths(cfg: Config, data_root: str | os.PathLike) -> list[Path]:
    """The paths looked at under ``data_root``, in order: README layout, then the reference's layout."""
    root = Path(data_root).expanduser()
    relative = relative_data_file(cfg)
    return [root / relative, root / REFERENCE_SUBDIR / relative]


def resolve_data_source(
    cfg: Config,
    data_root: Optional[str | os.PathLike] = None,
    data_path: Optional[str | os.PathLike] = None,
) -> DataSource:
    """Find the feature file: ``data_path`` wins, else ``data_root``, else ``$MMSA_DATA_ROOT``.

    Raises DataError naming every path looked at and how to point the program at the data.
    """
    if data_path is not None and str(data_path) != "":
        path = Path(data_path).expanduser()
        if not path.is_file():
            raise DataError(f"--data-path {path} does not exist or is not a file; {_HOW_TO_FIX}")
        return DataSource(path=path, official_layout=False)

    root = data_root if data_root not in (None, "") else os.environ.get(DATA_ROOT_ENV, "")
    if not root:
        raise DataError(
            f"no data location given for dataset '{cfg.dataset}' (looked for "
            f"<root>/{relative_data_file(cfg)} and <root>/{REFERENCE_SUBDIR}/{relative_data_file(cfg)}); "
            f"{_HOW_TO_FIX}"
        )
    candidates = candidate_paths(cfg, root)
    for path in candidates:
        if path.is_file():
            return DataSource(path=path, official_layout=True)
    origin = "--data-root" if data_root not in (None, "") else f"${DATA_ROOT_ENV}"
    looked = ", ".join(str(p) for p in candidates)
    raise DataError(
        f"feature file of dataset '{cfg.dataset}' not found under {origin}={root} (looked for: {looked}); "
        f"{_HOW_TO_FIX}"
    )


def resolve_data_path(
    cfg: Config,
    data_root: Optional[str | os.PathLike] = None,
    data_path: Optional[str | os.PathLike] = None,
) -> Path:
    """The path of :func:`resolve_data_source`."""
    return resolve_data_source(cfg, data_root, data_path).path


def is_official_layout(
    cfg: Config,
    data_root: Optional[str | os.PathLike] = None,
    data_path: Optional[str | os.PathLike] = None,
) -> bool:
    """Whether the file resolves through a data root (official layout) rather than ``--data-path``."""
    return resolve_data_source(cfg, data_root, data_path).official_layout
