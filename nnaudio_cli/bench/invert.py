"""``nnaudio benchmark --invert``: the speed and quality of ``nnaudio invert``, next to
librosa, idle and (``--busy N``) with busy neighbours.

For each invertible preset of :data:`~nnaudio_cli.bench.workload.INVERT_CASES` (complex
STFT -> iSTFT, complex CQT -> iCQT, mel -> Griffin-Lim with the default 32 iterations) the
clips (synthetic piano clips, or cut from ``--input``'s recordings) are written as WAV files,
``nnaudio extract`` stores their features (not timed), and
:func:`nnaudio_cli.invert.invert_file` turns them back into audio (timed, in this process,
model building and file writing included).

Reported per row: seconds of audio per second of wall time (``x_real_time``) and per CPU
second of this process (``x_real_time_cpu``, less sensitive to a shared machine), the SNR
of the audio against the input resampled to the preset's rate (soxr HQ, as extract; over
all clips, and the median and minimum per clip), for the CQT presets also against the input
band-passed to the preset's band (lowest to top bin centre, an FFT mask: ``snr_in_band_*``),
for Griffin-Lim the mean spectral convergence of the last iteration and, for mel, the
``feature_convergence``: ``||mel(out) - mel(in)||_F / ||mel(in)||_F`` per clip (mean), with
the preset's own transform, so that ours and librosa's are judged by one ruler.

Peers, where librosa is installed, on the same clips in batches of :data:`PEER_BATCH`
(librosa takes ``(..., time)`` arrays): each CQT case adds a ``librosa.icqt`` row
(``librosa.cqt`` with the preset's parameters, not timed, then ``librosa.icqt``, timed), the
mel case a ``librosa mel_to_stft + griffinlim`` row (``librosa.feature.melspectrogram``, not
timed, then ``mel_to_stft`` (its NNLS) and ``griffinlim`` with the same iterations, timed).
``librosa_speedup`` on our rows is librosa's wall seconds / ours (> 1: ours faster).

Busy (``--busy N``): every timed step runs a second time while N processes spin on the cores
(:mod:`nnaudio_cli.bench.busy`): ``busy_wall_seconds``, ``busy_x_real_time``, ``slowdown``
(busy / idle wall seconds of the same row) and ``busy_librosa_speedup``.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Optional, TypeVar

import numpy as np

from nnaudio_cli.bench import busy as busy_lib
from nnaudio_cli.bench.machine import load_average, usable_cores
from nnaudio_cli.bench.workload import (
    INVERT_CASES,
    INVERT_CLIPS,
    SCHEMA_VERSION,
    clips_from_folder,
    piano_clips,
)

#: clips per librosa call (the transform benchmark's batch)
PEER_BATCH = 32

T = TypeVar("T")


# --- quality --------------------------------------------------------------------------------

def _snr_db(refs: list[np.ndarray], ests: list[np.ndarray]) -> Optional[float]:
    sig = sum(float(np.sum(r.astype(np.float64) ** 2)) for r in refs)
    err = sum(float(np.sum((r.astype(np.float64) - e) ** 2))
              for r, e in zip(refs, ests, strict=True))
    if not sig or not err:
        return None
    return round(10.0 * np.log10(sig / err), 2)


def _band_pass(y: np.ndarray, sr: float, lo: float, hi: float) -> np.ndarray:
    """``y`` with every FFT bin outside ``[lo, hi]`` Hz zeroed (zero phase), float64."""
    spec = np.fft.rfft(y.astype(np.float64))
    f = np.fft.rfftfreq(y.shape[0], 1.0 / sr)
    spec[(f < lo) | (f > hi)] = 0
    return np.fft.irfft(spec, y.shape[0])


def _snr_stats(refs: list[np.ndarray], ests: list[np.ndarray], prefix: str) -> dict[str, Any]:
    """``{prefix}_db`` over all clips, ``{prefix}_db_median`` / ``_min`` per clip."""
    per = [_snr_db([r], [e]) for r, e in zip(refs, ests, strict=True)]
    per = [p for p in per if p is not None]
    return {f"{prefix}_db": _snr_db(refs, ests),
            f"{prefix}_db_median": round(float(np.median(per)), 2) if per else None,
            f"{prefix}_db_min": round(float(np.min(per)), 2) if per else None}


def _feature_convergence(feats: Path, refs: list[np.ndarray],
                         ests: list[np.ndarray]) -> float:
    """Mean over clips of ``||F(est) - F(ref)||_F / ||F(ref)||_F``, ``F`` the stored
    preset's transform (on the CPU, float32 in, float64 norms)."""
    import torch

    from nnaudio_cli.featurefile.reader import open_features

    with open_features(feats) as ff:
        transform = ff.transform()
    out = []
    with torch.no_grad():
        for r, e in zip(refs, ests, strict=True):
            a = transform(torch.from_numpy(np.ascontiguousarray(r, np.float32))).double()
            b = transform(torch.from_numpy(np.ascontiguousarray(e, np.float32))).double()
            out.append(float(torch.linalg.norm(b - a) / torch.linalg.norm(a)))
    return round(float(np.mean(out)), 4)


