"""``nnaudio invert``: stored features back to audio files.

The method follows from the file's own attributes: complex uniform-grid STFT -> iSTFT,
complex CQT -> iCQT, magnitude STFT or mel power spectrogram -> Griffin-Lim (mel bands are
first mapped back to linear frequency by non-negative least squares). Everything else (MFCC,
log-frequency STFT, phase-only or magnitude-only CQT) is refused with a reason.
"""

from __future__ import annotations

import math
import time
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
import soundfile as sf
import torch

from nnaudio_cli.store import FeatureFile

METHODS = ("auto", "istft", "icqt", "griffin-lim")
FORMATS = {"wav": ("WAV", "FLOAT"), "flac": ("FLAC", "PCM_24")}
CQT_NAMES = ("CQT1992v2", "CQT2010v2")


class InvertError(ValueError):
    """A file or request that cannot be inverted; the message is one line for the user."""


@dataclass
class InvertSummary:
    """What ``invert`` did, for the log line and ``--json``."""

    method: str
    written: list[str] = field(default_factory=list)
    failures: list[dict[str, str]] = field(default_factory=list)
    audio_seconds: float = 0.0
    wall_seconds: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "written": len(self.written),
            "failed": len(self.failures),
            "failures": self.failures,
            "audio_seconds": self.audio_seconds,
            "wall_seconds": self.wall_seconds,
            **self.extra,
        }


def choose_method(config: dict[str, Any], requested: str) -> str:
    """The inversion method for a stored transform config, or :class:`InvertError`."""
    name = config.get("transform")
    params = config.get("params", {})
    fmt = params.get("output_format")
    if name == "STFT":
        if params.get("freq_scale", "no") != "no":
            raise InvertError(
                f"cannot invert a freq_scale='{params.get('freq_scale')}' STFT: only the "
                "uniform grid (freq_scale='no') is invertible"
            )
        auto = "istft" if fmt == "Complex" else "griffin-lim" if fmt == "Magnitude" else None
    elif name in CQT_NAMES:
        auto = "icqt" if fmt == "Complex" else None
    elif name == "MelSpectrogram":
        auto = "griffin-lim"
    else:
        auto = None
    if auto is None:
        raise InvertError(
            f"cannot invert {name} features with output_format={fmt!r}: invertible are "
            "complex STFT (istft), complex CQT1992v2/CQT2010v2 (icqt), and magnitude STFT or "
            "mel spectrograms (griffin-lim)"
        )
    if requested == "auto":
        return auto
    allowed = {"istft": ("istft",), "icqt": ("icqt",), "griffin-lim": ("griffin-lim", "istft")}
    if requested not in allowed[auto]:
        raise InvertError(f"--method {requested} does not apply to {name} ({fmt}); use {auto}")
    return requested


def output_path(out_dir: Path, key: str, fmt: str, taken: set[Path]) -> Path:
    """Where the audio of ``key`` goes: its relative path under ``out_dir``, new extension.

    Keys that are absolute, contain ``..``, empty or control characters, or would land
    outside ``out_dir`` raise :class:`InvertError` (nothing is written for them).
    """
    if not key or any(unicodedata.category(c) == "Cc" for c in key) or "\\" in key:
        raise InvertError(f"refusing unsafe key {key!r}")
    rel = PurePosixPath(key)
    if rel.is_absolute() or any(part in ("..", "", ".") for part in rel.parts):
        raise InvertError(f"refusing key {key!r}: it would escape the output folder")
    target = out_dir.joinpath(*rel.parts).with_suffix(f".{fmt}")
    if target in taken:  # a.wav and a.flac both stored: keep the source extension
        target = out_dir.joinpath(*rel.parts[:-1], f"{rel.name}.{fmt}")
    root = out_dir.resolve()
    resolved = target.parent.resolve() / target.name
    if root != resolved.parent and root not in resolved.parents:
        raise InvertError(f"refusing key {key!r}: it resolves outside {out_dir}")
    return target


def _mel_to_linear(mel: torch.Tensor, basis: torch.Tensor, power: float) -> torch.Tensor:
    """Least-squares non-negative linear-frequency magnitude from ``(n_mels, frames)`` mel."""
    lin = torch.linalg.lstsq(basis.double(), mel.double()).solution
    # a few projected-gradient steps for non-negativity (NNLS-like, as librosa's mel_to_stft)
    lin = lin.clamp(min=0)
    step = 1.0 / float(torch.linalg.matrix_norm(basis.double(), ord=2) ** 2)
    for _ in range(50):
        lin = (lin - step * basis.double().T @ (basis.double() @ lin - mel.double())).clamp(min=0)
    return lin.float().pow(1.0 / power)


Inverter = Callable[[np.ndarray, int], tuple[np.ndarray, float | None]]


