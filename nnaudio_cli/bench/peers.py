"""The implementations a benchmark compares: ours (nnaudio_core) and the peers.

Peers: ``torch`` (``torch.stft(...).abs()``; + ``mel_basis @ |.|**2`` with our mel basis),
``librosa`` (``stft``, ``feature.melspectrogram``, ``feature.mfcc``, ``cqt(tuning=0.0)``,
``vqt``; on the same batches as 2-D numpy arrays, always on the CPU) and ``nnaudio2``
(``STFT``, ``MelSpectrogram``, ``MFCC``, ``CQT1992v2``, ``CQT2010v2``, ``VQT``). librosa has
one CQT, so its ``cqt2010v2`` row repeats the ``cqt1992v2`` measurement (``shared_with``).

The pipeline benchmark's peer is a librosa loop (:func:`librosa_loop`): ``librosa.load``
(soxr HQ) + the preset's librosa feature + one h5py dataset per file, file by file.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from importlib.util import find_spec
from pathlib import Path
from typing import Any

import numpy as np

from nnaudio_cli.bench.workload import (
    BINS_PER_OCTAVE,
    FMIN,
    HOP,
    N_BINS,
    N_FFT,
    N_MELS,
    N_MFCC,
    VQT_GAMMA,
    BenchmarkError,
    PipelineError,
    cqt_pad_mode,
)
from nnaudio_cli.plumbing.text import install_hint

#: transform name -> nnaudio_core class name
TRANSFORMS: dict[str, str] = {
    "stft": "STFT",
    "mel": "MelSpectrogram",
    "mfcc": "MFCC",
    "cqt1992v2": "CQT1992v2",
    "cqt2010v2": "CQT2010v2",
    "vqt": "VQT",
}


DEFAULT_TRANSFORMS = ("stft", "mel", "cqt1992v2", "cqt2010v2")


PEERS = ("librosa", "nnaudio2", "torch")


#: peer -> (module whose presence makes it available, pip command that installs it)
PEER_PACKAGES: dict[str, tuple[str, str]] = {
    "librosa": ("librosa", f"{install_hint('bench')}  # or: pip install librosa==0.11.0"),
    "nnaudio2": ("nnAudio2", f"{install_hint('bench')}  # or: pip install nnaudio2"),
    "torch": ("torch", "pip install torch"),
}


#: impl label of each peer in the results
PEER_LABELS = {"librosa": "librosa", "nnaudio2": "nnAudio2", "torch": "torch.stft"}


OURS = "nnaudio"


@dataclass
class Candidate:
    """One implementation of one transform: ``build()`` returns ``fn(batch)``."""

    transform: str
    impl: str
    detail: str
    build: Callable[[], Callable[[Any], Any]]
    takes: str = "torch"  # "torch": a tensor on the device; "numpy": a CPU float32 array
    on_device: bool = True
    share_key: str | None = None  # candidates with the same key are measured once


def peer_missing(peer: str) -> str | None:
    """Why ``peer`` cannot run here (``None``: it is installed)."""
    module = PEER_PACKAGES[peer][0]
    try:
        if find_spec(module) is None:
            return f"{module} is not installed"
    except (ImportError, ValueError) as e:
        return f"{module} cannot be imported ({e})"
    return None


def _ours(
    transform: str, sr: float, qpad: str, device: Any
) -> Callable[[], Callable[[Any], Any]]:
    def build() -> Callable[[Any], Any]:
        import nnaudio_core as core

        return core_module(core, transform, sr, qpad).to(device).eval()

    return build


def core_module(core: Any, transform: str, sr: float, cqt_pad: str = "reflect") -> Any:
    """The nnaudio_core module of ``transform`` with the workload's parameters."""
    stft = {"n_fft": N_FFT, "hop_length": HOP, "window": "hann", "center": True,
            "pad_mode": "reflect"}
    cqt = {"hop_length": HOP, "fmin": FMIN, "n_bins": N_BINS,
           "bins_per_octave": BINS_PER_OCTAVE, "center": True, "pad_mode": cqt_pad,
           "output_format": "Magnitude", "verbose": False,
           "backend": "auto"}  # our fast exact path (the classes default to nnAudio2's)
    if transform == "stft":
        return core.STFT(sr=sr, output_format="Magnitude", verbose=False, **stft)
    if transform == "mel":
        return core.MelSpectrogram(sr=sr, n_mels=N_MELS, verbose=False, **stft)
    if transform == "mfcc":
        return core.MFCC(sr=sr, n_mfcc=N_MFCC, n_mels=N_MELS, verbose=False, **stft)
    if transform == "cqt1992v2":
        return core.CQT1992v2(sr=sr, **cqt)
    if transform == "cqt2010v2":
        return core.CQT2010v2(sr=sr, **cqt)
    if transform == "vqt":
        return core.VQT(sr=sr, gamma=VQT_GAMMA, **cqt)
    raise BenchmarkError(f"unknown transform {transform!r}", usage=True)


