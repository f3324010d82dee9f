"""Where the feature pickle of a dataset lives: ``--data-path``, ``--data-root`` or ``MMSA_DATA_ROOT``.

The reference (§2, §8 item 14) hard-codes ``{data_root}/Datasets/<dataset>/Processed/<file>.pkl`` with a
``data_root`` the user must edit in ``config/get_data_root.py``, while its README draws the tree without
the ``Datasets`` level. Here the root comes from ``--data-root`` or the ``MMSA_DATA_ROOT`` environment
variable and both layouts are accepted: ``ROOT/<cfg.data_file>`` and ``ROOT/Datasets/<cfg.data_file>``
(``cfg.normalized_data_file`` with ``cfg.use_normalized_data``, SIMS only). ``--data-path`` names any
MMSA-format pickle directly and wins over both.

A file at ``.../<cfg.data_file>`` (every file found through a data root) is in the *official layout*:
``run.py`` then treats feature widths that disagree with ``cfg.feature_dims`` as an error, whereas a file
given by ``--data-path`` somewhere else may have widths of its own.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

from config import ExperimentConfig
from utils.errors import ConfigError, DataError

#: Environment variable naming the data root when ``--data-root`` is not given.
DATA_ROOT_ENV = "MMSA_DATA_ROOT"

#: The extra folder level the reference's code puts between the data root and the dataset folders.
REFERENCE_SUBDIR = "Datasets"

_HOW_TO_FIX = (
    f"pass --data-root DIR (or set {DATA_ROOT_ENV}=DIR) where DIR holds the MMSA tree, "
    "or --data-path FILE.pkl to name a feature file directly"
)


def relative_data_file(cfg: ExperimentConfig) -> str:
    """The dataset's pickle relative to a data root: the normalised copy with ``use_normalized_data``."""
    if not cfg.use_normalized_data:
        return cfg.data_file
    if not cfg.normalized_data_file:
        raise ConfigError(
            f"use_normalized_data is set but dataset '{cfg.dataset}' has no normalised file "
            "(only SIMS has one, written by `python -m preprocess.normalize_sims`)"
        )
    return cfg.normalized_data_file


def candidate_paths(cfg: ExperimentConfig, data_root: str | os.PathLike) -> list[Path]:
    """The paths looked at under ``data_root``, in order: README layout, then the reference's layout."""
    root = Path(data_root).expanduser()
    relative = relative_data_file(cfg)
    return [root / relative, root / REFERENCE_SUBDIR / relative]


def resolve_data_path(
    cfg: ExperimentConfig,
    data_root: Optional[str | os.PathLike] = None,
    data_path: Optional[str | os.PathLike] = None,
) -> Path:
    """Find the feature file: ``data_path`` wins, else ``data_root``, else ``$MMSA_DATA_ROOT``.

    Raises DataError naming every path looked at and how to point the program at the data.
    """
    if data_path is not None and str(data_path) != "":
        path = Path(data_path).expanduser()
        if not path.is_file():
            raise DataError(f"--data-path {path} does not exist or is not a file; {_HOW_TO_FIX}")
        return path

    root = data_root if data_root not in (None, "") else os.environ.get(DATA_ROOT_ENV, "")
    if not root:
        relative = relative_data_file(cfg)
        raise DataError(
            f"no data location given for dataset '{cfg.dataset}' (looked for <root>/{relative} and "
            f"<root>/{REFERENCE_SUBDIR}/{relative}); {_HOW_TO_FIX}"
        )
    candidates = candidate_paths(cfg, root)
    for path in candidates:
        if path.is_file():
            return path
    origin = "--data-root" if data_root not in (None, "") else f"${DATA_ROOT_ENV}"
    looked = ", ".join(str(p) for p in candidates)
    raise DataError(
        f"feature file of dataset '{cfg.dataset}' not found under {origin}={root} (looked for: {looked}); "
        f"{_HOW_TO_FIX}"
    )


def is_official_layout(path: str | os.PathLike, cfg: ExperimentConfig) -> bool:
    """Whether ``path`` sits where a data root puts ``cfg``'s file (``.../<cfg.data_file>``).

    True for every file :func:`resolve_data_path` finds under a data root; a ``--data-path`` elsewhere
    (any other folder or file name) is False, and may then have feature widths of its own.
    """
    relative = Path(relative_data_file(cfg)).parts
    return Path(path).expanduser().parts[-len(relative):] == relative
