"""``nnaudio benchmark --invert``: how fast and how well ``nnaudio invert`` gets audio back.

For each invertible preset (complex STFT -> iSTFT, complex CQT -> iCQT, mel -> Griffin-Lim
with the default 32 iterations) the synthetic piano clips of the transform benchmark are
written as WAV files, ``nnaudio extract`` stores their features (not timed), and
:func:`nnaudio_cli.invert.invert_file` turns them back into audio (timed, in this process,
model building and file writing included). Reported per method: seconds of audio per second
of wall time (``x_real_time``), the SNR of the audio against the input resampled to the
preset's rate (soxr HQ, as extract), and for Griffin-Lim the mean spectral convergence.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np

SCHEMA_VERSION = 1
N_CLIPS = 51
#: name -> (extract arguments, expected method)
CASES: dict[str, tuple[list[str], str]] = {
    "stft_complex": (["-c", "stft_complex"], "istft"),
    "cqt84_complex": (["-c", "cqt84", "--set", 'output_format="Complex"'], "icqt"),
    "mel128": (["-c", "mel128"], "griffin-lim"),
}


def _snr_db(refs: list[np.ndarray], ests: list[np.ndarray]) -> Optional[float]:
    sig = sum(float(np.sum(r.astype(np.float64) ** 2)) for r in refs)
    err = sum(float(np.sum((r.astype(np.float64) - e) ** 2))
              for r, e in zip(refs, ests, strict=True))
    if not sig or not err:
        return None
    return round(10.0 * np.log10(sig / err), 2)


def _load() -> Optional[float]:
    """The 1-minute load average, None where the OS does not report it."""
    try:
        return round(os.getloadavg()[0], 2)
    except (AttributeError, OSError):
        return None


def run(
    n_clips: Optional[int], samples: int, sr: float, device_spec: str, threads: Optional[int],
    seed: int, log: Callable[[str], None],
) -> dict[str, Any]:
    """Run the invert benchmark; returns the report (see :data:`SCHEMA_VERSION`)."""
    import soundfile as sf
    import soxr
    import torch

    from nnaudio_cli import machine
    from nnaudio_cli.benchmark import piano_clips
    from nnaudio_cli.devices import resolve_device
    from nnaudio_cli.invert import invert_file

    dev = resolve_device(device_spec)
    torch.set_num_threads(threads or machine.usable_cores())
    n = N_CLIPS if n_clips is None else n_clips
    clips = piano_clips(n, samples, sr, seed)
    results: list[dict[str, Any]] = []
    started = time.time()
    load_start = _load()
    with tempfile.TemporaryDirectory(prefix="nnaudio-bench-invert-") as tmp:
        root = Path(tmp)
        (root / "in").mkdir()
        for i, clip in enumerate(clips):
            sf.write(root / "in" / f"clip{i:04d}.wav", clip, int(round(sr)), subtype="FLOAT")
        for name, (args, method) in CASES.items():
            feats = root / f"{name}.h5"
            log(f"extracting {name} ({n} clips x {samples} samples)")
            cmd = [sys.executable, "-m", "nnaudio_cli", "extract", str(root / "in"),
                   str(feats), "-q", "-j", "0", *args]
            done = subprocess.run(cmd, capture_output=True, text=True)
            if done.returncode != 0:
                raise RuntimeError(f"extract {name} failed: {done.stderr.strip()[-300:]}")
            out = root / f"out_{name}"
            log(f"inverting {name} with {method}")
            t0 = time.perf_counter()
            summary = invert_file(feats, out, "auto", "wav", device=dev)
            wall = time.perf_counter() - t0
            refs, ests = [], []
            out_sr = sr
            for key, path in summary.files.items():
                est, out_sr = sf.read(path, dtype="float32")
                ref = clips[int(Path(key).stem[4:])]
                if out_sr != sr:
                    ref = soxr.resample(ref, sr, out_sr, quality="HQ")
                m = min(ref.shape[0], est.shape[0])
                refs.append(ref[:m])
                ests.append(est[:m])
            conv = summary.extra.get("spectral_convergence") or {}
            results.append({
                "name": name,
                "method": summary.method,
                "clips": n,
                "written": len(summary.written),
                "failed": len(summary.failures),
                "output_sr": float(out_sr),
                "audio_seconds": round(summary.audio_seconds, 3),
                "wall_seconds": round(wall, 3),
                "x_real_time": round(summary.audio_seconds / wall, 2) if wall > 0 else None,
                "snr_db": _snr_db(refs, ests),
                "spectral_convergence": round(float(np.mean(list(conv.values()))), 4)
                if conv else None,
            })
            log(f"{name}: {results[-1]['x_real_time']} x real time, "
                f"SNR {results[-1]['snr_db']} dB")
    return {
        "schema_version": SCHEMA_VERSION,
        "mode": "invert",
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
        "machine": machine.machine_info(dev),
        "workload": {"clips": n, "samples": samples, "sr": sr, "seed": seed,
                     "audio_seconds_in": round(n * samples / sr, 3), "device": str(dev)},
        "results": results,
        "elapsed_seconds": round(time.time() - started, 3),
        # 1-minute load average before and after: timings on a shared machine need it
        "load_average": {"start": load_start, "end": _load()},
    }


def render(report: dict[str, Any]) -> None:
    """Print the invert benchmark as a table on stdout."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"nnaudio invert, {report['workload']['clips']} clips "
                        f"({report['workload']['audio_seconds_in']} s of audio)")
    for col in ("preset", "method", "x real time", "SNR dB", "spectral conv."):
        table.add_column(col)
    for r in report["results"]:
        table.add_row(r["name"], r["method"], f"{r['x_real_time']}", f"{r['snr_db']}",
                      "" if r["spectral_convergence"] is None else f"{r['spectral_convergence']}")
    Console().print(table)
    load = report.get("load_average") or {}
    if load.get("start") is not None:
        Console().print(f"load average {load['start']} -> {load['end']}")


def main(
    n_clips: Optional[int], samples: int, sr: float, device: str, threads: Optional[int],
    seed: int, json_path: Optional[Path], quiet: bool,
) -> dict[str, Any]:
    """What ``nnaudio benchmark --invert`` runs: the report, written to ``json_path`` too."""
    def log(msg: str) -> None:
        if not quiet:
            print(f"benchmark: {msg}", file=sys.stderr, flush=True)

    report = run(n_clips, samples, sr, device, threads, seed, log)
    if json_path is not None:
        json_path.write_text(json.dumps(report, indent=2) + "\n")
        log(f"wrote {json_path}")
    render(report)
    return report
