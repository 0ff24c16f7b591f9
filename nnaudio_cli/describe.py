"""``nnaudio info``: what a feature file contains and how it was made."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table
from rich.text import Text

from nnaudio_cli.errors import CliError
from nnaudio_cli.store import FeatureFile, open_features, validate_layout
from nnaudio_cli.text import shown_key, unknown_key  # shown_key also importable from here


def unreadable(path: Path, exc: BaseException) -> CliError:
    """The one-line error for a file that is not a readable feature file (exit 1)."""
    return CliError(f"{path}: not a readable nnaudio feature file ({' '.join(str(exc).split())})")


def open_checked(path: Path) -> FeatureFile:
    """:func:`open_features` and :func:`validate_layout`, either failing as one line (exit 1)."""
    try:
        ff = open_features(path)
    except (OSError, ValueError, KeyError) as e:
        raise unreadable(path, e) from None
    try:
        validate_layout(ff.h5)
    except ValueError as e:
        ff.close()
        raise CliError(f"{path}: {e}") from None
    return ff


def describe(path: Path) -> dict[str, Any]:
    """A JSON-ready description of a feature file (attributes, counts, failures)."""
    with open_features(path) as ff:
        a = ff.attrs
        status = ff.index["status"]
        ok = status == "ok"
        freqs = ff.frequencies
        data = ff.data
        return {
            "path": str(path),
            "size_bytes": Path(path).stat().st_size,
            "layout_version": a.get("layout_version"),
            "transform": a.get("transform"),
            "config": json.loads(a.get("config_json", "{}")),
            "config_hash": a.get("config_hash"),
            "sr": a.get("sr"),
            "hop_length": a.get("hop_length"),
            "n_bins": a.get("n_bins"),
            "frequency_range_hz": [float(freqs.min()), float(freqs.max())] if freqs.size else [],
            "dtype": a.get("dtype"),
            "value_layout": a.get("value_layout"),
            "keep_channels": bool(a.get("keep_channels")),
            "data_shape": list(data.shape),
            "chunks": list(data.chunks) if data.chunks else None,
            "compression": a.get("compression"),
            "resampler": a.get("resampler"),
            "inputs": int(status.size),
            "ok": int(ok.sum()),
            "failed": int((~ok).sum()),
            "frames": int(np.sum(ff.index["frames"][ok])) if ok.any() else 0,
            "audio_seconds": float(np.sum(ff.index["duration"][ok])) if ok.any() else 0.0,
            "failures": [{"key": k, "reason": r} for k, r in ff.failed.items()],
            "created": a.get("created"),
            "command_line": json.loads(a.get("command_line", "[]")),
            "versions": {
                k.removesuffix("_version"): a.get(k)
                for k in ("package_version", "torch_version", "numpy_version", "h5py_version",
                          "soxr_version", "soundfile_version")
            },
        }


def render(desc: dict[str, Any], show_all_failed: bool = False, console: Console | None = None
           ) -> None:
    """Print :func:`describe`'s output as a table."""
    con = console or Console()
    t = Table(title=desc["path"], show_header=False, box=None, pad_edge=False)
    t.add_column(style="bold")
    t.add_column()
    fr = desc["frequency_range_hz"]
    unit = "(coefficient index)" if desc["transform"] == "MFCC" else "Hz"
    rows = [
        ("transform", str(desc["transform"])),
        ("parameters", json.dumps(desc["config"].get("params", {}), sort_keys=True)),
        ("config hash", str(desc["config_hash"])),
        ("sample rate", f"{desc['sr']} Hz, hop {desc['hop_length']} samples"),
        ("bins", f"{desc['n_bins']} ({fr[0]:.2f} .. {fr[1]:.2f} {unit})" if fr else "0"),
        ("values", f"{desc['dtype']}, {desc['value_layout']}"),
        ("data", f"{desc['data_shape']}, chunks {desc['chunks']}, {desc['compression']}"),
        ("inputs", f"{desc['inputs']} ({desc['ok']} ok, {desc['failed']} failed)"),
        ("audio", f"{desc['audio_seconds'] / 3600:.3f} h, {desc['frames']} frames"),
        ("resampler", str(desc["resampler"])),
        ("file size", f"{desc['size_bytes'] / 1e6:.2f} MB"),
        ("created", str(desc["created"])),
        ("command", " ".join(desc["command_line"])),
        ("versions", ", ".join(f"{k} {v}" for k, v in desc["versions"].items())),
        ("layout", f"version {desc['layout_version']}"),
    ]
    for k, v in rows:
        t.add_row(k, v)
    con.print(t)
    failures = desc["failures"]
    if failures:
        shown = failures if show_all_failed else failures[:20]
        con.print(f"[bold]failed inputs[/bold] ({len(failures)}):")
        for f in shown:
            reason = " ".join(str(f["reason"]).split())
            con.print(f"  {shown_key(str(f['key']))}: {reason}", markup=False, soft_wrap=True)
        if len(shown) < len(failures):
            con.print(f"  ... {len(failures) - len(shown)} more (--failed lists all)")