def _feature_band(feats: Path) -> tuple[float, float]:
    """The band a stored CQT measures: its lowest and top bin centre frequencies, Hz."""
    from nnaudio_cli.featurefile.reader import open_features

    with open_features(feats) as ff:
        freqs = np.asarray(ff.frequencies)
    return float(freqs[0]), float(freqs[-1])


def _stored_config(feats: Path) -> dict[str, Any]:
    """The stored feature's config: ``{"transform": name, "params": {...}, ...}``."""
    from nnaudio_cli.featurefile.reader import open_features

    with open_features(feats) as ff:
        return dict(ff.config)


# --- timing ---------------------------------------------------------------------------------

def _timed(run: Callable[[], T], repeat: int = 1) -> tuple[T, float, float]:
    """``run()`` ``repeat`` times: the first output, the median wall seconds and the median
    CPU seconds of this process."""
    import statistics

    out: Any = None
    walls, cpus = [], []
    for i in range(repeat):
        t0, c0 = time.perf_counter(), time.process_time()
        got = run()
        walls.append(time.perf_counter() - t0)
        cpus.append(time.process_time() - c0)
        if i == 0:
            out = got
    return out, statistics.median(walls), statistics.median(cpus)


def _speed(audio_seconds: float, wall: float, cpu: float) -> dict[str, Any]:
    return {"audio_seconds": round(audio_seconds, 3), "wall_seconds": round(wall, 3),
            "x_real_time": round(audio_seconds / wall, 2) if wall > 0 else None,
            "x_real_time_cpu": round(audio_seconds / cpu, 2) if cpu > 0 else None}


def _busy_fields(busy: int, run: Callable[[], Any], idle_wall: float,
                 audio_seconds: float, repeat: int) -> dict[str, Any]:
    """``run()`` again (median of ``repeat``) with ``busy`` neighbours: the row's busy
    columns ({} when 0)."""
    if not busy:
        return {}
    with busy_lib.neighbours(busy) as nb:
        _, wall, _ = _timed(run, repeat)
    return {"busy_wall_seconds": round(wall, 3),
            "busy_x_real_time": round(audio_seconds / wall, 2) if wall > 0 else None,
            "slowdown": round(wall / idle_wall, 3) if idle_wall > 0 else None,
            "busy_neighbour_cpu_seconds": round(nb.cpu_seconds, 3)}


def _batches(clips: list[np.ndarray]) -> list[np.ndarray]:
    """Equal-length clips stacked :data:`PEER_BATCH` at a time (``(batch, time)``)."""
    return [np.stack(clips[i:i + PEER_BATCH]) for i in range(0, len(clips), PEER_BATCH)]


# --- librosa rows ---------------------------------------------------------------------------

def _librosa_row(name: str, method: str, run: Callable[[], list[np.ndarray]],
                 clips: list[np.ndarray], sr: float, busy: int,
                 repeat: int) -> dict[str, Any]:
    """The common part of a librosa row: ``run()`` (the timed step) idle and busy."""
    ests, wall, cpu = _timed(run, repeat)
    secs = sum(y.shape[0] for y in clips) / sr
    return {"name": f"{name} (librosa)", "method": method, "clips": len(clips),
            "written": len(clips), "failed": 0, "output_sr": float(sr),
            **_speed(secs, wall, cpu), **_busy_fields(busy, run, wall, secs, repeat),
            **_snr_stats(clips, ests, "snr"), "band_hz": None,
            "spectral_convergence": None, "iterations": None, "ests": ests}


