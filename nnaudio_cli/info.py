"""``nnaudio info``: what a feature file contains and how it was made."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import h5py
import numpy as np
from rich.console import Console
from rich.table import Table
from rich.text import Text

from nnaudio_cli.errors import CliError
from nnaudio_cli.featurefile.layout import feature_names
from nnaudio_cli.featurefile.reader import FeatureFile, open_features
from nnaudio_cli.featurefile.stats import BinStats
from nnaudio_cli.featurefile.validate import validate_layout
from nnaudio_cli.plumbing.text import (  # shown_key also importable from here
    shown_key,
    skipped_text,
    unknown_key,
)


def unreadable(path: Path, exc: BaseException) -> CliError:
    """The one-line error for a file that is not a readable feature file (exit 1); a
    :class:`CliError` already (a damaged file: it names the file and the defect) as it is."""
    if isinstance(exc, CliError):
        return exc
    return CliError(f"{path}: not a readable nnaudio feature file ({' '.join(str(exc).split())})")


def file_features(path: Path) -> list[str]:
    """The feature names of ``path`` in stored order, after :func:`validate_layout`; an
    unreadable or damaged file is one line (exit 1)."""
    try:
        with h5py.File(path, "r") as h5:
            validate_layout(h5, path)
            return feature_names(h5)
    except (OSError, ValueError, KeyError) as e:
        raise unreadable(path, e) from None


def chosen_features(path: Path, feature: str | None, need_one: bool = False) -> list[str]:
    """The features a command shows: ``[feature]``, or every feature of ``path`` when
    ``feature`` is None (with ``need_one``: only when there is exactly one).

    Raises
    ------
    CliError
        Usage (exit 2), one line naming the choices: ``feature`` not in the file, or
        ``need_one`` and the file holds several.
    """
    names = file_features(path)
    choices = ", ".join(names)
    if feature is not None:
        if feature not in names:
            raise CliError(f"{shown_key(str(path))} has no feature {feature!r}; choose "
                           f"--feature from: {choices}", usage=True)
        return [feature]
    if need_one and len(names) != 1:
        raise CliError(f"{shown_key(str(path))} holds {len(names)} features; choose one with "
                       f"--feature NAME: {choices}", usage=True)
    return names


def check_file(path: Path, feature: str | None = None) -> list[str]:
    """The features to show (:func:`chosen_features`) of a file whose layout is sound
    (:func:`validate_layout`); each problem is one line (exit 1, or 2 for an unknown
    ``feature``)."""
    return chosen_features(path, feature)


def open_checked(path: Path, feature: str | None = None) -> FeatureFile:
    """:func:`open_features` of one feature (``feature`` may be omitted when the file holds
    one: else a usage error naming the choices) and :func:`validate_layout` of every feature,
    each failing as one line (unreadable or damaged: exit 1)."""
    name = chosen_features(path, feature, need_one=True)[0]
    try:
        return open_features(path, name)  # validates the layout
    except (OSError, ValueError, KeyError) as e:
        raise unreadable(path, e) from None


def _plain(v: Any) -> Any:
    """An HDF5 attribute as a plain Python value (bytes decoded, numpy scalars unboxed)."""
    if isinstance(v, bytes):
        return v.decode("utf-8")
    return v.item() if isinstance(v, np.generic) else v


def _finite(a: np.ndarray) -> Any:
    """A float array as nested lists with NaN/inf as None (strict JSON)."""
    return _nan_to_none(np.asarray(a, dtype=np.float64).tolist())


def _nan_to_none(v: Any) -> Any:
    if isinstance(v, list):
        return [_nan_to_none(x) for x in v]
    return v if np.isfinite(v) else None


def stats_dict(stats: BinStats | None) -> dict[str, Any] | None:
    """Per-bin ``count``, ``mean``, ``std`` and ``var`` (ddof 0, float64) as lists in the
    row shape (``(n_bins,)`` or ``(n_bins, 2)``), NaN as None; None without statistics."""
    if stats is None:
        return None
    return {"rows": int(stats.count.max()) if stats.count.size else 0,
            "count": stats.count.tolist(), "mean": _finite(stats.mean),
            "std": _finite(stats.std), "var": _finite(stats.var)}


def describe_feature(ff: FeatureFile, stats: bool = False) -> dict[str, Any]:
    """A JSON-ready description of the feature ``ff`` holds: name, transform, parameters,
    rate, hop, bins and their range, shape per row, stored dtype, scale (``db``: kind, ref,
    amin, top_db), data shape and chunks, rows and frames of the ok inputs; with ``stats``
    its per-bin statistics (:func:`stats_dict`)."""
    a = ff.attrs
    ok = ff.index["status"] == "ok"
    freqs = ff.frequencies
    data = ff.data
    db = ff.storage.db
    out: dict[str, Any] = {
        "name": ff.feature,
        "transform": a.get("transform"),
        "config": json.loads(a.get("config_json", "{}")),
        "config_hash": a.get("config_hash"),
        "sr": a.get("sr"),
        "hop_length": a.get("hop_length"),
        "n_bins": a.get("n_bins"),
        "frequency_range_hz": [float(freqs.min()), float(freqs.max())] if freqs.size else [],
        "row_shape": list(data.shape[1:]),
        "dtype": ff.storage.dtype,
        "scale": "linear" if db is None else "db",
        "db": None if db is None else {"kind": db.kind, "ref": db.ref, "amin": db.amin,
                                       "top_db": db.top_db},
        "value_layout": a.get("value_layout"),
        "data_shape": list(data.shape),
        "chunks": list(data.chunks) if data.chunks else None,
        "rows": int(ff.offsets[-1]) if ff.offsets.size else 0,
        "frames": int(np.sum(ff.index["frames"][ok])) if ok.any() else 0,
    }
    if stats:
        out["stats"] = stats_dict(ff.stats)
    return out


def describe(path: Path, feature: str | None = None, stats: bool = False) -> dict[str, Any]:
    """A JSON-ready description of a feature file: the file (layout, rate, counts of the
    shared index, failures, provenance) and ``features``, one :func:`describe_feature` per
    feature (only ``feature`` when given). When one feature is shown its fields are also at
    the top level, as before files held several (``.transform``, ``.config``, ...)."""
    names = chosen_features(path, feature)
    feats = []
    for name in names:
        with open_features(path, name) as ff:
            feats.append(describe_feature(ff, stats))
            a = {k: _plain(v) for k, v in ff.h5.attrs.items()}
            status = ff.index["status"]
            ok = status == "ok"
            seconds = float(np.sum(ff.index["duration"][ok])) if ok.any() else 0.0
            failures = [{"key": k, "reason": r} for k, r in ff.failed.items()]
    desc: dict[str, Any] = {
        "path": str(path),
        "size_bytes": Path(path).stat().st_size,
        "layout_version": a.get("layout_version"),
        "sr": a.get("sr"),
        "keep_channels": bool(a.get("keep_channels")),
        "compression": a.get("compression"),
        "resampler": a.get("resampler"),
        "inputs": int(status.size),
        "ok": int(ok.sum()),
        "failed": int((~ok).sum()),
        "audio_seconds": seconds,
        "failures": failures,
        "created": a.get("created"),
        "command_line": json.loads(a.get("command_line", "[]")),
        "versions": {
            k.removesuffix("_version"): a.get(k)
            for k in ("package_version", "torch_version", "numpy_version", "h5py_version",
                      "soxr_version", "soundfile_version")
        },
        "feature_names": names,
        "features": feats,
        # entries of the input folder not taken (per extension), and a --files list
        "skipped": json.loads(a.get("skipped_json", "{}")),
        "input_list": None if "input_list" not in a else {
            "name": a.get("input_list"), "sha256": a.get("input_list_sha256")},
    }
    if len(feats) == 1:
        desc.update({k: v for k, v in feats[0].items() if k not in desc})
    return desc


def _g(v: float) -> str:
    return "-" if v is None or not np.isfinite(v) else f"{v:.5g}"


def stats_lines(feat: dict[str, Any], edge: int = 3) -> list[Text | Table]:
    """The statistics of :func:`describe_feature` (``stats=True``), compactly: one summary
    line (rows, range of the per-bin means and stds) and a table of the first and last
    ``edge`` bins (count, mean, std); one line when the feature has none stored."""
    st = feat.get("stats")
    if st is None:
        return [Text(f"{feat['name']} statistics: none stored (a file written before "
                     "statistics were kept, or a part file)")]
    mean = np.asarray(st["mean"], dtype=np.float64).reshape(feat["row_shape"][0], -1)
    std = np.asarray(st["std"], dtype=np.float64).reshape(mean.shape)
    count = np.asarray(st["count"], dtype=np.int64).reshape(mean.shape)
    if not np.isfinite(mean).any():
        return [Text(f"{feat['name']} statistics: no rows")]
    head = Text(f"{feat['name']} statistics: {st['rows']} rows per bin; per-bin mean "
                f"{_g(np.nanmin(mean))} .. {_g(np.nanmax(mean))}, std {_g(np.nanmin(std))} "
                f".. {_g(np.nanmax(std))}")
    parts = [" re", " im"] if mean.shape[1] == 2 else [""]
    t = Table(box=None, pad_edge=False)
    for col in ("bin", "count", "mean", "std"):
        t.add_column(col, justify="right")
    n = mean.shape[0]
    shown = list(range(n)) if n <= 2 * edge else [*range(edge), -1, *range(n - edge, n)]
    for b in shown:
        if b < 0:
            t.add_row("...", "", "", "")
            continue
        for j, part in enumerate(parts):
            t.add_row(f"{b}{part}", str(count[b, j]), _g(mean[b, j]), _g(std[b, j]))
    return [head, t]


def render(desc: dict[str, Any], show_all_failed: bool = False, console: Console | None = None
           ) -> None:
    """Print :func:`describe`'s output: the file, then one table per feature (with its
    statistics when they were asked for)."""
    con = console or Console()
    t = Table(title=desc["path"], show_header=False, box=None, pad_edge=False)
    t.add_column(style="bold")
    t.add_column()
    secs = desc["audio_seconds"]
    frames = ", ".join(f"{f['name']} {f['frames']}" for f in desc["features"])
    rows = [
        ("features", ", ".join(desc["feature_names"])),
        ("inputs", f"{desc['inputs']} ({desc['ok']} ok, {desc['failed']} failed)"),
        ("audio", f"{secs / 3600:.3f} h; frames: {frames}"),
        ("sample rate", ", ".join(dict.fromkeys(f"{f['sr']} Hz" for f in desc["features"]))
         or f"{desc['sr']} Hz"),
        ("channels", "kept (one row per channel)" if desc["keep_channels"] else "mixed to mono"),
        ("resampler", str(desc["resampler"])),
        ("compression", str(desc["compression"])),
        ("file size", f"{desc['size_bytes'] / 1e6:.2f} MB"),
        ("created", str(desc["created"])),
        ("command", " ".join(desc["command_line"])),
        ("versions", ", ".join(f"{k} {v}" for k, v in desc["versions"].items())),
        ("layout", f"version {desc['layout_version']}"),
    ]
    if desc.get("input_list"):
        lst = desc["input_list"]
        rows.insert(2, ("input list", f"{lst['name']} (sha256 {lst['sha256']})"))
    if desc.get("skipped"):
        rows.insert(2, ("skipped", skipped_text(desc["skipped"]) + " of the input folder"))
    for k, v in rows:
        t.add_row(k, Text(v))
    con.print(t)
    for feat in desc["features"]:
        con.print()
        con.print(_feature_table(feat))
        if "stats" in feat:
            for part in stats_lines(feat):
                con.print(part, soft_wrap=isinstance(part, Text))  # a line stays one line
    failures = desc["failures"]
    if failures:
        shown = failures if show_all_failed else failures[:20]
        con.print(f"[bold]failed inputs[/bold] ({len(failures)}):")
        for f in shown:
            reason = " ".join(str(f["reason"]).split())
            con.print(f"  {shown_key(str(f['key']))}: {reason}", markup=False, soft_wrap=True)
        if len(shown) < len(failures):
            con.print(f"  ... {len(failures) - len(shown)} more (--failed lists all)")


def _scale_text(feat: dict[str, Any]) -> str:
    db = feat["db"]
    if db is None:
        return "linear"
    top = "none" if db["top_db"] is None else f"{db['top_db']:g}"
    return (f"dB of {db['kind']} (ref {db['ref']:g}, amin {db['amin']:g}, top_db {top})")


def _feature_table(feat: dict[str, Any]) -> Table:
    t = Table(title=Text(f"feature {feat['name']}"), show_header=False, box=None,
              pad_edge=False, title_justify="left")
    t.add_column(style="bold")
    t.add_column()
    fr = feat["frequency_range_hz"]
    unit = "(coefficient index)" if feat["transform"] == "MFCC" else "Hz"
    rows = [
        ("transform", str(feat["transform"])),
        ("parameters", json.dumps(feat["config"].get("params", {}), sort_keys=True)),
        ("config hash", str(feat["config_hash"])),
        ("sample rate", f"{feat['sr']} Hz, hop {feat['hop_length']} samples"),
        ("bins", f"{feat['n_bins']} ({fr[0]:.2f} .. {fr[1]:.2f} {unit})" if fr else "0"),
        ("values", f"{feat['value_layout']}, row shape {tuple(feat['row_shape'])}, stored "
                   f"{feat['dtype']}, {_scale_text(feat)}"),
        ("data", f"{feat['data_shape']}, chunks {feat['chunks']}"),
        ("rows", f"{feat['rows']} ({feat['frames']} frames)"),
    ]
    for k, v in rows:
        t.add_row(k, Text(v))
    return t


def describe_key(path: Path, key: str, feature: str | None = None) -> dict[str, Any]:
    """One input's index row, JSON-ready: ``key, status, reason, sr, samples, duration,
    channels, stored_channels, size, mtime`` (and ``mtime_utc``), then ``features``: per
    feature (every one, or ``feature``) its ``name``, ``frames``, where its rows lie in
    ``/features/<name>/data`` (``offset``, ``rows``) and the ``shape`` ``ff[key]`` returns
    (None for a failed input). When one feature is shown its fields are also at the top level.
    An unknown key is a usage :class:`CliError` with a did-you-mean."""
    from datetime import datetime, timezone

    names = chosen_features(path, feature)
    feats = []
    row: dict[str, Any] = {}
    for name in names:
        with open_features(path, name) as ff:
            try:
                i = ff.row(key)
            except KeyError:
                raise CliError(unknown_key(key, list(ff.index["key"]), str(path)),
                               usage=True) from None
            stored = ff.info(key)
            order = ("key", "status", "reason", "sr", "samples", "duration", "channels",
                     "stored_channels", "size", "mtime")
            row = {c: stored[c] for c in order if c in stored}
            row.update({c: v for c, v in stored.items() if c not in row and c != "frames"})
            start, stop = int(ff.offsets[i]), int(ff.offsets[i + 1])
            shape = [int(stored["frames"]), *ff.data.shape[1:]]
            if ff.keep_channels:
                shape.insert(1, int(row["stored_channels"]))
            feats.append({"name": name, "frames": int(stored["frames"]),
                          "dataset": f"{ff.group.name}/data", "offset": start,
                          "rows": stop - start,
                          "shape": shape if row["status"] == "ok" else None})
    mtime = row.get("mtime")
    out = {
        "path": str(path),
        **row,
        "mtime_utc": (datetime.fromtimestamp(mtime, timezone.utc).isoformat(timespec="seconds")
                      if isinstance(mtime, float) and np.isfinite(mtime) else None),
        "features": feats,
    }
    if len(feats) == 1:
        out.update({k: v for k, v in feats[0].items() if k not in ("name", "dataset")})
    return out


def render_key(row: dict[str, Any], console: Console | None = None) -> None:
    """Print :func:`describe_key`'s output as a two-column table (one line per feature)."""
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
        ("source", f"{row['size']} bytes, modified {row['mtime_utc'] or row['mtime']}"),
    ]
    for f in row["features"]:
        shape = tuple(f["shape"]) if f["shape"] else "-"
        lines.append((f["name"], f"frames {f['frames']}, shape {shape}, rows "
                                 f"{f['offset']}..{f['offset'] + f['rows']} of {f['dataset']}"))
    for k, v in lines:
        t.add_row(Text(k), Text(v))  # Text: a reason or key holding [brackets] is not markup
    con.print(t)
