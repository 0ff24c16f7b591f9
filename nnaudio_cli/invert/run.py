"""Driving ``nnaudio invert``: :func:`invert_file` opens and checks a feature file, plans
the outputs (:mod:`~nnaudio_cli.invert.plan`), builds the inverse once
(:mod:`~nnaudio_cli.invert.inverse`) and hands the keys to an :class:`InvertRun`.

:class:`InvertRun` reads each key's frames, inverts short keys in batches of equal
(frames, length) and long ones segment by segment, writes each audio file atomically and
keeps what happened in its :class:`InvertSummary`. How the work is cut is described in
:mod:`nnaudio_cli.invert`.
"""

from __future__ import annotations

import errno
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
import torch

from nnaudio_cli.errors import CliError
from nnaudio_cli.featurefile.reader import FeatureFile
from nnaudio_cli.featurefile.validate import FeatureFileError
from nnaudio_cli.invert.inverse import Inverse, PhaseState, build_inverse
from nnaudio_cli.invert.plan import (
    FORMATS,
    InvertError,
    choose_method,
    plan_outputs,
    select_feature,
    show,
)
from nnaudio_cli.plumbing.outputs import remove_stale, replacing
from nnaudio_cli.plumbing.text import count

#: Frames stacked into one batch of equal-length keys (bounds memory).
BATCH_FRAMES = 8192
#: Frames of short keys held in memory before they are inverted (bounds memory).
PENDING_FRAMES = 16384


#: Write errors that belong to one key's name, not to the disk (a failed row, not fatal).
_KEY_ERRNOS = (errno.ENAMETOOLONG, errno.EINVAL, errno.EILSEQ, errno.ENOTDIR, errno.EISDIR)


@dataclass
class InvertSummary:
    """What ``invert`` did, for the log line and ``--json``."""

    method: str
    feature: str = ""
    written: list[str] = field(default_factory=list)
    files: dict[str, str] = field(default_factory=dict)
    failures: list[dict[str, str]] = field(default_factory=list)
    audio_seconds: float = 0.0
    wall_seconds: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "feature": self.feature,
            "written": len(self.written),
            "failed": len(self.failures),
            "files": self.files,
            "failures": self.failures,
            "audio_seconds": self.audio_seconds,
            "wall_seconds": self.wall_seconds,
            **self.extra,
        }


@dataclass
class _Job:
    key: str
    target: Path
    row: int  # index row
    frames: int
    channels: int  # stored channels (rows per frame)
    length: int  # output samples


def _read(ff: FeatureFile, job: _Job, a: int, b: int) -> np.ndarray:
    """Frames [a, b) of a job as (channels, frames, bins[, 2]) float32, decoded (float16 /
    bfloat16 widened) and linear (dB-stored values converted back)."""
    start = int(ff.offsets[job.row]) + a * job.channels
    block = ff.rows(start, start + (b - a) * job.channels)
    if ff.storage.db is not None:
        block = ff.storage.db.to_linear(block)
    block = block.reshape((b - a, job.channels) + block.shape[1:])
    return np.moveaxis(block, 1, 0)


def _write_atomic(target: Path, audio: np.ndarray | Iterator[np.ndarray], sr: int, fmt: str,
                  channels: int) -> None:
    """Write (samples, channels) audio (or blocks of it) to a short hidden temporary file
    next to ``target``, then rename it into place (:func:`nnaudio_cli.plumbing.outputs.replacing`; a
    killed run's temporary file is removed by the next run, :func:`remove_stale`)."""
    container, subtype = FORMATS[fmt]
    blocks = [audio] if isinstance(audio, np.ndarray) else audio
    with replacing(target) as tmp, sf.SoundFile(
            tmp, "w", samplerate=sr, channels=channels, format=container,
            subtype=subtype) as out:
        for block in blocks:
            if not np.isfinite(block).all():
                raise FloatingPointError("the inverse produced non-finite samples")
            if fmt == "flac":
                block = np.clip(block, -1.0, 1.0)
            out.write(block.astype(np.float32))


