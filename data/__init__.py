"""The data layer: locating, safely reading, validating and hash-checking MMSA feature files, the
reference's missing-feature protocol, and per-split datasets and loaders (docs/REFERENCE.md §3).

Modules: :mod:`data.paths`, :mod:`data.safe_pickle`, :mod:`data.schema`, :mod:`data.integrity`,
:mod:`data.missing`, :mod:`data.load_data`. Nothing is imported here, so that light users (such as
``preprocess.normalize_sims``) do not pull in torch.
"""
