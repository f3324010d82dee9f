"""The EMT-DLFR network: text / audio / vision encoders, the EMT fusion, DLFR heads and helpers.

Public entry points: :func:`build_model` / :class:`EMTDLFR`, :data:`FUSIONS`, :func:`load_text_encoder`,
:func:`describe`, and the reference-checkpoint converters in :mod:`models.reference_checkpoint`.
"""

from models.describe import describe
from models.emt_dlfr import EMTDLFR, build_model, reference_path
from models.fusion import FUSIONS, build_fusion
from models.text_encoder import load_text_encoder

__all__ = ["EMTDLFR", "FUSIONS", "build_fusion", "build_model", "describe", "load_text_encoder", "reference_path"]
