"""``nnaudio merge``: shard files (``OUT.shard-I-of-N.h5``) presented as one feature file.

Shards are contiguous runs of the sorted inputs (:mod:`nnaudio_cli.extract.shard`), so the
merged file is their concatenation in shard order: the same keys, index rows, offsets and
features as a single-process run. Shards are ``layout_version`` 2 files holding one or
several features (``/features/<name>/...``); every feature is merged.

* **Virtual (default).** ``OUT.h5`` is a small HDF5 master: each ``/features/<name>/data``
  is a virtual dataset (HDF5 VDS) mapping each shard's rows of that feature, in the stored
  dtype (float16 stays float16, bfloat16 stays ``uint16`` bit patterns), by a path
  relative to ``OUT.h5``; each feature's ``offsets`` are rebased onto it, its
  ``frequencies`` and group attributes are shard 0's, and ``/index`` is the concatenated
  index (failed rows included). :func:`~nnaudio_cli.featurefile.reader.open_features` and plain h5py
  read it like any feature file; the shard files must stay next to it (rows of a missing
  shard read as NaN, and ``open_features`` refuses the file, naming the shard). It needs
  almost no disk. Its ``digest`` is empty; ``shard_digests`` keeps each shard's checksum.
  Each feature's ``stats`` are the shards' statistics combined in shard order
  (:meth:`~nnaudio_cli.featurefile.stats.BinStats.combine`, Chan's exact merge); if a shard has none
  for a feature, the merged file has none for it either (and a note says so).
* **Copy** (``--copy``). One self-contained file written like ``extract``'s output (same
  compression, its own ``digest``); it needs as much disk again as the shards. The stored
  rows are copied as they are and the statistics are recomputed from them while writing,
  so they are those of a single-process run over the same rows, bit for bit.

Either way the output is written to ``OUT.h5.partial``, fsynced and renamed into place.

Checks before anything is written (one line, exit 1): every shard passes
:func:`~nnaudio_cli.featurefile.validate.validate_layout` (a damaged or crafted file is a
:class:`~nnaudio_cli.featurefile.validate.FeatureFileError` naming it), is no merged master itself,
is
``layout_version`` 2 (version 1 shards must be extracted again) and holds the same features
in the same order with the same settings (per feature: ``config_hash``, stored ``dtype``,
``scale`` and ``db_*``, row shape; then the run's ``config_hash`` and ``resume_hash``), the
same plan (inputs and shard count: ``shard_plan``), no shard is given twice or missing
(reported by number), no key is in two shards and the keys add up to the number of inputs.
Then each shard's checksum is verified (:func:`~nnaudio_cli.featurefile.checksum.verify_file`,
every row
read once); ``--copy`` instead recomputes it from the rows it copies and aborts before
committing, so damaged rows never get a fresh valid checksum.

A virtual master records each shard's checksum (``shard_digests``); every reader checks on
open that each shard still has it and the rows mapped (``validate_layout``), and
``nnaudio info --verify`` recomputes them.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from nnaudio_cli.errors import CliError
from nnaudio_cli.extract.shard import shard_path
from nnaudio_cli.featurefile.checksum import ArrayDigest, check_digest, file_checksum, verify_file
from nnaudio_cli.featurefile.encoding import Storage
from nnaudio_cli.featurefile.layout import (
    INDEX_COLUMNS,
    LAYOUT_VERSION,
    STR,
    attr_value,
    feature_group,
    feature_names,
)
from nnaudio_cli.featurefile.stats import BinStats
from nnaudio_cli.featurefile.validate import validate_layout
from nnaudio_cli.featurefile.writer import FeatureSpec, FeatureWriter
from nnaudio_cli.plumbing.outputs import OutputError, fsync_path, partial_path
from nnaudio_cli.plumbing.text import shown_key

#: Root attributes that describe one shard, not the merged file.
SHARD_ATTRS = ("shard_index", "shard_count", "shard_plan", "n_inputs_total", "digest")
#: Bytes of feature rows copied per read (``--copy``).
COPY_BYTES = 16 * 1024 * 1024
#: The quiet NaN of bfloat16 as stored (``uint16`` bits): what a missing shard's rows read as.
BFLOAT16_NAN = 0x7FC0


class MergeError(CliError):
    """The shards cannot be merged (exit code 1); one line."""


@dataclass
class _Feature:
    """One feature of one shard: where its rows are and what they are."""

    name: str
    attrs: dict[str, Any]  # the feature group's attributes
    offsets: np.ndarray
    rows: int  # rows in its data (the offsets end at or before it)
    row_shape: tuple[int, ...]
    dtype: np.dtype  # as stored
    stats: BinStats | None

    @property
    def used(self) -> int:
        """Rows the offsets cover."""
        return int(self.offsets[-1])


@dataclass
class _Shard:
    path: Path
    attrs: dict[str, Any]
    index: dict[str, np.ndarray]
    features: list[_Feature]

    @property
    def number(self) -> int | None:
        v = self.attrs.get("shard_index")
        return None if v is None else int(v)


@dataclass
class MergeSummary:
    """What :func:`merge` wrote. ``rows``: stored rows of every feature together."""

    output: str
    shards: int = 0
    inputs: int = 0
    ok: int = 0
    failed: int = 0
    rows: int = 0
    virtual: bool = True
    features: list[str] = field(default_factory=list)
    failures: list[dict[str, str]] = field(default_factory=list)


def missing_shards(output: Path, count: int) -> list[int]:
    """Shard numbers ``I`` for which ``OUT.shard-I-of-N.h5`` does not exist (yet)."""
    return [i for i in range(count) if not shard_path(output, i, count).is_file()]


def missing_message(output: Path, missing: list[int], count: int) -> str:
    """``missing shards 2, 5 of 8 (OUT.shard-2-of-8.h5, ...)``."""
    names = ", ".join(shard_path(output, i, count).name for i in missing[:3])
    more = ", ..." if len(missing) > 3 else ""
    return (f"missing shards {', '.join(str(i) for i in missing)} of {count} "
            f"({names}{more})")


def wait_for_shards(output: Path, count: int, timeout: float, poll: float = 0.5,
                    note: Callable[[str], Any] = lambda m: None) -> list[int]:
    """Wait until every shard file of ``output`` exists or ``timeout`` seconds pass.

    Returns the shard numbers still missing (empty: all there). A shard file appears only
    when its run has finished (it is renamed into place), so "exists" means "complete".
    """
    deadline = time.monotonic() + max(0.0, timeout)
    said = False
    while True:
        missing = missing_shards(output, count)
        if not missing or time.monotonic() >= deadline:
            return missing
        if not said:
            note(f"waiting up to {timeout:g} s for {missing_message(output, missing, count)}")
            said = True
        time.sleep(min(poll, max(0.01, deadline - time.monotonic())))


def _read(path: Path) -> _Shard:
    """A shard's attributes, index and features after :func:`validate_layout` (a damaged
    or crafted shard, or a merged master, is a one-line error naming it)."""
    try:
        with h5py.File(path, "r") as h5:
            version = int(h5.attrs.get("layout_version", -1))
            if version == 1:
                raise MergeError(f"{path}: layout_version 1 shards: re-extract them (this "
                                 f"merges layout_version {LAYOUT_VERSION})")
            if version != LAYOUT_VERSION:
                raise MergeError(f"{path}: not an nnaudio feature file (layout_version "
                                 f"{version}, this merges {LAYOUT_VERSION})")
            index = validate_layout(h5, path)
            if any(feature_group(h5, n)["data"].is_virtual for n in feature_names(h5)):
                raise MergeError(f"{shown_key(str(path))}: its data are virtual (it is itself "
                                 "a merged file); merge the shard files it reads")
            features = []
            for name in feature_names(h5):
                g = feature_group(h5, name)
                data = g["data"]
                features.append(_Feature(
                    name, {k: attr_value(v) for k, v in g.attrs.items()},
                    np.asarray(g["offsets"][()], np.int64), int(data.shape[0]),
                    tuple(int(n) for n in data.shape[1:]), data.dtype, BinStats.read(g)))
            shard = _Shard(Path(path), {k: attr_value(v) for k, v in h5.attrs.items()}, index,
                           features)
    except CliError:  # MergeError, or FeatureFileError naming the file and the defect
        raise
    except (OSError, KeyError, ValueError, RuntimeError) as e:
        raise MergeError(f"cannot read {shown_key(str(path))}: {' '.join(str(e).split())}"
                         ) from None
    return shard


def _differ(s: _Shard, first: _Shard, what: str, a: Any, b: Any) -> MergeError:
    return MergeError(
        f"{s.path.name} and {first.path.name} differ in {what} ({str(b)[:24]} vs "
        f"{str(a)[:24]}); extract every shard with the same settings and inputs")


def _same(shards: list[_Shard], name: str, what: str) -> None:
    first = shards[0]
    for s in shards[1:]:
        a, b = first.attrs.get(name), s.attrs.get(name)
        if a != b:
            raise _differ(s, first, what, f"{name} {str(a)[:12]}", f"{name} {str(b)[:12]}")


def _same_features(shards: list[_Shard]) -> None:
    """Same feature names in the same order; per feature the same settings, stored dtype,
    scale and row shape (the first difference, naming the feature)."""
    first = shards[0]
    names = [f.name for f in first.features]
    for s in shards[1:]:
        theirs = [f.name for f in s.features]
        if theirs != names:
            raise _differ(s, first, "features", ",".join(names), ",".join(theirs))
        for fa, fb in zip(first.features, s.features, strict=True):
            keys = ["config_hash", "dtype", "scale"]
            keys += sorted(k for k in {*fa.attrs, *fb.attrs} if k.startswith("db_"))
            for k in keys:
                a, b = fa.attrs.get(k), fb.attrs.get(k)
                if a != b:
                    raise _differ(s, first, f"settings of feature {fa.name}",
                                  f"{k} {str(a)[:12]}", f"{k} {str(b)[:12]}")
            if fa.row_shape != fb.row_shape or fa.dtype != fb.dtype:
                raise MergeError(
                    f"{s.path.name} stores rows of feature {fa.name} as {fb.dtype} "
                    f"{fb.row_shape}, {first.path.name} as {fa.dtype} {fa.row_shape}")


def check(shards: list[_Shard]) -> list[_Shard]:
    """The shards in merge order, after every check (see the module docstring)."""
    _same_features(shards)
    _same(shards, "config_hash", "settings")
    _same(shards, "resume_hash", "settings")
    numbered = [s.number is not None for s in shards]
    if any(numbered) and not all(numbered):
        plain = shards[numbered.index(False)]
        raise MergeError(f"{plain.path.name} is not a shard file; merge shards of one run")
    if all(numbered):
        _same(shards, "shard_plan", "inputs or shard count")
        count = int(shards[0].attrs["shard_count"])
        seen: dict[int, Path] = {}
        for s in shards:
            n = int(s.number)  # type: ignore[arg-type]
            if n in seen:
                raise MergeError(f"shard {n} given twice ({seen[n].name}, {s.path.name})")
            seen[n] = s.path
        missing = [i for i in range(count) if i not in seen]
        if missing:
            raise MergeError(f"missing shards {', '.join(map(str, missing))} of {count}")
        shards = sorted(shards, key=lambda s: int(s.number))  # type: ignore[arg-type]
    else:
        shards = sorted(shards, key=lambda s: (len(s.index["key"]) == 0,
                                               str(s.index["key"][0]) if len(s.index["key"])
                                               else ""))
    where: dict[str, Path] = {}
    for s in shards:
        for k in s.index["key"]:
            k = str(k)
            if k in where:
                raise MergeError(f"key {shown_key(k)} is in both {where[k].name} and "
                                 f"{s.path.name}")
            where[k] = s.path
    keys = [str(k) for s in shards for k in s.index["key"]]
    if keys != sorted(keys):  # shards of one plan are contiguous runs of the sorted keys
        raise MergeError("the shards' keys interleave; merge shards of one run")
    total = shards[0].attrs.get("n_inputs_total")
    if total is not None and int(total) != len(keys):
        raise MergeError(f"the shards hold {len(keys)} inputs, their run had {int(total)}")
    return shards


def _attrs(shards: list[_Shard], virtual: bool, output: Path) -> dict[str, Any]:
    attrs = {k: v for k, v in shards[0].attrs.items() if k not in SHARD_ATTRS}
    status = np.concatenate([s.index["status"] for s in shards]) if shards else []
    n_ok = int(sum(1 for x in status if x == "ok"))
    attrs.update(
        n_inputs=len(status), n_ok=n_ok, n_failed=len(status) - n_ok,
        created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        merged="virtual" if virtual else "copy",
        merged_from=json.dumps([os.path.relpath(s.path, output.parent) for s in shards]),
        shard_digests=json.dumps([str(s.attrs.get("digest", "")) for s in shards]),
    )
    return attrs


def _columns(shards: list[_Shard]) -> dict[str, np.ndarray]:
    out = {}
    for col, dtype in INDEX_COLUMNS.items():
        parts = [s.index[col] for s in shards if col in s.index]
        if len(parts) == len(shards):
            out[col] = np.concatenate(parts).astype(object if dtype is STR else dtype)
    return out


def _offsets(parts: list[_Feature]) -> np.ndarray:
    """One feature's offsets over the shards' rows laid end to end."""
    pieces, base = [], 0
    for f in parts:
        pieces.append(f.offsets[:-1] + base)
        base += f.used
    pieces.append(np.array([base], np.int64))
    return np.concatenate(pieces).astype(np.int64)


def _fill(dtype: np.dtype) -> Any:
    """What rows of a missing shard read as: NaN (bfloat16: its quiet NaN bit pattern)."""
    return np.nan if dtype.kind == "f" else np.array(BFLOAT16_NAN, dtype)


def _stats(parts: list[_Feature], shards: list[_Shard],
           note: Callable[[str], Any]) -> BinStats | None:
    """The shards' statistics of one feature combined in shard order (None if one lacks)."""
    lacking = [s.path.name for f, s in zip(parts, shards, strict=True) if f.stats is None]
    if lacking:
        note(f"{lacking[0]} has no statistics of feature {parts[0].name}; the merged file "
             "has none for it")
        return None
    return BinStats.combine(f.stats for f in parts if f.stats is not None)


