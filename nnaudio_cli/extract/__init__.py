"""``nnaudio extract``: a folder of audio to one HDF5 feature file, in fixed batches.

Data flow (one module per stage; :mod:`~nnaudio_cli.extract.run` wires them)::

    INPUT_DIR
      │ discover    sorted keys + header durations (no decoding)
      ▼
    plan_batches    fixed batch boundaries from the sorted list and the durations
      │             (batch = unit of computing and of committing; long files alone)
      ▼
    decode ──────── worker processes (no torch): decode + downmix once, soxr resample
      │             once per distinct rate of the features, results in input order,
      │             bounded bytes in flight
      ▼             (long files: streamed block by block in the main process)
    batch           per feature (a Lane): ClipFramer: centre padding, frame-aligned pieces
      │             pack: every piece of the batch -> one (rows, n_fft+(K-1)·hop) array
      ▼
    compute         Engine (transform built once, center=False twin) on CPU/CUDA/MPS;
      │             DeviceRunner: pinned + non_blocking copies, one batch in flight,
      │             out-of-memory halves the rows per call
      ▼
    clips           LaneClips per feature (clip-wide MFCC/--db floors, dtype encoding),
      │             ClipSet: one index row once every feature has the clip; NaN/Inf in any
      │             feature -> every feature rolled back, failed row
      │
      ▼
    parts           OUTPUT.h5.parts/: flock'ed; one uncompressed part per batch, renamed,
      │             its checksum appended to parts.jsonl; verified on --resume
      ▼
    assemble        parts verified again, copied in key order -> OUTPUT.h5 (partial,
                    fsync, rename) with per-bin statistics of every feature, then the
                    work folder is removed

Reproducibility: the batch plan depends only on the inputs and the settings, so the same
inputs, settings, device and torch thread count give byte-identical features whatever
``--workers``, timing, interruptions or ``--resume``. Across thread counts, batch sizes and
devices, values agree to float32 round-off (tests use 1e-5 of each clip's peak).

Importing this package is cheap (no torch): the names below load on first use, and the
decoder processes import :mod:`nnaudio_cli.extract.worker` through it.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "ExtractError",
    "ExtractOptions",
    "Interrupted",
    "ResumeError",
    "Summary",
    "default_threads",
    "default_workers",
    "run_extract",
]


def __getattr__(name: str) -> Any:
    if name == "ResumeError":
        from nnaudio_cli.extract.parts import ResumeError

        return ResumeError
    if name in __all__:
        from nnaudio_cli.extract import run

        return getattr(run, name)
    raise AttributeError(name)
