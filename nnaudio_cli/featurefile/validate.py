"""The one validation every reader runs on open (:func:`validate_layout`), the cheap check
of a merged master's shards, and :class:`FeatureFileError`."""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from nnaudio_cli.errors import CliError
from nnaudio_cli.featurefile.encoding import Storage
from nnaudio_cli.featurefile.layout import (
    INDEX_COLUMNS_V1,
    READABLE_VERSIONS,
    attr_value,
    feature_group,
    feature_names,
    read_column,
)
from nnaudio_cli.plumbing.text import one_line, shown_key


class FeatureFileError(CliError, ValueError):
    """A feature file no reader may trust: damaged, crafted, a shard of a merged file that
    changed, or a file replaced while it was being read. One line naming the file and the
    defect (exit code 1); a ``ValueError``, as the readers documented before."""


#: Transform parameters that are sizes in samples or bins: when stored (not None) each must
#: be an integer from 1 to :data:`MAX_SIZE` (a crafted ``n_fft = 2**40`` would make the
#: inverse allocate terabytes).
SIZE_PARAMS = ("n_fft", "win_length", "hop_length", "window_size", "n_mels", "n_bins",
               "n_mfcc", "bins_per_octave", "freq_bins")
#: Transform parameters that are sample rates (a positive finite number when stored).
RATE_PARAMS = ("sr", "fs")
#: Largest size parameter a stored config may hold (2**24 samples: 6 minutes at 48 kHz).
MAX_SIZE = 2**24
#: What HDF5 raises on a member it cannot open (a dangling or looping link, a bad object).
OPEN_ERRORS = (KeyError, RuntimeError, OSError, ValueError, TypeError)


def _number(v: Any) -> bool:
    """A finite real number (not a bool, not a string)."""
    return (isinstance(v, (int, float, np.integer, np.floating))
            and not isinstance(v, (bool, np.bool_)) and bool(np.isfinite(v)))


def _size(v: Any) -> bool:
    return (isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_))
            and 1 <= int(v) <= MAX_SIZE)


def file_identity(h5: h5py.File) -> tuple[str, str, str]:
    """What tells one written file from another: its ``digest``, ``created`` stamp and
    ``shard_digests`` attributes (every write sets them; a merged master's digest is empty,
    its shards' checksums are not). A file replaced under the same path (``extract
    --overwrite`` or ``--resume``, ``merge --overwrite``, ``os.replace``) has another."""
    return tuple(str(attr_value(h5.attrs.get(k, ""))) for k in  # type: ignore[return-value]
                 ("digest", "created", "shard_digests"))