def _librosa_icqt_row(name: str, feats: Path, clips: list[np.ndarray], sr: float,
                      band: tuple[float, float], busy: int,
                      repeat: int) -> Optional[dict[str, Any]]:
    """librosa.cqt (the stored parameters, not timed) then librosa.icqt, timed."""
    try:
        import librosa
    except ImportError:
        return None
    p = _stored_config(feats)["params"]
    kw = dict(sr=sr, hop_length=int(p["hop_length"]), fmin=float(p["fmin"]),
              bins_per_octave=int(p["bins_per_octave"]),
              filter_scale=float(p.get("filter_scale", 1)))
    batches = _batches(clips)
    coefs = [librosa.cqt(b, n_bins=int(p["n_bins"]), **kw) for b in batches]

    def run() -> list[np.ndarray]:
        return [y.astype(np.float32) for c, b in zip(coefs, batches, strict=True)
                for y in librosa.icqt(c, length=b.shape[-1], **kw)]

    row = _librosa_row(name, "librosa.icqt", run, clips, sr, busy, repeat)
    ests = row.pop("ests")
    refs = [_band_pass(y, sr, *band) for y in clips]
    row.update(_snr_stats(refs, ests, "snr_in_band"),
               band_hz=[round(band[0], 2), round(band[1], 2)])
    return row


def _librosa_griffin_lim_row(name: str, feats: Path, clips: list[np.ndarray], sr: float,
                             iterations: int, busy: int,
                             repeat: int) -> Optional[dict[str, Any]]:
    """librosa.feature.melspectrogram (the stored parameters, not timed), then
    ``mel_to_stft`` + ``griffinlim`` (``iterations``, seeded), timed."""
    try:
        import librosa
    except ImportError:
        return None
    p = _stored_config(feats)["params"]
    stft_kw = dict(n_fft=int(p["n_fft"]), hop_length=int(p["hop_length"]),
                   center=bool(p.get("center", True)), window=p.get("window", "hann"))
    # n_mels: mel_to_stft reads it off the array
    mel_kw = dict(fmin=float(p.get("fmin", 0.0)), fmax=p.get("fmax"),
                  htk=bool(p.get("htk", False)))
    power = float(p.get("power", 2.0))
    pad = p.get("pad_mode", "reflect")
    batches = _batches(clips)
    mels = [librosa.feature.melspectrogram(y=b, sr=sr, power=power, pad_mode=pad,
                                           n_mels=int(p["n_mels"]), **stft_kw, **mel_kw)
            for b in batches]

    def run() -> list[np.ndarray]:
        out = []
        for m, b in zip(mels, batches, strict=True):
            mag = librosa.feature.inverse.mel_to_stft(m, sr=sr, n_fft=stft_kw["n_fft"],
                                                      power=power, **mel_kw)
            y = librosa.griffinlim(mag, n_iter=iterations, length=b.shape[-1],
                                   pad_mode=pad, random_state=0, **stft_kw)
            out.extend(y.astype(np.float32))
        return out

    row = _librosa_row(name, "librosa mel_to_stft + griffinlim", run, clips, sr, busy,
                       repeat)
    row["feature_convergence"] = _feature_convergence(feats, clips, row.pop("ests"))
    row["iterations"] = iterations
    return row


# --- ours -----------------------------------------------------------------------------------

def _ours_row(name: str, feats: Path, root: Path, clips: np.ndarray, sr: float,
              dev: Any, iterations: Optional[int], busy: int,
              repeat: int) -> tuple[dict[str, Any], Any]:
    """``invert_file`` on ``feats`` (into a fresh folder each time), idle and busy; the row
    (named ``name``) and the first run's summary."""
    import soundfile as sf
    import soxr

    from nnaudio_cli.invert import invert_file

    runs = iter(range(1 << 30))

    def run() -> Any:
        out = root / f"out_{name}_{iterations}_{next(runs)}"
        return invert_file(feats, out, "auto", "wav", device=dev, iterations=iterations)

    summary, wall, cpu = _timed(run, repeat)
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
    band = _feature_band(feats) if summary.method == "icqt" else None
    in_band = (_snr_stats([_band_pass(r, out_sr, *band) for r in refs], ests, "snr_in_band")
               if band else {})
    extra = ({"feature_convergence": _feature_convergence(feats, refs, ests)}
             if summary.method == "griffin-lim" and out_sr == sr else {})
    row = {
        "name": name, "method": summary.method, "clips": len(clips),
        "written": len(summary.written), "failed": len(summary.failures),
        "output_sr": float(out_sr),
        **_speed(summary.audio_seconds, wall, cpu),
        **_busy_fields(busy, run, wall, summary.audio_seconds, repeat),
        **_snr_stats(refs, ests, "snr"), **in_band, **extra,
        "band_hz": [round(band[0], 2), round(band[1], 2)] if band else None,
        "iterations": iterations,
        "spectral_convergence": round(float(np.mean(list(conv.values()))), 4)
        if conv else None,
    }
    return row, summary


