"""Decode throughput per format (``benchmark --pipeline --formats flac,mp3,m4a,opus``).

The same audio (the pipeline's clips) is encoded once into each format, in a temporary
folder, and every file is then decoded to float32 the way ``extract`` decodes it
(:func:`nnaudio_cli.extract.audio.open_sound`: libsndfile for what it reads, FFmpeg through PyAV for
the containers), in this process, one file after another: no resampling, no downmix.
Reported per format: the decoder that read it, file bytes, and **seconds of audio decoded
per CPU-second** (``time.process_time`` of this process, all its threads), the median of
``repeat`` passes, and the ratio to the first format of the list.

Encoders: WAV/FLAC (16-bit), MP3 and Ogg Vorbis by libsndfile (soundfile); AAC
(``.m4a``/``.mp4``/``.aac``), Opus (``.opus``/``.webm``), WMA (``.wma``) and AC-3
(``.mkv``) by FFmpeg at 128 kb/s. Opus only codes 48 kHz: its files hold the clips resampled
to 48 kHz (soxr HQ), the same seconds of audio.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

#: format -> (extension, encoder, codec or libsndfile subtype)
FORMATS: dict[str, tuple[str, str, str]] = {
    "wav": (".wav", "libsndfile", "PCM_16"),
    "flac": (".flac", "libsndfile", "PCM_16"),
    "mp3": (".mp3", "libsndfile", "MPEG_LAYER_III"),
    "ogg": (".ogg", "libsndfile", "VORBIS"),
    "opus": (".opus", "ffmpeg", "libopus"),
    "webm": (".webm", "ffmpeg", "libopus"),
    "m4a": (".m4a", "ffmpeg", "aac"),
    "mp4": (".mp4", "ffmpeg", "aac"),
    "aac": (".aac", "ffmpeg", "aac"),
    "wma": (".wma", "ffmpeg", "wmav2"),
    "mkv": (".mkv", "ffmpeg", "ac3"),
}
#: how the figures are defined (stored in the report)
FORMATS_DEFINITION = (
    "the same clips encoded in each format, then decoded to float32 as extract decodes them "
    "(libsndfile, or FFmpeg through PyAV), one file after another in one process, without "
    "resampling; audio_seconds_per_cpu_second = seconds of audio / CPU seconds of the "
    "process (median of repeat passes); vs_first = that figure / the first format's."
)


def encode(clips: list[np.ndarray], sr: int, fmt: str, folder: Path) -> list[Path]:
    """Write every clip (float32, shape (samples,)) as ``folder/clip_NNNNN.EXT``."""
    import soundfile as sf
    import soxr

    from nnaudio_cli.extract import containers

    ext, encoder, codec = FORMATS[fmt]
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, y in enumerate(clips):
        p = folder / f"clip_{i:05d}{ext}"
        if encoder == "libsndfile":
            sf.write(p, y, sr, subtype=codec)
        else:
            rate = 48000 if codec == "libopus" else sr
            x = y if rate == sr else soxr.resample(y, sr, rate, quality="HQ")
            mux = "adts" if ext == ".aac" else ("ogg" if ext == ".opus" else None)
            containers.write_audio(p, np.asarray(x, np.float32)[None], rate, codec, mux)
        paths.append(p)
    return paths


def decode_pass(paths: list[Path]) -> tuple[float, float, str]:
    """Decode every file: (CPU seconds, seconds of audio, the decoder that read them)."""
    from nnaudio_cli.extract.audio import open_sound

    seconds = 0.0
    backend = ""
    t0 = time.process_time()
    for p in paths:
        f, reason = open_sound(p)
        if f is None:
            raise ValueError(f"{p.name}: {reason}")
        with f:
            x = f.read(dtype="float32", always_2d=True)
            seconds += x.shape[0] / f.samplerate
            backend = "ffmpeg (PyAV)" if hasattr(f, "truncation") else "libsndfile"
    return time.process_time() - t0, seconds, backend


def run_formats(clips: list[np.ndarray], sr: int, formats: list[str], folder: Path,
                repeat: int, log: Callable[[str], None]) -> dict[str, Any]:
    """Encode ``clips`` in each format under ``folder`` and time decoding them (see the
    module docstring); the ``formats`` section of the pipeline report."""
    rows: list[dict[str, Any]] = []
    for fmt in formats:
        log(f"formats: encoding {len(clips)} clips as {fmt}")
        paths = encode(clips, sr, fmt, folder / fmt)
        decode_pass(paths)  # warm-up: imports, page cache
        log(f"formats: decoding {fmt} ({repeat} passes)")
        runs = [decode_pass(paths) for _ in range(repeat)]
        cpu = statistics.median(r[0] for r in runs)
        audio_s = runs[0][1]
        rows.append({
            "format": fmt,
            "extension": FORMATS[fmt][0],
            "codec": FORMATS[fmt][2],
            "decoder": runs[0][2],
            "files": len(paths),
            "bytes": sum(p.stat().st_size for p in paths),
            "audio_seconds": round(audio_s, 3),
            "cpu_seconds": cpu,
            "cpu_seconds_all": [r[0] for r in runs],
            "audio_seconds_per_cpu_second": audio_s / cpu if cpu > 0 else None,
        })
    first = rows[0]["audio_seconds_per_cpu_second"] if rows else None
    for r in rows:
        v = r["audio_seconds_per_cpu_second"]
        r["vs_first"] = v / first if v and first else None
    return {"definition": FORMATS_DEFINITION, "repeat": repeat, "results": rows}


def render_formats(section: dict[str, Any], console: Any) -> None:
    """The formats section as a rich table."""
    from rich.table import Table

    rows = section["results"]
    first = rows[0]["format"] if rows else "-"
    t = Table(title=(f"decode throughput per format (one core, no resampling), median of "
                     f"{section['repeat']}"), caption=section["definition"])
    for col in ("format", "codec", "decoder", "files", "MB", "audio s", "CPU s",
                "audio s / CPU s", f"vs {first}"):
        t.add_column(col, justify="left" if col in ("format", "codec", "decoder") else "right")
    for r in rows:
        rate = r["audio_seconds_per_cpu_second"]
        t.add_row(r["format"], r["codec"], r["decoder"], str(r["files"]),
                  f"{r['bytes'] / 1e6:.2f}", f"{r['audio_seconds']:.1f}",
                  f"{r['cpu_seconds']:.3f}", "-" if rate is None else f"{rate:.0f}",
                  "-" if r["vs_first"] is None else f"{r['vs_first']:.2f}x")
    console.print(t)