def validate_layout(h5: h5py.File, path: str | os.PathLike[str] | None = None
                    ) -> dict[str, np.ndarray]:
    """Check an open feature file before anything trusts it; return its index columns.

    The one validation every reader runs on open (:class:`FeatureFile`, hence
    :func:`open_features` and the Dataset; ``info``, ``plot``, ``invert`` and ``merge``).
    It reads the attributes, the index and the offsets, never the feature rows:

    * ``layout_version`` is readable; the root ``sr`` is a positive number; ``features`` is a
      non-empty JSON list of distinct names;
    * ``/index`` has one row per input in every column; ``key`` and ``status`` are strings,
      keys are unique, each status is ``ok`` or ``failed``; numeric columns are numeric;
    * per feature: ``data``, ``offsets`` and ``frequencies`` are datasets (not groups, not
      dangling or looping links); data are ``(rows, bins)`` or ``(rows, bins, 2)`` in the
      dtype its ``dtype`` attribute names, with the ``db_*`` attributes a dB scale needs;
      one frequency per bin; ``config_json`` is a JSON ``{transform, params}`` whose size
      parameters (:data:`SIZE_PARAMS`) are integers from 1 to :data:`MAX_SIZE` and rates
      positive; the ``hop_length`` and ``sr`` attributes likewise; offsets are
      ``n_inputs + 1`` non-decreasing integers from 0 to at most the stored rows, whole
      frames of each input's channels with ``keep_channels``;
    * virtual data (a merged master): each source file is there, readable, with the rows
      mapped; a merged master's sources are its ``merged_from`` shards, each with the
      ``digest`` attribute recorded at the merge (``shard_digests``). This is cheap (an
      attribute and a shape per shard); the full checksums are :func:`verify_file`'s job.

    Parameters
    ----------
    h5 : the open file
    path : how to name it in messages (default: ``h5.filename``)

    Returns
    -------
    dict
        The ``/index`` columns (strings decoded), as :func:`read_index`.

    Raises
    ------
    FeatureFileError
        One line: ``PATH: damaged feature file: WHAT`` (or ``PATH: shard ...``).
    """
    where = shown_key(str(path if path is not None else h5.filename))
    damaged = functools.partial(_damaged, where)

    def dataset(g: h5py.Group, name: str) -> h5py.Dataset:
        try:
            obj = g[name]
        except KeyError:
            raise damaged(f"{g.name.rstrip('/')}/{name} is missing") from None
        except OPEN_ERRORS as e:
            raise damaged(f"{g.name.rstrip('/')}/{name} cannot be opened ({one_line(e)})") from None
        if not isinstance(obj, h5py.Dataset):
            raise damaged(f"{obj.name} is not a dataset (a {type(obj).__name__.lower()})")
        return obj

    version = attr_value(h5.attrs.get("layout_version", -1))
    if not isinstance(version, int) or version not in READABLE_VERSIONS:
        raise FeatureFileError(f"{where}: not an nnaudio feature file (layout_version "
                               f"{version!r}; this reader reads "
                               f"{', '.join(map(str, READABLE_VERSIONS))})")
    root = {k: attr_value(v) for k, v in h5.attrs.items()}
    if not (_number(root.get("sr")) and root["sr"] > 0):
        raise damaged(f"root attribute sr is {root.get('sr')!r}, not a sample rate")
    try:
        names = feature_names(h5)
    except KeyError as e:
        raise damaged(e.args[0]) from None
    if not names:
        raise damaged("no features (the root attribute 'features' is an empty list)")
    if len(set(names)) != len(names) or any(not n or "/" in n for n in names):
        raise damaged(f"feature names {names} repeat or are not plain names")

    try:
        grp = h5["index"]
    except OPEN_ERRORS:
        raise damaged("/index is missing or cannot be opened") from None
    if not isinstance(grp, h5py.Group):
        raise damaged("/index is not a group")
    index: dict[str, np.ndarray] = {}
    for col in list(grp):
        ds = dataset(grp, col)
        if ds.ndim != 1:
            raise damaged(f"index column {col} is {ds.ndim}-D, not one value per input")
        text = h5py.check_string_dtype(ds.dtype) is not None or ds.dtype.kind in "SO"
        if col in ("key", "status", "reason") and not text:
            raise damaged(f"index column {col} holds {ds.dtype}, not strings")
        if col in INDEX_COLUMNS_V1 and col not in ("key", "status", "reason") \
                and ds.dtype.kind not in "iuf":
            raise damaged(f"index column {col} holds {ds.dtype}, not numbers")
        index[col] = read_column(ds)
    if "key" not in index or "status" not in index:
        raise damaged("the index has no key or status column")
    keys, n_keys = index["key"], len(index["key"])
    bad_cols = [c for c, arr in index.items() if len(arr) != n_keys]
    if bad_cols:
        raise damaged(f"index column(s) {', '.join(bad_cols)} do not have {n_keys} rows")
    if len(set(keys)) != n_keys:
        first: dict[str, int] = {}
        for i, k in enumerate(keys):
            if k in first:
                raise damaged(f"duplicate key {shown_key(str(k))} (index rows {first[k]} and "
                              f"{i})")
            first[k] = i
    odd = [i for i, s in enumerate(index["status"]) if s not in ("ok", "failed")]
    if odd:
        raise damaged(f"index status {index['status'][odd[0]]!r} at row {odd[0]} is neither "
                      "ok nor failed")

    keep = bool(root.get("keep_channels", False)) and "stored_channels" in index
    for name in names:
        label = f"feature {name}: "
        try:
            g = feature_group(h5, name)
        except OPEN_ERRORS:
            raise damaged(f"{label}no group /features/{name}") from None
        if not isinstance(g, h5py.Group):
            raise damaged(f"{label}/features/{name} is not a group")
        data, off_ds, freq_ds = (dataset(g, m) for m in ("data", "offsets", "frequencies"))
        attrs = {**root, **{k: attr_value(v) for k, v in g.attrs.items()}}
        if data.ndim not in (2, 3) or (data.ndim == 3 and data.shape[2] != 2):
            raise damaged(f"{label}data have shape {data.shape}, not (rows, bins) or "
                          "(rows, bins, 2)")
        try:
            storage = Storage.from_attrs(attrs)
        except KeyError as e:
            raise damaged(f"{label}scale db without its attribute {e.args[0]}") from None
        except (CliError, TypeError, ValueError) as e:
            raise damaged(f"{label}{one_line(e)}") from None
        if data.dtype != storage.numpy_dtype:
            raise damaged(f"{label}data are {data.dtype}, its dtype attribute says "
                          f"{storage.dtype} ({storage.numpy_dtype})")
        if freq_ds.ndim != 1 or freq_ds.dtype.kind not in "iuf" \
                or freq_ds.shape[0] != data.shape[1]:
            raise damaged(f"{label}frequencies are {freq_ds.dtype} {freq_ds.shape}, not one "
                          f"per bin ({data.shape[1]})")
        try:
            config = json.loads(attrs["config_json"])
        except (KeyError, TypeError, ValueError):
            raise damaged(f"{label}config_json is missing or not valid JSON") from None
        params = config.get("params", {}) if isinstance(config, dict) else None
        if not isinstance(params, dict) or not isinstance(config.get("transform", ""), str):
            raise damaged(f"{label}config_json is not a {{transform, params}} object")
        for what, values, sizes in (("stored config", params, SIZE_PARAMS),
                                    ("attribute", attrs, ("hop_length",))):
            for k in sizes:
                if values.get(k) is not None and not _size(values[k]):
                    raise damaged(f"{label}{what} {k}={values[k]!r}, not a size from 1 to "
                                  f"{MAX_SIZE}")
            for k in RATE_PARAMS:
                if values.get(k) is not None and not (_number(values[k]) and values[k] > 0):
                    raise damaged(f"{label}{what} {k}={values[k]!r}, not a sample rate")
        offsets = np.asarray(off_ds[()])
        _check_offsets(offsets, n_keys, int(data.shape[0]),
                       index["stored_channels"] if keep else None, label, damaged)
    check_shards(h5, path)
    return index


