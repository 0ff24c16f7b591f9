"""The features of a pass: one :class:`Lane` each (engine, device runner, stored spec,
clip-wide finisher), built once per run by :func:`build_lanes`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from nnaudio_cli.config import canonical_json
from nnaudio_cli.extract.batch import ClipFramer, WholeClip
from nnaudio_cli.extract.clips import DecibelFinisher, Finisher, MfccFinisher, WhisperFinisher
from nnaudio_cli.extract.compute import DeviceRunner, Engine
from nnaudio_cli.extract.options import ExtractError, ExtractOptions
from nnaudio_cli.extract.plan import config_hash
from nnaudio_cli.featurefile.encoding import Storage, db_for
from nnaudio_cli.featurefile.writer import FeatureSpec
from nnaudio_core import ParameterError


@dataclass
class Lane:
    """One feature of the pass: its name, engine, device runner and how it is stored.

    Attributes
    ----------
    name : the feature's group in the output
    engine : the transform, built once
    runner : runs packed batches on the device
    spec : the stored feature (row shape, storage, group attributes)
    finisher : its clip-wide step (MFCC, ``--db``), or None
    max_frames : frames per piece of a streamed input
    """

    name: str
    engine: Engine
    runner: DeviceRunner
    spec: FeatureSpec
    finisher: Finisher | None
    max_frames: int


def _storage(opts: ExtractOptions, name: str, config: dict[str, Any]) -> Storage:
    """How feature ``name`` is stored: ``--dtype``, and ``--db`` for its kind."""
    db = None
    if opts.db:
        db = db_for(config, name, opts.db_ref, opts.db_amin, opts.db_top_db)
    return Storage(opts.dtype, db)


def build_lanes(opts: ExtractOptions, seg_seconds: float) -> list[Lane]:
    """Build every feature's engine once (one line naming the feature if one is rejected)."""
    lanes = []
    keep = not opts.mono
    for cfg in opts.features:
        try:
            engine = Engine(cfg.as_core_config(), opts.device)
        except ParameterError as e:
            which = f" ({cfg.name})" if len(opts.features) > 1 else ""
            raise ExtractError(f"invalid {cfg.transform} parameters{which}: {e}") from None
        storage = _storage(opts, cfg.name, engine.config)
        finisher: Finisher | None = None
        if engine.is_mfcc:
            finisher = MfccFinisher(engine.dct, engine.top_db)
        elif engine.is_whisper and engine.mode == "frames":
            finisher = WhisperFinisher(engine.dynamic_range)
        elif storage.db is not None:
            finisher = DecibelFinisher(storage.db)
        attrs = {
            "transform": engine.name,
            "config_json": canonical_json(engine.config),
            "config_hash": config_hash(engine.config, keep),
            "sr": engine.sr,
            "hop_length": engine.hop,
            "n_bins": engine.n_bins,
            "value_layout": _value_layout(engine, keep),
        }
        spec = FeatureSpec(cfg.name, engine.row_shape, engine.frequencies, storage, attrs)
        seg = max(int(seg_seconds * engine.sr), engine.n_fft + engine.hop, 1)
        lanes.append(Lane(cfg.name, engine, DeviceRunner(engine, opts.note), spec, finisher,
                          max(1, seg // engine.hop)))
    return lanes


def lane_framer(lane: Lane) -> ClipFramer | WholeClip:
    """How a streamed input's blocks become pieces: frame-exact pieces, or the whole clip
    (up to the most samples the transform reads) with its last block."""
    eng = lane.engine
    if eng.mode != "frames":
        return WholeClip(eng.max_samples)
    return ClipFramer(eng.n_fft, eng.hop, eng.pad, eng.pad_mode, lane.max_frames)


def _value_layout(engine: Engine, keep: bool) -> str:
    """The ``value_layout`` attribute of a feature."""
    return (("frames_channels_bins" if keep else "frames_bins")
            + ("_reim" if engine.is_complex else ""))