def _add_ratios(ours: dict[str, Any], peer: dict[str, Any]) -> None:
    """``librosa_speedup`` (and its busy twin) on our row: peer wall / our wall."""
    for key, wall in (("librosa_speedup", "wall_seconds"),
                      ("busy_librosa_speedup", "busy_wall_seconds")):
        if ours.get(wall) and peer.get(wall):
            ours[key] = round(peer[wall] / ours[wall], 2)


def run_invert(
    n_clips: Optional[int], samples: int, sr: float, device_spec: str, threads: Optional[int],
    seed: int, log: Callable[[str], None], input_dir: Optional[Path] = None, busy: int = 0,
    repeat: int = 1,
) -> dict[str, Any]:
    """Run the invert benchmark; returns the report (``schema_version``
    :data:`~nnaudio_cli.bench.workload.SCHEMA_VERSION`).

    ``input_dir``: cut the clips from this folder's recordings
    (:func:`~nnaudio_cli.bench.workload.clips_from_folder`) instead of synthesising them.
    ``busy``: time every row again with that many busy neighbours. ``repeat``: timed runs
    of each row (the median is reported)."""
    import soundfile as sf
    import torch

    from nnaudio_cli.invert import DEFAULT_ITERATIONS
    from nnaudio_cli.plumbing.devices import resolve_device

    dev = resolve_device(device_spec)
    torch.set_num_threads(threads or usable_cores())
    source: dict[str, Any] = {"kind": "piano_clips", "seed": seed}
    if input_dir is not None:
        clips, info = clips_from_folder(input_dir, n_clips, samples, sr)
        source = {"kind": "folder", "path": str(input_dir), **info}
    else:
        clips = piano_clips(INVERT_CLIPS if n_clips is None else n_clips, samples, sr, seed)
    n = clips.shape[0]
    results: list[dict[str, Any]] = []
    started = time.time()
    load_start = load_average()
    with tempfile.TemporaryDirectory(prefix="nnaudio-bench-invert-") as tmp:
        root = Path(tmp)
        (root / "in").mkdir()
        for i, clip in enumerate(clips):
            sf.write(root / "in" / f"clip{i:04d}.wav", clip, int(round(sr)), subtype="FLOAT")
        for name, (args, method, iterations) in INVERT_CASES.items():
            feats = root / f"{name}.h5"
            log(f"extracting {name} ({n} clips x {samples} samples)")
            cmd = [sys.executable, "-m", "nnaudio_cli", "extract", str(root / "in"),
                   str(feats), "-q", "-j", "0", *args]
            done = subprocess.run(cmd, capture_output=True, text=True)
            if done.returncode != 0:
                raise RuntimeError(f"extract {name} failed: {done.stderr.strip()[-300:]}")
            log(f"inverting {name} with {method}" + (f", idle and {busy} busy" if busy else ""))
            row, summary = _ours_row(name, feats, root, clips, sr, dev, iterations, busy,
                                     repeat)
            ours = [row]
            if summary.method == "icqt" and iterations != 1:
                # one CG step: about librosa.icqt's cost (its one-pass approximate inverse)
                one, _ = _ours_row(name, feats, root, clips, sr, dev, 1, busy, repeat)
                one["name"] = f"{name} (1 iteration)"
                ours.append(one)
            results.extend(ours)
            for r in ours:
                log(f"{r['name']}: {r['x_real_time']} x real time, SNR {r['snr_db']} dB")
            if row["output_sr"] != sr:  # librosa would run at another rate: no fair row
                continue
            peer = None
            if summary.method == "icqt":
                peer = _librosa_icqt_row(name, feats, list(clips), sr, _feature_band(feats),
                                         busy, repeat)
            elif (summary.method == "griffin-lim"
                  and _stored_config(feats)["transform"] == "MelSpectrogram"):
                n_iter = iterations or DEFAULT_ITERATIONS["griffin-lim"]
                peer = _librosa_griffin_lim_row(name, feats, list(clips), sr, n_iter, busy,
                                                repeat)
            if peer is not None:
                for r in ours:
                    _add_ratios(r, peer)
                results.append(peer)
                log(f"{peer['name']}: {peer['x_real_time']} x real time "
                    f"(ours {row.get('librosa_speedup')}x as fast)")
    return {
        "schema_version": SCHEMA_VERSION,
        "mode": "invert",
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
        "machine": None,  # filled in by invert_report
        "workload": {"clips": n, "samples": samples, "sr": sr, "seed": seed,
                     "audio_seconds_in": round(n * samples / sr, 3), "device": str(dev),
                     "source": source, "threads": torch.get_num_threads(),
                     "busy_neighbours": busy, "repeat": repeat},
        "results": results,
        "elapsed_seconds": round(time.time() - started, 3),
        # 1-minute load average before and after: timings on a shared machine need it
        "load_average": {"start": load_start, "end": load_average()},
    }