def _torch_peer(transform: str, sr: float, device: Any) -> Candidate | None:
    if transform not in ("stft", "mel"):
        return None

    def build() -> Callable[[Any], Any]:
        import torch

        import nnaudio_core as core

        window = torch.hann_window(N_FFT, device=device)

        def spec(b: Any) -> Any:
            return torch.stft(
                b, N_FFT, HOP, window=window, center=True, pad_mode="reflect",
                return_complex=True,
            ).abs()

        if transform == "stft":
            return spec
        basis = core_module(core, "mel", sr).mel_basis.to(device)
        return lambda b: torch.matmul(basis, spec(b).pow(2))

    detail = "torch.stft(...).abs()" if transform == "stft" else (
        "mel_basis @ torch.stft(...).abs()**2 (our mel basis)")
    return Candidate(transform, PEER_LABELS["torch"], detail, build)


def _librosa_peer(transform: str, sr: float, qpad: str) -> Candidate:
    def build() -> Callable[[Any], Any]:
        import librosa

        if transform == "stft":
            return lambda b: np.abs(
                librosa.stft(b, n_fft=N_FFT, hop_length=HOP, window="hann", center=True,
                             pad_mode="reflect")
            )
        if transform == "mel":
            return lambda b: librosa.feature.melspectrogram(
                y=b, sr=sr, n_fft=N_FFT, hop_length=HOP, n_mels=N_MELS, pad_mode="reflect"
            )
        if transform == "mfcc":
            return lambda b: librosa.feature.mfcc(
                y=b, sr=sr, n_mfcc=N_MFCC, n_fft=N_FFT, hop_length=HOP, n_mels=N_MELS,
                pad_mode="reflect",
            )
        if transform in ("cqt1992v2", "cqt2010v2"):
            return lambda b: np.abs(
                librosa.cqt(b, sr=sr, hop_length=HOP, fmin=FMIN, n_bins=N_BINS,
                            bins_per_octave=BINS_PER_OCTAVE, tuning=0.0, pad_mode=qpad)
            )
        return lambda b: np.abs(
            librosa.vqt(b, sr=sr, hop_length=HOP, fmin=FMIN, n_bins=N_BINS,
                        bins_per_octave=BINS_PER_OCTAVE, gamma=VQT_GAMMA, tuning=0.0,
                        pad_mode=qpad)
        )

    detail = {
        "stft": "abs(librosa.stft)",
        "mel": "librosa.feature.melspectrogram",
        "mfcc": "librosa.feature.mfcc",
        "cqt1992v2": "abs(librosa.cqt(tuning=0.0))",
        "cqt2010v2": "abs(librosa.cqt(tuning=0.0))",
        "vqt": f"abs(librosa.vqt(gamma={VQT_GAMMA:g}, tuning=0.0))",
    }[transform]
    share = "librosa.cqt" if transform in ("cqt1992v2", "cqt2010v2") else None
    return Candidate(transform, PEER_LABELS["librosa"], detail, build, takes="numpy",
                     on_device=False, share_key=share)