def check_shards(h5: h5py.File, path: str | os.PathLike[str] | None = None) -> None:
    """The cheap check of a merged master's shards (see :func:`validate_layout`; nothing
    for a file without virtual data): the part of the validation a reader that opens the
    file again (a DataLoader worker) repeats.

    Raises
    ------
    FeatureFileError
        A shard is missing, unreadable, not one the merge recorded, or changed since.
    """
    where = shown_key(str(path if path is not None else h5.filename))
    # (file, dataset) -> the source shape mapped, or (when HDF5 kept none: a whole-dataset
    # mapping) the number of values mapped
    shards: dict[tuple[str, str], tuple[int, ...] | int] = {}
    for name in feature_names(h5):
        data = feature_group(h5, name)["data"]
        if data.is_virtual:
            for src in data.virtual_sources():
                shape = tuple(src.src_space.shape)
                shards[(src.file_name, src.dset_name)] = \
                    shape if shape else int(src.vspace.get_select_npoints())
    if shards:
        _check_shards(h5, where, shards, functools.partial(_damaged, where))


def _damaged(where: str, why: str) -> FeatureFileError:
    return FeatureFileError(f"{where}: damaged feature file: {why}")


def _check_offsets(offsets: np.ndarray, n_keys: int, rows: int, channels: np.ndarray | None,
                   label: str, damaged: Callable[[str], FeatureFileError]) -> None:
    """Offsets: ``n_keys + 1`` non-decreasing integers from 0 to at most ``rows``; with
    ``channels`` (keep_channels) whole frames per input."""
    if offsets.ndim != 1 or offsets.dtype.kind not in "iu":
        raise damaged(f"{label}offsets are {offsets.dtype} {offsets.shape}, not 1-D integers")
    if offsets.size != n_keys + 1:
        raise damaged(f"{label}{offsets.size} offsets for {n_keys} keys (need {n_keys + 1})")
    if int(offsets[0]) != 0:
        raise damaged(f"{label}offsets start at {int(offsets[0])}, not 0")
    if (offsets < 0).any():
        raise damaged(f"{label}negative offset at position {int(np.argmax(offsets < 0))}")
    steps = np.diff(offsets)
    if (steps < 0).any():
        raise damaged(f"{label}offsets decrease at position {int(np.argmax(steps < 0)) + 1}")
    if int(offsets[-1]) > rows:
        raise damaged(f"{label}offsets end at row {int(offsets[-1])}, past the {rows} stored "
                      "rows")
    if channels is not None:
        ch = np.asarray(channels, dtype=np.int64)
        ok = ch > 0
        if (steps[ok] % ch[ok] != 0).any() or ((steps > 0) & ~ok).any():
            raise damaged(f"{label}a stored block does not hold whole frames of its channels")