def _finite(ff: FeatureFile, job: _Job, step: int) -> bool:
    for a in range(0, job.frames, step):
        if not np.isfinite(_read(ff, job, a, min(job.frames, a + step))).all():
            return False
    return True


def _open(features: Path, feature: str | None) -> tuple[FeatureFile, dict[str, Any], float]:
    """The feature file (open), its transform config and sample rate (Hz); anything that is
    not a readable feature file is a one-line :class:`InvertError`."""
    ff: FeatureFile | None = None
    try:
        ff = FeatureFile(features, feature)
        return ff, ff.config, float(ff.attrs["sr"])
    except (OSError, KeyError, ValueError) as e:
        if ff is not None:
            ff.close()
        if isinstance(e, CliError):  # damaged (FeatureFileError): it names file and defect
            raise
        raise InvertError(
            f"{features}: not an nnaudio feature file ({' '.join(str(e).split())})"
        ) from None


class InvertRun:
    """One pass over the keys of an open feature file, writing one audio file per key.

    Short keys (at most ``segment`` frames) wait in :attr:`pending` until
    :data:`PENDING_FRAMES` frames are held, then go through :meth:`flush`: keys of equal
    (frames, length) are inverted together, :data:`BATCH_FRAMES` frames at a time. Longer
    keys are inverted and written segment by segment (:meth:`segments`). Every outcome lands
    in :attr:`summary` (and ``progress(key, seconds)``: 0.0 for a failed key).

    Parameters
    ----------
    ff : the open feature file
    inverse : the method's operators (:func:`~nnaudio_cli.invert.inverse.build_inverse`)
    plan : each key's output file or the reason it has none
        (:func:`~nnaudio_cli.invert.plan.plan_outputs`)
    method : the chosen method (the summary's)
    fmt : ``"wav"`` or ``"flac"``
    sr : sample rate of the features in Hz (the output's, rounded)
    segment : frames per segment of a long key
    progress : called once per key, or None
    """

    def __init__(self, ff: FeatureFile, inverse: Inverse, plan: dict[str, Path | InvertError],
                 method: str, fmt: str, sr: float, segment: int,
                 progress: Callable[[str, float], None] | None) -> None:
        self.ff, self.inverse, self.plan, self.fmt = ff, inverse, plan, fmt
        self.sr, self.rate, self.segment, self.progress = sr, int(round(sr)), segment, progress
        self.summary = InvertSummary(method=method, feature=ff.feature)
        #: key -> mean spectral convergence (Griffin-Lim only; in the summary's extra)
        self.convergence: dict[str, float] = {}
        if method == "griffin-lim":
            self.summary.extra["spectral_convergence"] = self.convergence
        #: short keys read but not inverted yet, with their frames (channels, frames, ...)
        self.pending: list[tuple[_Job, np.ndarray]] = []
        self.pending_frames = 0

    def run(self, keys: list[str]) -> InvertSummary:
        """Invert ``keys`` in order (short ones batched) and return the summary."""
        for key in keys:
            self.add(key)
        self.flush()
        return self.summary

    def add(self, key: str) -> None:
        """Invert one key: queue a short one, write a long one in segments, or fail it."""
        target = self.plan[key]
        if isinstance(target, InvertError):
            self.fail(key, str(target))
            return
        ff = self.ff
        row = ff.row(key)
        info = ff.info(key)
        channels = int(info["stored_channels"]) if ff.keep_channels else 1
        n_rows = int(ff.offsets[row + 1] - ff.offsets[row])
        job = _Job(key, target, row, n_rows // max(1, channels), max(1, channels),
                   int(math.ceil(int(info["samples"]) * self.sr / float(info["sr"]))))
        if job.frames <= self.segment:
            data = _read(ff, job, 0, job.frames)
            if not np.isfinite(data).all():
                self.fail(key, "stored features contain NaN or infinite values")
                return
            self.pending.append((job, data))
            self.pending_frames += job.frames * job.channels
            if self.pending_frames >= PENDING_FRAMES:
                self.flush()
            return
        if not _finite(ff, job, self.segment):
            self.fail(key, "stored features contain NaN or infinite values")
            return
        convs: list[float] = []
        self.write(job, self.segments(job, convs), None)
        if convs and job.key in self.summary.files:
            self.convergence[job.key] = float(np.mean(convs))

    def fail(self, key: str, reason: str) -> None:
        """Record ``key`` as a failed row."""
        self.summary.failures.append({"key": key, "reason": reason})
        if self.progress is not None:
            self.progress(key, 0.0)

    def done(self, job: _Job, conv: float | None) -> None:
        """Record ``job`` as written (``conv``: its spectral convergence, or None)."""
        summary = self.summary
        summary.written.append(job.key)
        summary.files[job.key] = str(job.target)
        summary.audio_seconds += job.length / self.sr
        if conv is not None:
            self.convergence[job.key] = conv
        if self.progress is not None:
            self.progress(job.key, job.length / self.sr)

    def write(self, job: _Job, audio: np.ndarray | Iterator[np.ndarray],
              conv: float | None) -> None:
        """Write ``job``'s audio ``(samples, channels)`` (or blocks of it); what belongs to
        this key (non-finite samples, a bad name) fails its row, a disk error is fatal."""
        try:
            job.target.parent.mkdir(parents=True, exist_ok=True)
            _write_atomic(job.target, audio, self.rate, self.fmt, job.channels)
        except FeatureFileError:  # the features could not be read: fatal, as for
            raise  # keys read whole (never "cannot write")
        except (FloatingPointError, ValueError, RuntimeError) as e:
            self.fail(job.key, " ".join(str(e).split()))
            return
        except OSError as e:
            if e.errno in _KEY_ERRNOS:
                self.fail(job.key, f"cannot write {show(str(job.target))}: {e.strerror or e}")
                return
            raise
        self.done(job, conv)

    def run_batch(self, batch: list[tuple[_Job, np.ndarray]]) -> None:
        """Invert keys of equal (frames, length) with one module call and write each."""
        x = np.concatenate([d for _, d in batch])  # (sum channels, frames, bins[, 2])
        try:
            audio, conv = self.inverse.whole(x, batch[0][0].length)
        except (ValueError, RuntimeError) as e:
            for job, _ in batch:
                self.fail(job.key, " ".join(str(e).split()))
            return
        i = 0
        for job, _ in batch:
            a = audio[i : i + job.channels].T
            c = None if conv is None else float(np.mean(conv[i : i + job.channels]))
            i += job.channels
            self.write(job, a, c)

    def flush(self) -> None:
        """Invert the pending short keys, those with equal (frames, length) as one batch."""
        pending, self.pending, self.pending_frames = self.pending, [], 0
        buckets: dict[tuple[int, int], list[tuple[_Job, np.ndarray]]] = {}
        for item in pending:
            buckets.setdefault((item[0].frames, item[0].length), []).append(item)
        for group in buckets.values():
            chunk: list[tuple[_Job, np.ndarray]] = []
            for item in group:
                chunk.append(item)
                if sum(j.frames * j.channels for j, _ in chunk) >= BATCH_FRAMES:
                    self.run_batch(chunk)
                    chunk = []
            if chunk:
                self.run_batch(chunk)

    def segments(self, job: _Job, convs: list[float]) -> Iterator[np.ndarray]:
        """The audio of a long key, segment by segment, as (samples, channels) blocks; the
        spectral convergence of each Griffin-Lim segment is appended to ``convs``."""
        inverse, segment = self.inverse, self.segment
        hop, pad, ctx = inverse.hop, inverse.pad, inverse.context
        state: PhaseState | None = None
        prev_start = 0  # first frame of the previous segment
        emitted = 0  # output samples produced so far
        for a in range(0, job.frames, segment):
            b = min(job.frames, a + segment)
            a0, b0 = max(0, a - ctx), min(job.frames, b + ctx)
            init = None
            if state is not None:  # Griffin-Lim: continue the previous segment's phase
                convs.append(float(np.mean(state.conv)))
                init = state.initial_angles(prev_start, a0, b0)
            y, state = inverse.piece(_read(self.ff, job, a0, b0), init)
            prev_start = a0
            # y[:, 0] is padded-signal sample a0 * hop; output sample n is padded sample n + pad
            lo = a * hop - pad
            hi = job.length if b == job.frames else b * hop - pad
            lo, hi = max(lo, emitted), min(hi, job.length)
            if hi <= lo:
                continue
            block = np.zeros((job.channels, hi - lo), np.float32)
            src_lo = lo + pad - a0 * hop
            avail = y[:, src_lo : src_lo + (hi - lo)]
            block[:, : avail.shape[1]] = avail
            emitted = hi
            yield block.T
        if state is not None:
            convs.append(float(np.mean(state.conv)))


