"""Speed of nnaudio_core's transforms against peers, in one run.

Workload (the nnAudio paper's protocol): ``--clips`` clips (default 1,770) of 80,000 samples
at 44.1 kHz, n_fft 2048, hop 512, 128 mels, 84 CQT bins from C1, Hann window, centred with
reflect padding. Clips are piano-like harmonic tones plus noise, generated from a seed.

Peers, timed in the same process on the same clips: ``torch.stft`` (+ ``abs``; + mel
matmul), librosa (``librosa.stft`` / ``librosa.feature.melspectrogram`` / ``librosa.cqt``
with ``tuning=0``, on each batch), and nnAudio2 (``STFT``, ``MelSpectrogram``,
``CQT1992v2``, ``CQT2010v2``) when installed. Reported: median seconds over ``--repeat``
passes over all clips (after one warm-up batch), clips/s, and each peer's time divided by
ours (> 1: we are faster).

    python benchmarks/bench_core.py --clips 177 --json bench-core.json
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from collections.abc import Callable

import numpy as np
import torch

from nnaudio_core import STFT, CQT1992v2, CQT2010v2, MelSpectrogram

SR = 44100
N_FFT = 2048
HOP = 512
N_MELS = 128
N_BINS = 84
FMIN = 32.70  # C1
TRANSFORMS = ("stft", "mel", "cqt1992v2", "cqt2010v2")


def piano_clips(n_clips: int, n_samples: int, sr: int = SR, seed: int = 0) -> np.ndarray:
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
        out[i] = 0.5 * y / np.max(np.abs(y))
    return out


def time_passes(run: Callable[[], None], repeat: int) -> float:
    """Median wall seconds of ``repeat`` calls of ``run``."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def batches(x: np.ndarray, batch_size: int) -> list[np.ndarray]:
    return [x[i : i + batch_size] for i in range(0, len(x), batch_size)]