def merged_shards(h5: h5py.File) -> dict[str, str] | None:
    """A merged master's shards: relative path -> checksum recorded at the merge
    (``merged_from``, ``shard_digests``); None when the file is not a merge.

    Raises
    ------
    ValueError
        The two attributes are not JSON lists of strings of one length.
    """
    if "merged_from" not in h5.attrs:
        return None
    paths = json.loads(attr_value(h5.attrs["merged_from"]))
    digests = json.loads(attr_value(h5.attrs.get("shard_digests", "[]")))
    if not (isinstance(paths, list) and isinstance(digests, list) and len(paths) == len(digests)
            and all(isinstance(x, str) for x in paths + digests)):
        raise ValueError("merged_from and shard_digests are not lists of one length")
    return dict(zip(paths, digests, strict=True))


def _check_shards(h5: h5py.File, where: str,
                  sources: Mapping[tuple[str, str], tuple[int, ...] | int],
                  damaged: Callable[[str], FeatureFileError]) -> None:
    """The cheap check of virtual data's source files (see :func:`validate_layout`):
    ``sources`` maps (file, dataset) to the source shape mapped (or the number of values).
    A merged master's sources must be its recorded shards with their recorded checksums; a
    virtual file made otherwise (with h5py over extract outputs) needs its sources there,
    readable, with those shapes."""
    try:
        recorded = merged_shards(h5)
    except (TypeError, ValueError):
        raise damaged("merged_from / shard_digests are not a list of shards") from None
    strays = [name for name, _ in sources if recorded is not None and name not in recorded]
    if strays:
        raise damaged(f"its data are read from {shown_key(strays[0])}, which is not one of "
                      "its merged shards")
    what = "virtual source" if recorded is None else "shard"
    home = Path(h5.filename).parent
    for name in dict.fromkeys(f for f, _ in sources):
        shown = shown_key(name)
        if not (home / name).is_file():
            raise FeatureFileError(f"{where}: {what} file {shown} is missing (the file reads "
                                   "it in place)")
        try:
            with h5py.File(home / name, "r") as sh:
                digest = str(attr_value(sh.attrs.get("digest", "")))
                held = {d: tuple(sh[d].shape) for f, d in sources if f == name}
        except OPEN_ERRORS as e:
            raise FeatureFileError(f"{where}: {what} {shown} cannot be read ({one_line(e)})"
                                   ) from None
        if recorded is not None and digest != recorded[name]:
            raise FeatureFileError(
                f"{where}: shard {shown} changed since the merge (checksum "
                f"{digest or 'none'}, merged {recorded[name] or 'none'}); merge the shards "
                "again")
        for dset, shape in held.items():
            want = sources[(name, dset)]
            if shape != want if isinstance(want, tuple) else int(np.prod(shape)) != want:
                mapped = want[0] if isinstance(want, tuple) else f"{want} values"
                raise FeatureFileError(
                    f"{where}: {what} {shown} holds {shape[0] if shape else 0} rows of "
                    f"{dset}, {mapped} were mapped; make the file again")


