"""Train on an extract output: a PyTorch ``Dataset`` over a feature file and a padding collate.

::

    from torch.utils.data import DataLoader
    from nnaudio_cli.featurefile.dataset import FeatureDataset, pad_collate

    ds = FeatureDataset("features.h5", crop_frames=128)
    loader = DataLoader(ds, batch_size=16, shuffle=True, num_workers=2,
                        collate_fn=ds.collate)
    for x, lengths, keys in loader:   # x: (16, 128, n_bins) float32, zero-padded in time
        ...

Items are ``(features, key)``: ``features`` a float32 tensor in the file's time-major layout,
``(frames, n_bins)``; ``(frames, n_bins, 2)`` for complex outputs (real, imaginary);
``(frames, channels, n_bins[, 2])`` for files written with ``--keep-channels``. Only inputs
whose extraction succeeded are items (failed rows are never returned).

**Workers.** The HDF5 file is opened lazily, on the first item a process reads, and reopened
in any process that did not open it (a forked DataLoader worker gets its own handle: h5py
handles must not be shared across ``fork``). Reads are plain h5py slices of the feature's
``/features/<name>/data``, so a merged file whose data is an HDF5 virtual dataset works the
same.
A crop reads only its own rows. A process that opens the file checks it is the file the
dataset indexed (its ``digest``, ``created`` and ``shard_digests`` attributes): a file
replaced under the same path since (``extract --overwrite``/``--resume``, ``merge
--overwrite``, ``os.replace``) is a :class:`~nnaudio_cli.featurefile.validate.FeatureFileError`
naming it,
never items read with the old offsets from the new file; a merged master's shards are
checked again as on open (:func:`~nnaudio_cli.featurefile.validate.check_shards`).

**Damaged files.** Opening the dataset validates the file's layout
(:func:`~nnaudio_cli.featurefile.validate.validate_layout`): a damaged or crafted file is a
:class:`~nnaudio_cli.featurefile.validate.FeatureFileError` (a ``ValueError``), one line naming the
file
and the defect.

**Crops.** With ``crop_frames=N`` an input of ``F >= N`` frames gives a random window of
exactly ``N`` frames, start uniform in ``[0, F - N]``, drawn from torch's default generator:
reproducible with ``torch.manual_seed`` (no workers) or ``DataLoader(generator=...)`` (each
worker's generator is seeded from it). An input shorter than ``N`` frames is, by default
(``short="pad"``), returned whole; :func:`pad_collate` with ``frames=N`` (``ds.collate``)
zero-pads it to ``N`` and reports its true length, so batches keep a fixed shape and a mask
can be made from ``lengths``. ``short="skip"`` leaves such inputs out of the dataset instead
(decided from the index, before anything is read).

**Features and dtypes.** A file holding several features (``extract -c mel128 -c cqt84``)
needs ``feature="mel128"``; one holding a single feature may omit it. Values are decoded from
the stored dtype (float16, bfloat16, float32) to float32 as they are read; features stored in
dB are returned in dB.

**Normalisation (CMVN).** ``normalize=True`` returns ``(x - mean) / sqrt(var + eps)`` per bin
(per element of a row: ``(n_bins,)``, or ``(n_bins, 2)`` for complex outputs), with the
mean and variance (ddof 0) that ``nnaudio extract`` stored over every frame of the feature
(``/features/<name>/stats``), computed in float64 and returned as float32. ``eps`` defaults
to :data:`EPS_REL` times the mean variance over the bins: it only keeps a constant bin
(variance 0) from dividing by zero, whatever the units (dB, or linear power of any
loudness), and scaling the features leaves the normalised values unchanged. A file without
statistics is a ``ValueError``.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Optional

import h5py
import numpy as np
import torch
from torch.utils.data import Dataset

from nnaudio_cli.featurefile.reader import open_features
from nnaudio_cli.featurefile.stats import BinStats
from nnaudio_cli.featurefile.validate import FeatureFileError, check_shards, file_identity
from nnaudio_cli.plumbing.text import shown_key

SHORT_POLICIES = ("pad", "skip")
#: The default ``eps`` of ``normalize=True``, relative to the mean per-bin variance.
EPS_REL = 1e-10


class FeatureDataset(Dataset):
    """The inputs of a feature file as ``(features, key)`` items.

    Parameters
    ----------
    path : str or path-like
        An HDF5 file written by ``nnaudio extract`` (or a merged/virtual one in its layout).
    keys : sequence of str, optional
        Inputs to use, in this order (default: every input that was written, in stored
        order). A key that is not in the file, or whose extraction failed, is a ``KeyError``.
    crop_frames : int, optional
        Return random windows of this many frames (see the module docstring); ``None`` returns
        whole inputs.
    transform : callable, optional
        Applied to each features tensor (after cropping), in the worker: e.g.
        ``torch.log1p``. :func:`pad_collate` pads the first axis, so keep time first there
        (a picklable callable when the DataLoader's workers are spawned, not forked).
    short : {'pad', 'skip'}
        What happens to inputs shorter than ``crop_frames``: returned whole, to be padded by
        :func:`pad_collate` (``'pad'``), or left out of the dataset (``'skip'``).
    feature : str, optional
        The feature to read; needed when the file holds several (``ValueError`` naming them).
    normalize : bool
        Per-bin CMVN with the file's statistics, before ``transform`` (module docstring).
    eps : float, optional
        Added to the variance by ``normalize`` (default: :data:`EPS_REL` times the mean
        per-bin variance).

    Attributes
    ----------
    keys : list of str
        The inputs, item ``i`` is ``keys[i]``.
    frames : np.ndarray
        int64 ``(len(keys),)``, each input's frame count.
    feature : str
        The feature read.
    attrs, config, frequencies :
        The feature's attributes (the file's root ones overlaid by its group's), the
        transform's ``get_config()`` and Hz per bin.
    storage : nnaudio_cli.featurefile.encoding.Storage
        The stored dtype and scale.
    stats : BinStats or None
        The stored per-bin statistics.
    mean, scale : np.ndarray or None
        float32, row shape: with ``normalize``, an item is ``(x - mean) * scale``.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        keys: Optional[Sequence[str]] = None,
        crop_frames: Optional[int] = None,
        transform: Optional[Callable[[torch.Tensor], Any]] = None,
        short: str = "pad",
        *,
        feature: Optional[str] = None,
        normalize: bool = False,
        eps: Optional[float] = None,
    ) -> None:
        if crop_frames is not None and (isinstance(crop_frames, bool) or int(crop_frames) < 1):
            raise ValueError(f"crop_frames={crop_frames!r} must be a positive number of frames")
        if short not in SHORT_POLICIES:
            raise ValueError(f"short={short!r} is not one of {', '.join(SHORT_POLICIES)}")
        self.path = Path(path)
        self.crop_frames = None if crop_frames is None else int(crop_frames)
        self.transform = transform
        self.short = short
        with open_features(self.path, feature) as ff:
            self.feature = ff.feature
            self._dataset = ff.data.name  # /features/<name>/data (layout 1: /features/data)
            self.storage = ff.storage
            self.stats = ff.stats
            self.attrs = dict(ff.attrs)
            self._identity = file_identity(ff.h5)
            self.config = ff.config
            self.frequencies = ff.frequencies
            offsets = np.asarray(ff.offsets, dtype=np.int64)
            chosen = list(ff) if keys is None else list(keys)
            for key in chosen:
                if key not in ff:
                    why = "extraction failed"
                    try:
                        ff.row(key)
                    except KeyError:
                        why = f"not in {shown_key(str(self.path))}"
                    raise KeyError(f"{shown_key(key)}: {why}")
            idx = np.array([ff.row(k) for k in chosen], dtype=np.int64)
            channels = (ff.index["stored_channels"].astype(np.int64) if ff.keep_channels
                        else np.ones(len(offsets) - 1, dtype=np.int64))
        self.keep_channels = bool(self.attrs.get("keep_channels", False))
        self._start = offsets[idx]
        self._channels = channels[idx]
        self.frames = (offsets[idx + 1] - offsets[idx]) // self._channels
        if self.crop_frames is not None and short == "skip":
            keep = self.frames >= self.crop_frames
            chosen = [k for k, ok in zip(chosen, keep, strict=True) if ok]
            self._start, self._channels = self._start[keep], self._channels[keep]
            self.frames = self.frames[keep]
        self.keys: list[str] = chosen
        self.mean: Optional[np.ndarray] = None
        self.scale: Optional[np.ndarray] = None
        if normalize:
            self.mean, self.scale = cmvn(self.stats, eps, f"{shown_key(str(self.path))} "
                                         f"(feature {self.feature})")
        self._h5: Optional[h5py.File] = None
        self._pid: Optional[int] = None

    # the open file ------------------------------------------------------------------
    def _data(self) -> h5py.Dataset:
        """The feature's stored data, through a handle opened by this process."""
        if self._h5 is None or self._pid != os.getpid():
            # an inherited handle (fork) is dropped without closing: it is the parent's
            h5 = h5py.File(self.path, "r")
            try:
                self._check_same(h5)
            except BaseException:
                h5.close()
                raise
            self._h5, self._pid = h5, os.getpid()
        return self._h5[self._dataset]

    def _check_same(self, h5: h5py.File) -> None:
        """The file opened now is the one this dataset indexed (same digest, creation stamp
        and shard checksums), and a merged master's shards are still those it merged."""
        now = file_identity(h5)
        if now != self._identity:
            was = self._identity[0] or self._identity[1]
            raise FeatureFileError(
                f"{shown_key(str(self.path))} was replaced after this FeatureDataset read "
                f"its index (checksum/stamp {was} then {now[0] or now[1]}): its offsets no "
                "longer fit; make a new FeatureDataset")
        check_shards(h5, self.path)

    def close(self) -> None:
        """Close this process's handle (it is reopened on the next read)."""
        if self._h5 is not None and self._pid == os.getpid():
            self._h5.close()
        self._h5 = self._pid = None

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()  # spawned workers and pickles never carry a handle
        state["_h5"] = state["_pid"] = None
        return state

    # items -------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.keys)

    def window(self, i: int) -> tuple[int, int]:
        """The frames ``[start, stop)`` item ``i`` returns next: all of them, or a random
        crop (drawn from torch's default generator)."""
        n = int(self.frames[i])
        if self.crop_frames is None or n <= self.crop_frames:
            return 0, n
        start = int(torch.randint(0, n - self.crop_frames + 1, ()).item())
        return start, start + self.crop_frames

    def __getitem__(self, i: int) -> tuple[Any, str]:
        if not -len(self) <= i < len(self):
            raise IndexError(f"item {i} of a dataset of {len(self)}")
        i = i % len(self)
        start, stop = self.window(i)
        ch = int(self._channels[i])
        first = int(self._start[i])
        data = self._data()
        try:
            block = self.storage.decode(data[first + start * ch : first + stop * ch])
        except OSError as e:  # a chunk HDF5 cannot read: damaged bytes
            raise FeatureFileError(
                f"{shown_key(str(self.path))}: cannot read the rows of "
                f"{shown_key(self.keys[i])} ({' '.join(str(e).split())}); the file is "
                "damaged") from None
        if self.keep_channels:
            block = block.reshape((stop - start, ch) + block.shape[1:])
        if self.mean is not None:
            block = ((block.astype(np.float64) - self.mean) * self.scale).astype(np.float32)
        x = torch.from_numpy(np.ascontiguousarray(block, dtype=np.float32))
        if self.transform is not None:
            x = self.transform(x)
        return x, self.keys[i]

    @property
    def collate(self) -> Callable[[Sequence[tuple[torch.Tensor, str]]], Any]:
        """:func:`pad_collate` padding every batch to at least ``crop_frames`` frames."""
        return functools.partial(pad_collate, frames=self.crop_frames)