def _nnaudio2_peer(transform: str, sr: float, qpad: str, device: Any) -> Candidate:
    def build() -> Callable[[Any], Any]:
        os.environ["NNAUDIO_DISABLE_CITATION_REMINDER"] = "1"
        from nnAudio2.features import cqt, mel, stft, vqt

        common = {"n_fft": N_FFT, "hop_length": HOP, "center": True, "pad_mode": "reflect",
                  "verbose": False}
        qargs = {"sr": sr, "hop_length": HOP, "fmin": FMIN, "n_bins": N_BINS,
                 "bins_per_octave": BINS_PER_OCTAVE, "pad_mode": qpad,
                 "output_format": "Magnitude", "verbose": False}
        if transform == "stft":
            m = stft.STFT(sr=sr, output_format="Magnitude", **common)
        elif transform == "mel":
            m = mel.MelSpectrogram(sr=sr, n_mels=N_MELS, **common)
        elif transform == "mfcc":
            m = mel.MFCC(sr=sr, n_mfcc=N_MFCC, n_mels=N_MELS, **common)
        elif transform == "cqt1992v2":
            m = cqt.CQT1992v2(**qargs)
        elif transform == "cqt2010v2":
            m = cqt.CQT2010v2(**qargs)
        else:
            m = vqt.VQT(gamma=VQT_GAMMA, **qargs)
        return m.to(device).eval()

    cls = TRANSFORMS[transform]
    return Candidate(transform, PEER_LABELS["nnaudio2"], f"nnAudio2.features.{cls}", build)


def candidates(
    transform: str,
    sr: float,
    samples: int,
    peers: list[str],
    device: Any,
    missing: dict[str, str],
) -> tuple[list[Candidate], list[dict[str, Any]]]:
    """Ours first, then each wanted peer; and the skipped ones with the reason."""
    qpad = cqt_pad_mode(samples, sr)
    out = [Candidate(transform, OURS, f"nnaudio_core.{TRANSFORMS[transform]}",
                     _ours(transform, sr, qpad, device))]
    skipped: list[dict[str, Any]] = []
    for peer in peers:
        if peer in missing:
            continue  # reported once, not per transform
        if peer == "torch":
            c = _torch_peer(transform, sr, device)
            if c is None:
                skipped.append({"transform": transform, "impl": PEER_LABELS[peer],
                                "reason": "no plain torch equivalent", "install": None})
                continue
        elif peer == "librosa":
            c = _librosa_peer(transform, sr, qpad)
        else:
            c = _nnaudio2_peer(transform, sr, qpad, device)
        out.append(c)
    return out, skipped


def _librosa_feature(preset: str, params: dict[str, Any], sr: float) -> Callable[[Any], Any]:
    """The preset's feature as librosa computes it (same parameters)."""
    import librosa

    p = params
    if preset == "mel128":
        return lambda y: librosa.feature.melspectrogram(
            y=y, sr=sr, n_fft=p["n_fft"], hop_length=p["hop_length"], n_mels=p["n_mels"],
            fmin=p.get("fmin", 0.0), power=p.get("power", 2.0), center=True,
            pad_mode=p.get("pad_mode", "reflect"))
    if preset == "mfcc":
        if p.get("top_db", 80.0) != 80.0:
            raise PipelineError("the librosa loop computes MFCC with top_db=80 only")
        return lambda y: librosa.feature.mfcc(  # power_to_db inside uses top_db=80
            y=y, sr=sr, n_mfcc=p["n_mfcc"], n_mels=p["n_mels"], n_fft=p["n_fft"],
            hop_length=p["hop_length"], center=True, pad_mode=p.get("pad_mode", "reflect"))
    if preset == "stft":
        return lambda y: np.abs(librosa.stft(
            y, n_fft=p["n_fft"], hop_length=p["hop_length"], center=True,
            pad_mode=p.get("pad_mode", "reflect")))
    if preset == "cqt84":
        return lambda y: np.abs(librosa.cqt(
            y, sr=sr, hop_length=p["hop_length"], fmin=p["fmin"], n_bins=p["n_bins"],
            bins_per_octave=p.get("bins_per_octave", 12), tuning=0.0,
            pad_mode=p.get("pad_mode", "constant")))
    raise PipelineError(f"no librosa equivalent for preset {preset!r}")


def librosa_loop(paths: list[str], keys: list[str], preset: str, params: dict[str, Any],
                 sr: float, out: Path) -> float:
    """Seconds for ``librosa.load`` + feature + h5py, file by file."""
    import h5py
    import librosa

    feature = _librosa_feature(preset, params, sr)
    feature(librosa.load(paths[0], sr=sr, mono=True)[0])  # warm-up (numba, FFT plans)
    t0 = time.perf_counter()
    with h5py.File(out, "w") as h5:
        for path, key in zip(paths, keys, strict=True):
            y, _ = librosa.load(path, sr=sr, mono=True)
            h5.create_dataset(key, data=np.ascontiguousarray(feature(y).T, dtype=np.float32))
    return time.perf_counter() - t0
