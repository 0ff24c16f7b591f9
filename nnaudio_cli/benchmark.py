"""``nnaudio benchmark``: the speed of nnaudio_core's transforms against peers, in one run.

Workload (the nnAudio paper's protocol): 1,770 clips x 80,000 samples at 44.1 kHz, either
synthesised from a seed (piano-like decaying harmonic tones plus noise; :func:`piano_clips`)
or cut from the files of a folder (samples ``20,000 .. 100,000`` of each file, decoded,
mixed to mono and resampled with soxr as ``nnaudio extract`` does). Parameters: n_fft 2048,
hop 512, 128 mels, 20 MFCCs, 84 CQT bins from C1 (32.70 Hz), Hann window, centred with
reflect padding.

For every transform and implementation ("candidate"), in one process and on the same clips:

* ``build_seconds``: constructing the module (kernels, filter banks) and moving it to the
  device; ``warmup_seconds``: one batch of each distinct batch shape;
* ``seconds``: the median of ``repeat`` timed passes over all clips (batches of
  ``batch_size`` clips under ``torch.inference_mode()``; inputs are staged on the device
  beforehand, outputs stay there; the device is synchronised before the clock stops);
* ``clips_per_second``, ``audio_seconds_per_second`` (from the median);
* ``peak_rss_mb`` / ``rss_delta_mb`` (host, see :mod:`nnaudio_cli.machine`) and
  ``device_peak_mb`` (CUDA ``max_memory_allocated``) over build, warm-up and passes;
* ``speedup_vs_ours = peer seconds / nnaudio seconds`` (medians of this run; > 1 means
  nnaudio is faster; 1.0 on nnaudio's own row).

Peers: ``torch`` (``torch.stft(...).abs()``; + ``mel_basis @ |.|**2`` with our mel basis),
``librosa`` (``stft``, ``feature.melspectrogram``, ``feature.mfcc``, ``cqt(tuning=0.0)``,
``vqt``; on the same batches as 2-D numpy arrays, always on the CPU) and ``nnaudio2``
(``STFT``, ``MelSpectrogram``, ``MFCC``, ``CQT1992v2``, ``CQT2010v2``, ``VQT``). librosa has
one CQT, so its ``cqt2010v2`` row repeats the ``cqt1992v2`` measurement (``shared_with``).
"""

from __future__ import annotations

import math
import os
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib.util import find_spec
from pathlib import Path
from typing import Any

import numpy as np

SCHEMA_VERSION = 1
SR = 44100
N_CLIPS = 1770
N_SAMPLES = 80000
OFFSET = 20000  # --input: clips are samples OFFSET .. OFFSET + samples of each file
N_FFT = 2048
HOP = 512
N_MELS = 128
N_MFCC = 20
N_BINS = 84
FMIN = 32.70  # C1
BINS_PER_OCTAVE = 12
VQT_GAMMA = 20.0
SEED = 0

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
    "librosa": ("librosa", "pip install 'nnaudio[bench]'  # or: pip install librosa==0.11.0"),
    "nnaudio2": ("nnAudio2", "pip install 'nnaudio[bench]'  # or: pip install nnaudio2"),
    "torch": ("torch", "pip install torch"),
}
#: impl label of each peer in the results
PEER_LABELS = {"librosa": "librosa", "nnaudio2": "nnAudio2", "torch": "torch.stft"}
OURS = "nnaudio"
SPEEDUP_DEFINITION = (
    "speedup_vs_ours = peer seconds / nnaudio seconds (medians of the same run); "
    "> 1 means nnaudio is faster"
)


class BenchmarkError(RuntimeError):
    """A problem that stops the benchmark; ``usage`` selects exit code 2 over 1."""

    def __init__(self, message: str, usage: bool = False) -> None:
        super().__init__(message)
        self.usage = usage


# --------------------------------------------------------------------------- workload


def piano_clips(
    n_clips: int, n_samples: int, sr: float = SR, seed: int = SEED
) -> np.ndarray:
    """Deterministic piano-like clips: decaying harmonic notes plus a little noise.

    Returns
    -------
    np.ndarray, shape (n_clips, n_samples), float32, peak about 0.5
    """
    rng = np.random.default_rng(seed)
    t = np.arange(n_samples, dtype=np.float64) / sr
    out = np.empty((n_clips, n_samples), dtype=np.float32)
    for i in range(n_clips):
        midi = rng.integers(21, 100)
        f0 = 440.0 * 2.0 ** ((midi - 69) / 12.0)
        y = np.zeros(n_samples)
        for h in range(1, 9):
            if h * f0 >= sr / 2:
                break
            y += (0.6**h) * np.sin(2 * np.pi * h * f0 * t + rng.uniform(0, 2 * np.pi))
        y *= np.exp(-t * rng.uniform(1.0, 4.0))
        y += 0.01 * rng.standard_normal(n_samples)
        out[i] = 0.5 * y / max(float(np.max(np.abs(y))), 1e-12)
    return out