def _write_virtual(shards: list[_Shard], output: Path, attrs: dict[str, Any],
                   frequencies: dict[str, np.ndarray], note: Callable[[str], Any]) -> None:
    tmp = partial_path(output)
    with h5py.File(tmp, "w") as h5:
        for i, first in enumerate(shards[0].features):
            parts = [s.features[i] for s in shards]
            layout = h5py.VirtualLayout(shape=(sum(f.used for f in parts),) + first.row_shape,
                                        dtype=first.dtype)
            base = 0
            for s, f in zip(shards, parts, strict=True):
                if f.used:
                    rel = os.path.relpath(s.path, output.parent)
                    src = h5py.VirtualSource(rel, f"features/{f.name}/data",
                                             shape=(f.rows,) + f.row_shape, dtype=f.dtype)
                    layout[base : base + f.used] = src[: f.used]
                    base += f.used
            g = h5.create_group(f"features/{first.name}")
            g.create_virtual_dataset("data", layout, fillvalue=_fill(first.dtype))
            g.create_dataset("offsets", data=_offsets(parts))
            g.create_dataset("frequencies",
                             data=np.asarray(frequencies[first.name], np.float64))
            for k, v in first.attrs.items():
                g.attrs[k] = v
            stats = _stats(parts, shards, note)
            if stats is not None:
                stats.write(g)
        grp = h5.create_group("index")
        for col, arr in _columns(shards).items():
            grp.create_dataset(col, data=arr, dtype=INDEX_COLUMNS[col])
        h5.attrs["digest"] = ""
        for k, v in attrs.items():
            h5.attrs[k] = v
    fsync_path(tmp)
    os.replace(tmp, output)
    fsync_path(output.parent, directory=True)