def cmvn(stats: Optional[BinStats], eps: Optional[float] = None, what: str = "the file"
         ) -> tuple[np.ndarray, np.ndarray]:
    """The per-bin ``mean`` and ``scale = 1 / sqrt(var + eps)`` (float64, row shape) that
    normalise features with the statistics ``stats``.

    Parameters
    ----------
    stats : the stored statistics (None: a ``ValueError`` naming ``what``)
    eps : added to the variance (default :data:`EPS_REL` times the mean per-bin variance;
        a constant feature gets ``eps = 1``: its values become 0)

    Raises
    ------
    ValueError
        No statistics, an empty feature, or a negative ``eps``.
    """
    if stats is None:
        raise ValueError(f"{what} has no stored statistics (written before nnaudio kept "
                         "them, or a part file); normalize=True needs them: extract it again")
    if not (stats.count > 0).all():
        raise ValueError(f"{what} has no frames: nothing to normalise with")
    var = np.asarray(stats.var, dtype=np.float64)
    if eps is None:
        level = float(var.mean())
        eps = EPS_REL * level if level > 0 else 1.0
    elif not (np.isfinite(eps) and eps >= 0):
        raise ValueError(f"eps={eps!r} must be a finite number >= 0")
    with np.errstate(divide="ignore"):
        scale = 1.0 / np.sqrt(var + eps)
    if not np.isfinite(scale).all():
        raise ValueError(f"{what}: a bin has variance 0; pass eps > 0")
    return np.asarray(stats.mean, dtype=np.float64), scale