def candidates(wanted: list[str]) -> dict[str, dict[str, Callable[[np.ndarray], object]]]:
    """For each wanted transform, name -> function of one (batch, samples) numpy batch."""
    ours_stft = STFT(n_fft=N_FFT, hop_length=HOP, sr=SR, output_format="Magnitude")
    ours_mel = MelSpectrogram(sr=SR, n_fft=N_FFT, hop_length=HOP, n_mels=N_MELS)
    cqt_args = {"sr": SR, "hop_length": HOP, "fmin": FMIN, "n_bins": N_BINS}
    ours_cqt = {"cqt1992v2": CQT1992v2(**cqt_args), "cqt2010v2": CQT2010v2(**cqt_args)}
    window = torch.hann_window(N_FFT)
    mel_basis = ours_mel.mel_basis

    def torch_stft(b: np.ndarray) -> torch.Tensor:
        spec = torch.stft(
            torch.from_numpy(b),
            N_FFT,
            HOP,
            window=window,
            center=True,
            pad_mode="reflect",
            return_complex=True,
        )
        return spec.abs()

    out: dict[str, dict[str, Callable[[np.ndarray], object]]] = {
        "stft": {
            "nnaudio": lambda b: ours_stft(torch.from_numpy(b)),
            "torch.stft": torch_stft,
        },
        "mel": {
            "nnaudio": lambda b: ours_mel(torch.from_numpy(b)),
            "torch.stft": lambda b: mel_basis @ torch_stft(b).pow(2),
        },
    }
    for name, module in ours_cqt.items():
        out[name] = {"nnaudio": lambda b, m=module: m(torch.from_numpy(b))}
    try:
        import librosa

        out["stft"]["librosa"] = lambda b: np.abs(
            librosa.stft(b, n_fft=N_FFT, hop_length=HOP, pad_mode="reflect")
        )
        out["mel"]["librosa"] = lambda b: librosa.feature.melspectrogram(
            y=b, sr=SR, n_fft=N_FFT, hop_length=HOP, n_mels=N_MELS, pad_mode="reflect"
        )
        for name in ours_cqt:
            out[name]["librosa"] = lambda b: np.abs(
                librosa.cqt(b, sr=SR, hop_length=HOP, fmin=FMIN, n_bins=N_BINS, tuning=0.0)
            )
    except ImportError:
        print("librosa not installed: skipped (pip install 'nnaudio[bench]')")
    try:
        import os

        os.environ.setdefault("NNAUDIO_DISABLE_CITATION_REMINDER", "1")
        from nnAudio2.features.cqt import CQT1992v2 as CQT1992v2_2
        from nnAudio2.features.cqt import CQT2010v2 as CQT2010v2_2
        from nnAudio2.features.mel import MelSpectrogram as Mel2
        from nnAudio2.features.stft import STFT as STFT2

        s2 = STFT2(n_fft=N_FFT, hop_length=HOP, sr=SR, output_format="Magnitude", verbose=False)
        m2 = Mel2(sr=SR, n_fft=N_FFT, hop_length=HOP, n_mels=N_MELS, verbose=False)
        out["stft"]["nnAudio2"] = lambda b: s2(torch.from_numpy(b))
        out["mel"]["nnAudio2"] = lambda b: m2(torch.from_numpy(b))
        for name, cls in (("cqt1992v2", CQT1992v2_2), ("cqt2010v2", CQT2010v2_2)):
            c2 = cls(**cqt_args, verbose=False)
            out[name]["nnAudio2"] = lambda b, m=c2: m(torch.from_numpy(b))
    except ImportError:
        print("nnAudio2 not installed: skipped (pip install 'nnaudio[bench]')")
    return {name: fns for name, fns in out.items() if name in wanted}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=1770)
    parser.add_argument("--samples", type=int, default=80000)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--transforms", default=",".join(TRANSFORMS), help="comma-separated")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: all)")
    parser.add_argument("--json", dest="json_path", default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    clips = piano_clips(args.clips, args.samples)
    parts = batches(clips, args.batch_size)
    results: dict[str, dict[str, float]] = {}
    with torch.inference_mode():
        wanted = [t.strip() for t in args.transforms.split(",")]
        unknown = set(wanted) - set(TRANSFORMS)
        if unknown:
            parser.error(f"unknown transform(s) {sorted(unknown)}; choose from {TRANSFORMS}")
        for transform, fns in candidates(wanted).items():
            results[transform] = {}
            for name, fn in fns.items():
                fn(parts[0])  # warm-up
                results[transform][name] = time_passes(
                    lambda fn=fn: [fn(b) for b in parts], args.repeat
                )

    print(
        f"{args.clips} clips x {args.samples} samples at {SR} Hz, n_fft {N_FFT}, hop {HOP}, "
        f"{N_MELS} mels, batch {args.batch_size}, torch threads {torch.get_num_threads()}"
    )
    print(f"{'transform':10s} {'impl':12s} {'seconds':>8s} {'clips/s':>9s} {'peer/ours':>9s}")
    for transform, times in results.items():
        ours = times["nnaudio"]
        for name, sec in times.items():
            print(
                f"{transform:10s} {name:12s} {sec:8.3f} {args.clips / sec:9.0f} {sec / ours:9.2f}"
            )
    if args.json_path:
        report = {
            "workload": vars(args) | {"sr": SR, "n_fft": N_FFT, "hop": HOP, "n_mels": N_MELS},
            "machine": {
                "cpu": platform.processor() or platform.machine(),
                "torch": torch.__version__,
                "numpy": np.__version__,
                "threads": torch.get_num_threads(),
            },
            "seconds": results,
            "peer_over_ours": {
                t: {n: s / times["nnaudio"] for n, s in times.items()}
                for t, times in results.items()
            },
        }
        with open(args.json_path, "w") as fh:
            json.dump(report, fh, indent=2)


if __name__ == "__main__":
    main()