def _spec(f: _Feature, frequencies: np.ndarray) -> FeatureSpec:
    storage = Storage.from_attrs(f.attrs)
    own = set(storage.attrs()) | {"frequencies"}  # written by the writer itself
    return FeatureSpec(f.name, f.row_shape, frequencies, storage,
                       {k: v for k, v in f.attrs.items() if k not in own})


def _write_copy(shards: list[_Shard], output: Path, attrs: dict[str, Any],
                frequencies: dict[str, np.ndarray], note: Callable[[str], Any]) -> None:
    specs = [_spec(f, frequencies[f.name]) for f in shards[0].features]
    # statistics recomputed from the copied rows (the same rows as one run: the same bits)
    writer = FeatureWriter(output, specs, str(attrs.get("compression", "lzf")), stats=True)
    try:
        for s in shards:
            # the shard's checksum is recomputed from the very rows copied (one read): a
            # damaged shard aborts the merge before its rows get a fresh, valid checksum
            parts = []
            with h5py.File(s.path, "r") as h5:
                for f in s.features:
                    data = feature_group(h5, f.name)["data"]
                    block = max(1, COPY_BYTES // (int(np.prod(f.row_shape)) *
                                                  f.dtype.itemsize))
                    digest = ArrayDigest()
                    for a in range(0, f.rows, block):
                        try:
                            rows = data[a : a + block]
                        except OSError as e:  # a damaged chunk: the shard, not OUTPUT
                            raise MergeError(f"cannot read {shown_key(str(s.path))}: "
                                             f"{' '.join(str(e).split())}") from None
                        digest.data(rows)
                        if a < f.used:
                            writer.append_stored(f.name, rows[: f.used - a])
                    parts.append((f.name, digest, f.offsets))
            check_digest(shown_key(str(s.path)), str(s.attrs.get("digest", "")),
                         file_checksum(parts, s.index))
            n_rows = {f.name: np.diff(f.offsets) for f in s.features}
            for i in range(len(s.index["key"])):
                writer.add_row({n: int(r[i]) for n, r in n_rows.items()},
                               **{c: s.index[c][i] for c in INDEX_COLUMNS if c in s.index})
        writer.commit(attrs)
    except BaseException:
        writer.abort()
        raise