def clips_from_folder(
    root: Path, n_clips: int | None, n_samples: int, sr: float, offset: int = OFFSET
) -> tuple[np.ndarray, dict[str, Any]]:
    """Samples ``offset .. offset + n_samples`` of each audio file under ``root`` (sorted),
    decoded, mixed to mono and resampled to ``sr`` as ``nnaudio extract`` does.

    Files that cannot be decoded or are too short are skipped (counted in the info).
    """
    import soundfile as sf

    from nnaudio_cli.audio import prepare
    from nnaudio_cli.extract.discover import find_audio

    keys = find_audio(root)
    rows: list[np.ndarray] = []
    short = failed = 0
    for key in keys:
        if n_clips is not None and len(rows) >= n_clips:
            break
        try:
            x, sr_in = sf.read(str(Path(root) / key), dtype="float32", always_2d=True)
        except Exception:  # noqa: BLE001 - not audio after all
            failed += 1
            continue
        y = prepare(x, sr_in, sr, mono=True)[0]
        if y.shape[0] < offset + n_samples:
            short += 1
            continue
        rows.append(y[offset : offset + n_samples])
    if not rows:
        raise BenchmarkError(
            f"no usable audio under {root}: {len(keys)} audio file name(s), {failed} "
            f"undecodable, {short} shorter than {offset + n_samples} samples at {sr:g} Hz"
        )
    info = {"files_found": len(keys), "files_used": len(rows), "files_too_short": short,
            "files_undecodable": failed}
    return np.ascontiguousarray(np.stack(rows)), info


# --------------------------------------------------------------------------- candidates


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


def cqt_pad_mode(samples: int, sr: float) -> str:
    """``reflect`` when a clip is longer than the longest CQT kernel, else ``constant``
    (zeros, librosa.cqt's default): reflect padding needs ``samples > kernel // 2``."""
    q = 1.0 / (2.0 ** (1.0 / BINS_PER_OCTAVE) - 1.0)
    longest = 2 ** math.ceil(math.log2(q * sr / FMIN))
    return "reflect" if samples > longest else "constant"


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


# --------------------------------------------------------------------------- measuring


@dataclass
class Workload:
    clips: np.ndarray  # (n_clips, n_samples) float32
    sr: float
    batch_size: int
    repeat: int
    device: Any
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def audio_seconds(self) -> float:
        return self.clips.shape[0] * self.clips.shape[1] / self.sr


def _sync(device: Any) -> None:
    import torch

    kind = getattr(device, "type", "cpu")
    if kind == "cuda":
        torch.cuda.synchronize(device)
    elif kind == "mps":
        torch.mps.synchronize()


def measure(c: Candidate, w: Workload, staged: dict[str, list[Any]]) -> dict[str, Any]:
    """Build, warm up and time one candidate; returns its result row (without ratios)."""
    import torch

    from nnaudio_cli.machine import MemoryMeter

    device = w.device if c.on_device else torch.device("cpu")
    batches = staged["numpy"] if c.takes == "numpy" else staged["torch"]
    meter = MemoryMeter(device)
    shapes: list[Any] = []
    with meter, torch.inference_mode():
        t0 = time.perf_counter()
        fn = c.build()
        _sync(device)
        build = time.perf_counter() - t0

        t0 = time.perf_counter()
        seen = set()
        for b in batches:  # one batch of each distinct shape (the last one may be short)
            if tuple(b.shape) in seen:
                continue
            seen.add(tuple(b.shape))
            out = fn(b)
            shapes.append(list(out.shape[1:]))
            del out
        _sync(device)
        warmup = time.perf_counter() - t0

        times = []
        for _ in range(w.repeat):
            t0 = time.perf_counter()
            for b in batches:
                fn(b)
            _sync(device)
            times.append(time.perf_counter() - t0)
        del fn
    median = statistics.median(times)
    n = w.clips.shape[0]
    return {
        "transform": c.transform,
        "impl": c.impl,
        "detail": c.detail,
        "device": str(device),
        "build_seconds": round(build, 6),
        "warmup_seconds": round(warmup, 6),
        "seconds": median,
        "seconds_all": times,
        "clips_per_second": n / median,
        "audio_seconds_per_second": w.audio_seconds / median,
        "peak_rss_mb": _r(meter.peak_mb),
        "rss_delta_mb": _r(meter.delta_mb),
        "device_peak_mb": _r(meter.device_peak_mb),
        "output_shape_per_clip": shapes[0] if shapes else None,
    }


