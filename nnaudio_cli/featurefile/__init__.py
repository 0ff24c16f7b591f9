"""The feature file ``nnaudio extract`` writes, one module per job.

==============  ==========================================================================
``layout``      the HDF5 layout (``layout_version`` 2): constants, feature names, the index
``encoding``    how values are stored: on-disk dtype, optional decibel scale (``Storage``)
``stats``       per-bin streaming statistics of stored rows (count, mean, variance)
``writer``      ``FeatureWriter``: crash-safe appends to ``PATH.partial``, renamed on commit
``reader``      ``FeatureFile`` / ``open_features``: ``ff[key] -> np.ndarray``
``validate``    the one check every reader runs on open; ``FeatureFileError``
``checksum``    CRC-32 ``digest`` of a file, recomputed by ``verify_file``
``dataset``     ``FeatureDataset`` and ``pad_collate``: train on a feature file (torch)
==============  ==========================================================================

``from nnaudio_cli.featurefile import open_features, FeatureDataset`` works; the names are
imported on first use, so importing this package costs nothing.
"""

from __future__ import annotations

from typing import Any

_PUBLIC = {
    "open_features": "reader",
    "FeatureFile": "reader",
    "FeatureFileError": "validate",
    "validate_layout": "validate",
    "verify_file": "checksum",
    "FeatureWriter": "writer",
    "FeatureSpec": "writer",
    "Storage": "encoding",
    "BinStats": "stats",
    "FeatureDataset": "dataset",
    "pad_collate": "dataset",
}

__all__ = sorted(_PUBLIC)


def __getattr__(name: str) -> Any:  # lazy: h5py (and torch, for the Dataset) on first use
    module = _PUBLIC.get(name)
    if module is None:
        raise AttributeError(f"module 'nnaudio_cli.featurefile' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(f"nnaudio_cli.featurefile.{module}"), name)