def merge(shards: list[Path], output: Path, copy: bool = False,
          note: Callable[[str], Any] = lambda m: None) -> MergeSummary:
    """Merge shard files into ``output`` (virtual master, or one file with ``copy``).

    ``note`` receives one-line notes (a feature whose statistics a shard lacks).

    Raises
    ------
    MergeError
        A check failed or a shard cannot be read (nothing is written).
    OutputError
        ``output`` could not be written.
    """
    if not shards:
        raise MergeError("no shard files given")
    read = check([_read(Path(p)) for p in shards])
    if not copy:  # every shard's checksum, before the master points at it (--copy: while
        for s in read:  # copying, from the rows it copies)
            verify_file(s.path)
    with h5py.File(read[0].path, "r") as h5:
        frequencies = {f.name: feature_group(h5, f.name)["frequencies"][()]
                       for f in read[0].features}
    attrs = _attrs(read, not copy, output)
    try:
        (_write_copy if copy else _write_virtual)(read, output, attrs, frequencies, note)
    except OSError as e:
        try:
            partial_path(output).unlink()
        except OSError:
            pass
        raise OutputError(output, e) from None
    summary = MergeSummary(str(output), len(read), virtual=not copy,
                           features=[f.name for f in read[0].features])
    for s in read:
        for k, st, r in zip(s.index["key"], s.index["status"], s.index["reason"], strict=True):
            summary.inputs += 1
            if st == "ok":
                summary.ok += 1
            else:
                summary.failed += 1
                summary.failures.append({"key": str(k), "reason": str(r)})
        summary.rows += sum(f.used for f in s.features)
    return summary


def wait_and_merge(output: Path, count: int, timeout: float, overwrite: bool = False,
                   note: Callable[[str], Any] = lambda m: None) -> MergeSummary:
    """Rank 0 under torchrun: wait (at most ``timeout`` s) for all ``count`` shard files of
    ``output``, then write the virtual master ``output``.

    Raises
    ------
    MergeError
        Shards still missing after ``timeout`` (or when interrupted while waiting): one
        line naming them; their work folders stay resumable.
    """
    try:
        missing = wait_for_shards(output, count, timeout, note=note)
    except KeyboardInterrupt:
        missing = missing_shards(output, count)
        if not missing:
            raise
        missing_why = "interrupted while waiting"
    else:
        missing_why = f"after waiting {timeout:g} s"
    if missing:
        raise MergeError(
            f"{missing_message(output, missing, count)} {missing_why}; {output} not merged. "
            f"Rerun those ranks with --resume (their work is kept), then "
            f"`nnaudio merge --expect {count} {output}`")
    if output.exists() and not overwrite:
        raise MergeError(f"{output} exists; merge with `nnaudio merge --expect {count} "
                         f"{output} --overwrite`")
    return merge([shard_path(output, i, count) for i in range(count)], output, note=note)