def _r(x: float | None) -> float | None:
    return None if x is None else round(x, 1)


def stage(w: Workload) -> dict[str, list[Any]]:
    """The clips as batches: numpy (CPU) for librosa, tensors on the device for torch."""
    import torch

    np_batches = [np.ascontiguousarray(w.clips[i : i + w.batch_size])
                  for i in range(0, w.clips.shape[0], w.batch_size)]
    t_batches = [torch.from_numpy(b).to(w.device) for b in np_batches]
    return {"numpy": np_batches, "torch": t_batches}


def run_transforms(
    w: Workload,
    transforms: list[str],
    peers: list[str],
    missing: dict[str, str],
    log: Callable[[str], None],
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Measure every candidate of every transform; returns (results, skipped)."""
    import warnings

    import torch

    staged = stage(w)
    # imports (librosa loads its submodules lazily) are not kernel build time
    import nnaudio_core  # noqa: F401

    if "librosa" in peers and "librosa" not in missing:
        import librosa

        for name in ("stft", "cqt", "vqt", "feature.melspectrogram", "feature.mfcc"):
            obj: Any = librosa
            for part in name.split("."):
                obj = getattr(obj, part)
    if "nnaudio2" in peers and "nnaudio2" not in missing:
        os.environ["NNAUDIO_DISABLE_CITATION_REMINDER"] = "1"
        import nnAudio2.features  # noqa: F401
    # librosa warns about the small FFTs of its multi-rate CQT on short clips
    warnings.filterwarnings("ignore", message="n_fft=.*too large", category=UserWarning)
    with torch.inference_mode():  # first-use costs of torch (thread pool, FFT plans): untimed
        torch.stft(staged["torch"][0][:1], N_FFT, HOP, window=torch.hann_window(
            N_FFT, device=w.device), center=True, return_complex=True).abs()
        _sync(w.device)
    results: list[dict[str, Any]] = []
    skipped: list[dict[str, Any]] = []
    shared: dict[str, dict[str, Any]] = {}
    for transform in transforms:
        cands, skip = candidates(
            transform, w.sr, w.clips.shape[1], peers, w.device, missing
        )
        skipped += skip
        rows = []
        for c in cands:
            if c.share_key and c.share_key in shared:
                row = dict(shared[c.share_key], transform=transform,
                           shared_with=shared[c.share_key]["transform"])
                log(f"{transform} {c.impl}: same computation as "
                    f"{row['shared_with']}, measurement reused")
            else:
                log(f"{transform} {c.impl}: building, warming up, {w.repeat} timed pass(es)")
                row = measure(c, w, staged)
                if c.share_key:
                    shared[c.share_key] = row
                log(f"{transform} {c.impl}: {row['seconds']:.3f} s "
                    f"({row['clips_per_second']:.1f} clips/s)")
            rows.append(row)
        add_ratios(rows)
        results += rows
    return results, skipped


def add_ratios(rows: list[dict[str, Any]]) -> None:
    """``speedup_vs_ours`` = row seconds / nnaudio seconds for the rows of one transform."""
    ours = next(r for r in rows if r["impl"] == OURS)
    for r in rows:
        r["ours_seconds"] = ours["seconds"]
        r["speedup_vs_ours"] = r["seconds"] / ours["seconds"]


# --------------------------------------------------------------------------- pipeline


def write_wavs(clips: np.ndarray, sr: float, folder: Path) -> None:
    """The synthetic clips as 16-bit WAV files ``clip_00000.wav`` ... in ``folder``."""
    import soundfile as sf

    folder.mkdir(parents=True, exist_ok=True)
    for i, y in enumerate(clips):
        sf.write(folder / f"clip_{i:05d}.wav", y, int(round(sr)), subtype="PCM_16")


# --------------------------------------------------------------------------- output


def render(report: dict[str, Any], console: Any = None) -> None:
    """Print the results (and the pipeline section) as rich tables."""
    from rich.console import Console
    from rich.table import Table

    if console is None:
        console = Console()
        if not console.is_terminal:  # a file or a pipe: do not squeeze the table into 80
            console = Console(width=140)
    wl = report["workload"]
    m = report["machine"]
    if report["results"]:
        title = (
            f"{wl['clips']} clips x {wl['samples']} samples at {wl['sr']:g} Hz "
            f"({wl['audio_seconds']:.0f} s of audio) on {wl['device']}, batch "
            f"{wl['batch_size']}, median of {wl['repeat']}"
        )
        t = Table(title=title, caption=SPEEDUP_DEFINITION)
        for col in ("transform", "impl"):
            t.add_column(col)
        for col in ("build s", "warm-up s", "median s", "clips/s", "audio s/s",
                    "peak RSS MB (+delta)", "speedup"):
            t.add_column(col, justify="right")
        if any(r["device_peak_mb"] is not None for r in report["results"]):
            t.add_column("device MB", justify="right")
        last = None
        for r in report["results"]:
            if last is not None and r["transform"] != last:
                t.add_section()
            last = r["transform"]
            impl = r["impl"] + (f" ({r['device']})" if r["device"] != wl["device"] else "")
            rss = "-" if r["peak_rss_mb"] is None else f"{r['peak_rss_mb']:.0f}"
            if r.get("rss_delta_mb") is not None:
                rss += f" (+{r['rss_delta_mb']:.0f})"
            cells = [
                r["transform"], impl + (" *" if r.get("shared_with") else ""),
                f"{r['build_seconds']:.3f}", f"{r['warmup_seconds']:.3f}",
                f"{r['seconds']:.3f}", f"{r['clips_per_second']:.1f}",
                f"{r['audio_seconds_per_second']:.0f}",
                rss,
                "1 (ours)" if r["impl"] == OURS else f"{r['speedup_vs_ours']:.2f}x",
            ]
            if len(t.columns) > len(cells):
                cells.append("-" if r["device_peak_mb"] is None
                             else f"{r['device_peak_mb']:.0f}")
            t.add_row(*cells)
        console.print(t)
        if any(r.get("shared_with") for r in report["results"]):
            console.print("* same computation as the row it repeats (measured once)")
    for s in report["skipped"]:
        where = f" for {s['transform']}" if s.get("transform") else ""
        hint = f"; install: {s['install']}" if s.get("install") else ""
        console.print(f"skipped {s['impl']}{where}: {s['reason']}{hint}", markup=False,
                      highlight=False)
    if report.get("pipeline"):
        from nnaudio_cli.bench_pipeline import render as render_pipeline

        render_pipeline(report["pipeline"], console)
    console.print(
        f"{m['cpu_model']}, {m['cores']} cores, gpu {m['gpu'] or '-'}, torch {m['torch']} "
        f"({m['threads']['torch_intraop']} threads), git {str(m['git_commit'])[:10]}",
        markup=False, highlight=False,
    )


def plot(report: dict[str, Any], path: Path) -> None:
    """Bars of clips/s per transform, one bar per implementation (log scale)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = report["results"]
    transforms = list(dict.fromkeys(r["transform"] for r in rows))
    impls = list(dict.fromkeys(r["impl"] for r in rows))
    width = 0.8 / max(1, len(impls))
    fig, ax = plt.subplots(figsize=(max(6.0, 1.6 * len(transforms) + 2), 4.5))
    for j, impl in enumerate(impls):
        xs, ys = [], []
        for i, t in enumerate(transforms):
            r = next((r for r in rows if r["transform"] == t and r["impl"] == impl), None)
            if r is not None:
                xs.append(i + (j - (len(impls) - 1) / 2) * width)
                ys.append(r["clips_per_second"])
        bars = ax.bar(xs, ys, width, label=impl)
        ax.bar_label(bars, fmt="%.0f", fontsize=7)
    ax.set_xticks(range(len(transforms)), transforms)
    ax.set_yscale("log")
    ax.set_ylabel("clips / s (higher is faster)")
    wl, m = report["workload"], report["machine"]
    ax.set_title(
        f"{wl['clips']} x {wl['samples']} samples @ {wl['sr']:g} Hz on {wl['device']} "
        f"({m['cpu_model']}{', ' + m['gpu'] if m['gpu'] and wl['device'] != 'cpu' else ''})",
        fontsize=9,
    )
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