def describe_key(path: Path, key: str) -> dict[str, Any]:
    """One input's index row, JSON-ready: ``key, status, reason, sr, samples, duration,
    channels, stored_channels, frames, size, mtime`` (and ``mtime_utc``), where its rows lie
    in ``/features/data`` (``offset``, ``rows``) and the ``shape`` ``ff[key]`` returns (None
    for a failed input). An unknown key is a usage :class:`CliError` with a did-you-mean."""
    from datetime import datetime, timezone

    with open_features(path) as ff:
        keys = list(ff.index["key"])
        if key not in keys:
            raise CliError(unknown_key(key, keys, str(path)), usage=True)
        stored = ff.info(key)
        order = ("key", "status", "reason", "sr", "samples", "duration", "channels",
                 "stored_channels", "frames", "size", "mtime")
        row = {c: stored[c] for c in order if c in stored}
        row.update({c: v for c, v in stored.items() if c not in row})
        i = keys.index(key)
        start, stop = int(ff.offsets[i]), int(ff.offsets[i + 1])
        shape = list(ff.data.shape[1:])
        if ff.keep_channels:
            shape = [int(row["stored_channels"]), *shape]
        mtime = row.get("mtime")
        return {
            "path": str(path),
            **row,
            "mtime_utc": (datetime.fromtimestamp(mtime, timezone.utc).isoformat(timespec="seconds")
                          if isinstance(mtime, float) and np.isfinite(mtime) else None),
            "offset": start,
            "rows": stop - start,
            "shape": [int(row["frames"]), *shape] if row["status"] == "ok" else None,
        }


def render_key(row: dict[str, Any], console: Console | None = None) -> None:
    """Print :func:`describe_key`'s output as a two-column table."""
    con = console or Console()
    t = Table(title=Text(f"{row['path']}: {shown_key(str(row['key']))}"), show_header=False,
              box=None, pad_edge=False)
    t.add_column(style="bold")
    t.add_column()
    reason = " ".join(str(row.get("reason") or "").split())
    lines = [
        ("status", row["status"] + (f" ({reason})" if reason else "")),
        ("sample rate", f"{row['sr']:g} Hz"),
        ("samples", f"{row['samples']} per channel"),
        ("duration", f"{row['duration']:.3f} s"),
        ("channels", f"{row['channels']} ({row.get('stored_channels', 1)} stored)"),
        ("frames", str(row["frames"])),
        ("features", f"rows {row['offset']}..{row['offset'] + row['rows']} of /features/data, "
                     f"shape {tuple(row['shape']) if row['shape'] else '-'}"),
        ("source", f"{row['size']} bytes, modified {row['mtime_utc'] or row['mtime']}"),
    ]
    for k, v in lines:
        t.add_row(k, Text(v))  # Text: a reason or key holding [brackets] is not markup
    con.print(t)