def pad_collate(
    batch: Sequence[tuple[torch.Tensor, str]], frames: Optional[int] = None
) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """Stack ``(features, key)`` items of different lengths into one zero-padded batch.

    Parameters
    ----------
    batch : sequence of (tensor, str)
        Items whose tensors agree in every axis but the first (time).
    frames : int, optional
        Pad to at least this many frames (default: the longest item of the batch).

    Returns
    -------
    features : torch.Tensor
        ``(batch, T, ...)``, ``T = max(frames, longest item)``; item ``b`` occupies
        ``[b, :lengths[b]]`` and is zero after it.
    lengths : torch.Tensor
        int64 ``(batch,)``, each item's true frame count.
    keys : list of str
    """
    if not batch:
        raise ValueError("pad_collate needs at least one item")
    tensors = [torch.as_tensor(x) for x, _ in batch]
    keys = [k for _, k in batch]
    lengths = torch.tensor([t.shape[0] for t in tensors], dtype=torch.int64)
    tail = {tuple(t.shape[1:]) for t in tensors}
    if len(tail) > 1:
        raise ValueError(f"items differ beyond the time axis: {sorted(tail)}")
    total = max(int(lengths.max()), frames or 0)
    out = tensors[0].new_zeros((len(tensors), total) + tuple(tensors[0].shape[1:]))
    for b, t in enumerate(tensors):
        out[b, : t.shape[0]] = t
    return out, lengths, keys
