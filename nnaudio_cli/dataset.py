"""Train on an extract output: a PyTorch ``Dataset`` over a feature file and a padding collate.

::

    from torch.utils.data import DataLoader
    from nnaudio_cli.dataset import FeatureDataset, pad_collate

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
handles must not be shared across ``fork``). Reads are plain h5py slices of
``/features/data``, so a merged file whose data is an HDF5 virtual dataset works the same.
A crop reads only its own rows.

**Crops.** With ``crop_frames=N`` an input of ``F >= N`` frames gives a random window of
exactly ``N`` frames, start uniform in ``[0, F - N]``, drawn from torch's default generator:
reproducible with ``torch.manual_seed`` (no workers) or ``DataLoader(generator=...)`` (each
worker's generator is seeded from it). An input shorter than ``N`` frames is, by default
(``short="pad"``), returned whole; :func:`pad_collate` with ``frames=N`` (``ds.collate``)
zero-pads it to ``N`` and reports its true length, so batches keep a fixed shape and a mask
can be made from ``lengths``. ``short="skip"`` leaves such inputs out of the dataset instead
(decided from the index, before anything is read).
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

from nnaudio_cli.store import open_features
from nnaudio_cli.text import shown_key

SHORT_POLICIES = ("pad", "skip")


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

    Attributes
    ----------
    keys : list of str
        The inputs, item ``i`` is ``keys[i]``.
    frames : np.ndarray
        int64 ``(len(keys),)``, each input's frame count.
    attrs, config, frequencies :
        The file's root attributes, the transform's ``get_config()`` and Hz per bin.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        keys: Optional[Sequence[str]] = None,
        crop_frames: Optional[int] = None,
        transform: Optional[Callable[[torch.Tensor], Any]] = None,
        short: str = "pad",
    ) -> None:
        if crop_frames is not None and (isinstance(crop_frames, bool) or int(crop_frames) < 1):
            raise ValueError(f"crop_frames={crop_frames!r} must be a positive number of frames")
        if short not in SHORT_POLICIES:
            raise ValueError(f"short={short!r} is not one of {', '.join(SHORT_POLICIES)}")
        self.path = Path(path)
        self.crop_frames = None if crop_frames is None else int(crop_frames)
        self.transform = transform
        self.short = short
        with open_features(self.path) as ff:
            self.attrs = dict(ff.attrs)
            self.config = ff.config
            self.frequencies = ff.frequencies
            offsets = np.asarray(ff.offsets, dtype=np.int64)
            rows = {k: i for i, k in enumerate(ff.index["key"])}
            chosen = list(ff) if keys is None else list(keys)
            for key in chosen:
                if key not in ff:
                    why = ("extraction failed" if key in rows
                           else f"not in {shown_key(str(self.path))}")
                    raise KeyError(f"{shown_key(key)}: {why}")
            channels = (ff.index["stored_channels"].astype(np.int64) if ff.keep_channels
                        else np.ones(len(rows), dtype=np.int64))
        self.keep_channels = bool(self.attrs.get("keep_channels", False))
        idx = np.array([rows[k] for k in chosen], dtype=np.int64)
        self._start = offsets[idx]
        self._channels = channels[idx]
        self.frames = (offsets[idx + 1] - offsets[idx]) // self._channels
        if self.crop_frames is not None and short == "skip":
            keep = self.frames >= self.crop_frames
            chosen = [k for k, ok in zip(chosen, keep, strict=True) if ok]
            self._start, self._channels = self._start[keep], self._channels[keep]
            self.frames = self.frames[keep]
        self.keys: list[str] = chosen
        self._h5: Optional[h5py.File] = None
        self._pid: Optional[int] = None

    # the open file ------------------------------------------------------------------
    def _data(self) -> h5py.Dataset:
        """``/features/data`` of a handle opened by this process."""
        if self._h5 is None or self._pid != os.getpid():
            # an inherited handle (fork) is dropped without closing: it is the parent's
            self._h5 = h5py.File(self.path, "r")
            self._pid = os.getpid()
        return self._h5["features/data"]

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
        block = self._data()[first + start * ch : first + stop * ch]
        if self.keep_channels:
            block = block.reshape((stop - start, ch) + block.shape[1:])
        x = torch.from_numpy(np.ascontiguousarray(block, dtype=np.float32))
        if self.transform is not None:
            x = self.transform(x)
        return x, self.keys[i]

    @property
    def collate(self) -> Callable[[Sequence[tuple[torch.Tensor, str]]], Any]:
        """:func:`pad_collate` padding every batch to at least ``crop_frames`` frames."""
        return functools.partial(pad_collate, frames=self.crop_frames)


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
