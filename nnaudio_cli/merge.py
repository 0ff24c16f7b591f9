"""``nnaudio merge``: shard files (``OUT.shard-I-of-N.h5``) presented as one feature file.

Shards are contiguous runs of the sorted inputs (:mod:`nnaudio_cli.extract.shard`), so the
merged file is their concatenation in shard order: the same keys, index rows, offsets and
features as a single-process run.

* **Virtual (default).** ``OUT.h5`` is a small HDF5 master: ``/features/data`` is a virtual
  dataset (HDF5 VDS) mapping each shard's rows, by a path relative to ``OUT.h5``;
  ``/features/offsets`` are rebased onto it and ``/index`` is the concatenated index (failed
  rows included). :func:`~nnaudio_cli.store.open_features` and plain h5py read it like any
  feature file; the shard files must stay next to it (rows of a missing shard read as NaN,
  and ``open_features`` refuses the file, naming the shard). It needs almost no disk.
  Its ``digest`` is empty; ``shard_digests`` keeps each shard's checksum.
* **Copy** (``--copy``). One self-contained file written like ``extract``'s output (same
  compression, its own ``digest``); it needs as much disk again as the shards.

Either way the output is written to ``OUT.h5.partial``, fsynced and renamed into place.

Checks before anything is written (one-line :class:`MergeError`, exit 1): every shard has
the same settings (``config_hash`` and ``resume_hash``), the same plan (inputs and shard
count: ``shard_plan``), no shard is given twice or missing (reported by number), no key is
in two shards and the keys add up to the number of inputs.
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
from nnaudio_cli.store import (
    INDEX_COLUMNS,
    LAYOUT_VERSION,
    STR,
    FeatureWriter,
    OutputError,
    _attr,
    fsync_path,
    partial_path,
    read_index,
    validate_layout,
)
from nnaudio_cli.text import shown_key

#: Root attributes that describe one shard, not the merged file.
SHARD_ATTRS = ("shard_index", "shard_count", "shard_plan", "n_inputs_total", "digest")
#: Bytes of feature rows copied per read (``--copy``).
COPY_BYTES = 16 * 1024 * 1024


class MergeError(CliError):
    """The shards cannot be merged (exit code 1); one line."""


@dataclass
class _Shard:
    path: Path
    attrs: dict[str, Any]
    index: dict[str, np.ndarray]
    offsets: np.ndarray
    rows: int
    row_shape: tuple[int, ...]

    @property
    def number(self) -> int | None:
        v = self.attrs.get("shard_index")
        return None if v is None else int(v)


@dataclass
class MergeSummary:
    """What :func:`merge` wrote."""

    output: str
    shards: int = 0
    inputs: int = 0
    ok: int = 0
    failed: int = 0
    rows: int = 0
    virtual: bool = True
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
    try:
        with h5py.File(path, "r") as h5:
            version = int(h5.attrs.get("layout_version", -1))
            if version != LAYOUT_VERSION:
                raise MergeError(f"{path}: not an nnaudio feature file (layout_version "
                                 f"{version}, this merges {LAYOUT_VERSION})")
            validate_layout(h5)
            data = h5["features/data"]
            return _Shard(Path(path), {k: _attr(v) for k, v in h5.attrs.items()},
                          read_index(h5), np.asarray(h5["features/offsets"][()], np.int64),
                          int(data.shape[0]), tuple(int(n) for n in data.shape[1:]))
    except MergeError:
        raise
    except (OSError, KeyError, ValueError) as e:
        raise MergeError(f"cannot read {path}: {' '.join(str(e).split())}") from None


def _same(shards: list[_Shard], name: str, what: str) -> None:
    first = shards[0]
    for s in shards[1:]:
        a, b = first.attrs.get(name), s.attrs.get(name)
        if a != b:
            raise MergeError(
                f"{s.path.name} and {first.path.name} differ in {what} ({name} "
                f"{str(b)[:12]} vs {str(a)[:12]}); extract every shard with the same settings "
                "and inputs")


def check(shards: list[_Shard]) -> list[_Shard]:
    """The shards in merge order, after every check (see the module docstring)."""
    _same(shards, "config_hash", "settings")
    _same(shards, "resume_hash", "settings")
    _same(shards, "transform", "settings")
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
        if s.row_shape != shards[0].row_shape:
            raise MergeError(f"{s.path.name} stores rows of shape {s.row_shape}, "
                             f"{shards[0].path.name} {shards[0].row_shape}")
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


def _offsets(shards: list[_Shard]) -> np.ndarray:
    pieces, base = [], 0
    for s in shards:
        pieces.append(s.offsets[:-1] + base)
        base += int(s.offsets[-1])
    pieces.append(np.array([base], np.int64))
    return np.concatenate(pieces).astype(np.int64)


def _write_virtual(shards: list[_Shard], output: Path, attrs: dict[str, Any],
                   frequencies: np.ndarray) -> None:
    tmp = partial_path(output)
    row_shape = shards[0].row_shape
    used = [int(s.offsets[-1]) for s in shards]
    layout = h5py.VirtualLayout(shape=(sum(used),) + row_shape, dtype=np.float32)
    base = 0
    for s, n in zip(shards, used, strict=True):
        if n:
            rel = os.path.relpath(s.path, output.parent)
            src = h5py.VirtualSource(rel, "features/data", shape=(s.rows,) + row_shape)
            layout[base : base + n] = src[:n]
            base += n
    with h5py.File(tmp, "w") as h5:
        h5.create_virtual_dataset("features/data", layout, fillvalue=np.nan)
        h5.create_dataset("features/offsets", data=_offsets(shards))
        h5.create_dataset("features/frequencies", data=np.asarray(frequencies, np.float64))
        grp = h5.create_group("index")
        for col, arr in _columns(shards).items():
            grp.create_dataset(col, data=arr, dtype=INDEX_COLUMNS[col])
        h5.attrs["digest"] = ""
        for k, v in attrs.items():
            h5.attrs[k] = v
    fsync_path(tmp)
    os.replace(tmp, output)
    fsync_path(output.parent, directory=True)


def _write_copy(shards: list[_Shard], output: Path, attrs: dict[str, Any],
                frequencies: np.ndarray) -> None:
    row_shape = shards[0].row_shape
    writer = FeatureWriter(output, row_shape, str(attrs.get("compression", "lzf")))
    block = max(1, COPY_BYTES // (int(np.prod(row_shape)) * 4))
    try:
        for s in shards:
            with h5py.File(s.path, "r") as h5:
                data = h5["features/data"]
                for a in range(0, int(s.offsets[-1]), block):
                    writer.append(data[a : min(int(s.offsets[-1]), a + block)])
            n_rows = np.diff(s.offsets)
            for i in range(len(s.index["key"])):
                writer.add_row(**{c: s.index[c][i] for c in INDEX_COLUMNS if c in s.index},
                               n_rows=int(n_rows[i]))
        writer.commit(attrs, frequencies)
    except BaseException:
        writer.abort()
        raise


def merge(shards: list[Path], output: Path, copy: bool = False) -> MergeSummary:
    """Merge shard files into ``output`` (virtual master, or one file with ``copy``).

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
    with h5py.File(read[0].path, "r") as h5:
        frequencies = h5["features/frequencies"][()]
    attrs = _attrs(read, not copy, output)
    try:
        (_write_copy if copy else _write_virtual)(read, output, attrs, frequencies)
    except OSError as e:
        try:
            partial_path(output).unlink()
        except OSError:
            pass
        raise OutputError(output, e) from None
    summary = MergeSummary(str(output), len(read), virtual=not copy)
    for s in read:
        for k, st, r in zip(s.index["key"], s.index["status"], s.index["reason"], strict=True):
            summary.inputs += 1
            if st == "ok":
                summary.ok += 1
            else:
                summary.failed += 1
                summary.failures.append({"key": str(k), "reason": str(r)})
        summary.rows += int(s.offsets[-1])
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
    return merge([shard_path(output, i, count) for i in range(count)], output)