def invert_file(
    features: Path,
    out_dir: Path,
    method: str = "auto",
    fmt: str = "wav",
    only: list[str] | None = None,
    progress: Callable[[str, float], None] | None = None,
    start: Callable[[int], None] | None = None,
    overwrite: bool = False,
    feature: str | None = None,
    iterations: int | None = None,
    tolerance: float | None = None,
    device: torch.device | None = None,
    segment_seconds: float = 30.0,
) -> InvertSummary:
    """Write one audio file per stored key of ``features`` under ``out_dir``.

    ``out_dir`` is created if missing; its parent must exist. Nothing is written when the
    file is damaged, the method does not apply, or (without ``overwrite``) an output exists.
    ``feature``: which feature to invert (see :mod:`nnaudio_cli.invert` when None).
    ``progress(key, seconds)`` is called once per key (0.0: failed), ``start(n_keys)`` once
    before the first; ``segment_seconds``: longer keys are inverted in segments.
    """
    t0 = time.perf_counter()
    device = device or torch.device("cpu")
    feature = select_feature(features, feature, method)  # also validates the layout
    ff, config, sr = _open(features, feature)
    try:
        chosen = choose_method(config, method)
        keys = list(ff) if not only else list(dict.fromkeys(only))
        missing = [k for k in keys if k not in ff]
        if missing:
            raise InvertError(f"no features stored for {', '.join(show(k) for k in missing[:5])}")
        # as stored: --only may name a non-UTF-8 file name in its os.fsdecode form
        keys = list(dict.fromkeys(str(ff.index["key"][ff.row(k)]) for k in keys))
        # names are planned over every stored key, so --only gives the same names
        plan = plan_outputs(list(ff), out_dir, fmt)
        existing = [p for k in keys if isinstance(p := plan[k], Path) and p.exists()]
        if existing and not overwrite:
            raise InvertError(
                f"{count(len(existing), 'output file')} already there, e.g. "
                f"{show(str(existing[0]))}; pass --overwrite to replace them", usage=True,
            )
        inverse = build_inverse(ff, chosen, device, iterations, tolerance)
        out_dir.mkdir(exist_ok=True)
        for folder in {p.parent for p in plan.values() if isinstance(p, Path)}:
            remove_stale(folder)  # what a killed invert was writing
        if start is not None:
            start(len(keys))
        segment = max(4 * inverse.context, int(round(segment_seconds * sr / inverse.hop)))
        summary = InvertRun(ff, inverse, plan, chosen, fmt, sr, segment, progress).run(keys)
    finally:
        ff.close()
    summary.wall_seconds = time.perf_counter() - t0
    return summary