# --- the report -----------------------------------------------------------------------------

def invert_report(
    n_clips: Optional[int], samples: int, sr: float, device: str, threads: Optional[int],
    seed: int, json_path: Optional[Path], quiet: bool, input_dir: Optional[Path] = None,
    busy: int = 0, repeat: int = 1,
) -> dict[str, Any]:
    """What ``nnaudio benchmark --invert`` runs: the report, written to ``json_path`` too."""
    import torch

    from nnaudio_cli.bench.machine import machine_info
    from nnaudio_cli.plumbing.outputs import write_text

    def log(msg: str) -> None:
        if not quiet:
            print(f"benchmark: {msg}", file=sys.stderr, flush=True)

    report = run_invert(n_clips, samples, sr, device, threads, seed, log, input_dir, busy,
                        repeat)
    report["machine"] = machine_info(torch.device(report["workload"]["device"]))
    if json_path is not None:
        write_text(json_path, json.dumps(report, indent=2) + "\n")
        log(f"wrote {json_path}")
    render_invert(report)
    return report


def _cell(v: Any, suffix: str = "") -> str:
    return "-" if v is None else f"{v}{suffix}"


def render_invert(report: dict[str, Any]) -> None:
    """Print the invert benchmark as a table on stdout (busy columns when they ran)."""
    from rich.console import Console
    from rich.table import Table

    console = Console()
    if not console.is_terminal:  # a file or a pipe: do not squeeze the table into 80
        console = Console(width=160)
    wl = report["workload"]
    busy = wl.get("busy_neighbours") or 0
    table = Table(title=f"nnaudio invert, {wl['clips']} clips ({wl['audio_seconds_in']} s "
                        f"of audio), {wl['threads']} thread(s), median of "
                        f"{wl.get('repeat', 1)}",
                  caption="vs librosa = librosa wall seconds / ours (> 1: ours faster)"
                  + ("; slowdown = busy / idle wall seconds" if busy else ""))
    cols = ["preset", "method", "x real time", "x real time (CPU)"]
    if busy:
        cols += [f"x real time, {busy} busy", "slowdown"]
    cols += ["vs librosa"] + (["vs librosa, busy"] if busy else [])
    cols += ["SNR dB", "in-band SNR dB, median (min)", "spectral conv.", "mel conv."]
    for col in cols:
        table.add_column(col)
    for r in report["results"]:
        band = ("" if r.get("snr_in_band_db_median") is None
                else f"{r['snr_in_band_db_median']} ({r['snr_in_band_db_min']})")
        cells = [r["name"], r["method"], _cell(r["x_real_time"]),
                 _cell(r.get("x_real_time_cpu"))]
        if busy:
            cells += [_cell(r.get("busy_x_real_time")), _cell(r.get("slowdown"), "x")]
        cells.append(_cell(r.get("librosa_speedup"), "x"))
        if busy:
            cells.append(_cell(r.get("busy_librosa_speedup"), "x"))
        cells += [_cell(r["snr_db"]), band, _cell(r["spectral_convergence"]),
                  _cell(r.get("feature_convergence"))]
        table.add_row(*cells)
    console.print(table)
    load = report.get("load_average") or {}
    if load.get("start") is not None:
        console.print(f"load average {load['start']} -> {load['end']}")