def build_inverter(ff: FeatureFile, method: str) -> Inverter:
    """A function ``(stored features (frames, bins[, 2]), length) -> (samples, convergence)``.

    ``convergence`` is Griffin-Lim's spectral convergence (None for exact inverses).
    """
    from nnaudio_core.features import iSTFT
    from nnaudio_core.features.griffin_lim import Griffin_Lim
    from nnaudio_core.features.icqt import iCQT

    config = ff.config
    name, params = config["transform"], dict(config["params"])
    if method == "istft":
        inv = iSTFT(
            n_fft=params["n_fft"], win_length=params.get("win_length"),
            hop_length=params.get("hop_length"), window=params.get("window", "hann"),
            center=params.get("center", True), sr=params.get("sr", 22050),
        )

        def run_istft(x: np.ndarray, length: int) -> np.ndarray:
            spec = torch.from_numpy(np.ascontiguousarray(x.transpose(1, 0, 2)))
            return inv(spec.unsqueeze(0), length=length)[0].numpy(), None

        return run_istft
    if method == "icqt":
        icqt = iCQT.from_config(config)

        def run_icqt(x: np.ndarray, length: int) -> np.ndarray:
            spec = torch.from_numpy(np.ascontiguousarray(x.transpose(1, 0, 2)))
            return icqt(spec.unsqueeze(0), length=length)[0].detach().numpy(), None

        return run_icqt
    # Griffin-Lim, from a linear-frequency magnitude (STFT and MelSpectrogram share the keys)
    n_fft = params["n_fft"]
    hop = params.get("hop_length") or (params.get("win_length") or n_fft) // 4
    gl = Griffin_Lim(
        n_fft=n_fft, hop_length=hop, win_length=params.get("win_length"),
        window=params.get("window", "hann"), center=params.get("center", True),
        pad_mode=params.get("pad_mode", "reflect"),
    )
    mel_basis = ff.transform().mel_basis.detach() if name == "MelSpectrogram" else None

    def run_gl(x: np.ndarray, length: int) -> np.ndarray:
        if method == "istft":  # complex STFT asked to go through Griffin-Lim: use |X|
            x = np.sqrt((x**2).sum(-1))
        mag = torch.from_numpy(np.ascontiguousarray(x.T))
        if mel_basis is not None:
            mag = _mel_to_linear(mag, mel_basis, float(params.get("power", 2.0)))
        wav = gl(mag.unsqueeze(0), length=length)
        return wav[0].detach().numpy(), float(gl.spectral_convergence(mag.unsqueeze(0), wav))

    return run_gl


def invert_file(
    features: Path,
    out_dir: Path,
    method: str = "auto",
    fmt: str = "wav",
    only: list[str] | None = None,
    progress: Callable[[str, float], None] | None = None,
    start: Callable[[int], None] | None = None,
) -> InvertSummary:
    """Write one audio file per stored key of ``features`` under ``out_dir``."""
    t0 = time.perf_counter()
    try:
        ff = FeatureFile(features)
        config = ff.config
        sr = float(ff.attrs["sr"])
    except (OSError, KeyError, ValueError) as e:
        raise InvertError(
            f"{features}: not an nnaudio feature file ({' '.join(str(e).split())})"
        ) from None
    try:
        chosen = choose_method(config, method)
        keys = list(ff) if not only else only
        missing = [k for k in keys if k not in ff]
        if missing:
            raise InvertError(f"no features stored for {', '.join(missing[:5])}")
        inverter = build_inverter(ff, chosen)
        if start is not None:
            start(len(keys))
        summary = InvertSummary(method=chosen)
        convergence: dict[str, float] = {}
        if chosen == "griffin-lim":
            summary.extra["spectral_convergence"] = convergence
        taken: set[Path] = set()
        for key in keys:
            try:
                target = output_path(out_dir, key, fmt, taken)
            except InvertError as e:
                summary.failures.append({"key": key, "reason": str(e)})
                if progress is not None:
                    progress(key, 0.0)
                continue
            taken.add(target)
            row = ff.info(key)
            length = int(math.ceil(int(row["samples"]) * sr / float(row["sr"])))
            data = ff[key]
            if ff.keep_channels:
                results = [inverter(data[:, c], length) for c in range(data.shape[1])]
            else:
                results = [inverter(data, length)]
            audio = np.stack([a for a, _ in results], axis=-1)
            if results[0][1] is not None:
                convergence[key] = float(np.mean([c for _, c in results]))
            target.parent.mkdir(parents=True, exist_ok=True)
            container, subtype = FORMATS[fmt]
            if fmt == "flac":
                audio = np.clip(audio, -1.0, 1.0)
            tmp = target.with_name(target.name + ".partial")
            sf.write(tmp, audio.astype(np.float32), int(round(sr)), format=container,
                     subtype=subtype)
            tmp.replace(target)
            summary.written.append(key)
            summary.audio_seconds += length / sr
            if progress is not None:
                progress(key, length / sr)
    finally:
        ff.close()
    summary.wall_seconds = time.perf_counter() - t0
    return summary
