"""The plan of one run: its batches, this shard's share, and the hashes ``--resume`` checks.

:func:`make_plan` turns the inputs' headers into fixed batch boundaries
(:func:`~nnaudio_cli.extract.batch.plan_batches`) and, with ``--shard``, keeps this shard's
whole batches (:func:`~nnaudio_cli.extract.shard.shard_batches`). :func:`features_hash`,
:func:`resume_hash` and :func:`manifest` fingerprint everything the stored values depend on:
the work folder's ``manifest.json`` and the output's root attributes carry them.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from typing import Any

import soxr

from nnaudio_cli.config import canonical_json
from nnaudio_cli.errors import InputError
from nnaudio_cli.extract import audio, resample
from nnaudio_cli.extract.batch import Batch, plan_batches
from nnaudio_cli.extract.discover import Header
from nnaudio_cli.extract.listing import Input, InputList
from nnaudio_cli.extract.parts import PartStore
from nnaudio_cli.extract.shard import plan_hash, shard_batches


def config_hash(config: dict[str, Any], keep_channels: bool) -> str:
    """SHA-256 of the stored config JSON, the channel mode and the resampler."""
    return _digest({"config": config, "keep_channels": keep_channels,
                    "resampler": resampler_name()})


def resampler_name() -> str:
    """Description of the resampler stored in the attributes."""
    return f"soxr {soxr.__version__} quality={resample.SOXR_QUALITY}"


def resume_hash(chash: str, segment_samples: int, nan_policy: str, batch_samples: int,
                rows_hash: str | None = None) -> str:
    """Hash of everything the stored values depend on (checked by ``--resume``): the
    configuration, the segment length, the NaN policy and the batch plan's size, and for a
    ``--files`` list its rows (:attr:`~nnaudio_cli.extract.listing.InputList.rows_hash`:
    a list whose keys or spans changed is refused, where a folder may gain files)."""
    fields: dict[str, Any] = {"config_hash": chash, "segment_samples": segment_samples,
                              "nan_policy": nan_policy, "batch_samples": batch_samples}
    if rows_hash is not None:
        fields["input_rows"] = rows_hash
    return _digest(fields)


def features_hash(features: list[dict[str, Any]]) -> str:
    """The run's configuration hash: SHA-256 of every feature's ``name``, ``config_hash``
    and ``storage`` attributes, in stored order."""
    return _digest(features)


def _digest(value: Any) -> str:
    """SHA-256 (hex) of ``value``'s canonical JSON."""
    return hashlib.sha256(canonical_json(value).encode()).hexdigest()


def source_stats(inputs: list[Input]) -> dict[str, tuple[int, float]]:
    """Key -> (size, mtime) of each input's source file (resume compares them)."""
    out: dict[str, tuple[int, float]] = {}
    for inp in inputs:
        try:
            st = os.stat(inp.path)
        except OSError:
            continue
        out[inp.key] = (int(st.st_size), float(st.st_mtime))
    return out


def span_header(h: Header, inp: Input) -> Header:
    """The header of a segment for planning: its length (0 when it does not fit the file:
    decoding then fails the row with the reason)."""
    span = inp.span
    if span is None or not h.sr:
        return h
    try:
        start, stop = audio.span_frames(span, h.sr, h.samples)
    except InputError:
        return Header(h.sr, 0, h.channels)
    return Header(h.sr, stop - start, h.channels)


@dataclass(frozen=True)
class Plan:
    """The batches of a run.

    Attributes
    ----------
    all_keys : every input's key, in input order (batches index into it)
    keys : the keys this run stores (this shard's, with ``--shard``), in stored order
    headers : every input's header, a segment's length for a span
    batches : this run's batches, in plan order
    batch_samples : samples per batch at the plan's rate
    segment_samples : longest input computed in one piece; longer ones are streamed
    shard_attrs : the shard's root attributes (empty without ``--shard``)
    """

    all_keys: list[str]
    keys: list[str]
    headers: list[Header]
    batches: list[Batch]
    batch_samples: int
    segment_samples: int
    shard_attrs: dict[str, Any]

    def todo(self, store: PartStore) -> list[Batch]:
        """The batches restricted to inputs without a committed source (empty batches
        dropped)."""
        out = []
        for b in self.batches:
            left = tuple(i for i in b.clips if self.all_keys[i] not in store.sources)
            if left:
                out.append(Batch(left, b.streamed))
        return out


def make_plan(inputs: list[Input], headers: list[Header], sr: float, mono: bool,
              batch_seconds: float, segment_seconds: float, min_segment: int,
              shard: tuple[int, int] | None) -> Plan:
    """Plan the batches of ``inputs`` (their ``headers``) at rate ``sr``.

    Parameters
    ----------
    inputs, headers : the run's inputs, sorted, and their headers
    sr : the plan's rate (the largest of the features)
    mono : one stored channel per input (else its own count)
    batch_seconds, segment_seconds : ``--batch-seconds`` and the streaming threshold
    min_segment : the fewest samples one piece may hold (the longest ``n_fft + hop``)
    shard : ``(index, count)``, or None
    """
    all_keys = [inp.key for inp in inputs]
    headers = [span_header(h, inp) for h, inp in zip(headers, inputs, strict=True)]
    stored_channels = [1 if mono else max(h.channels, 1) for h in headers]
    costs = [resample.resampled_length(h.samples, h.sr or sr, sr) * c
             for h, c in zip(headers, stored_channels, strict=True)]
    batch_samples = max(1, int(batch_seconds * sr))
    seg_samples = max(int(segment_seconds * sr), min_segment, 1)
    batches = plan_batches(costs, batch_samples, seg_samples)
    keys = all_keys
    shard_attrs: dict[str, Any] = {}
    if shard is not None:  # whole batches of the one plan: the same bytes as one run
        index, count = shard
        shard_attrs = {"shard_index": index, "shard_count": count,
                       "shard_plan": plan_hash(all_keys, batches, count),
                       "n_inputs_total": len(all_keys)}
        batches = shard_batches(batches, costs, index, count)
        keys = [all_keys[i] for b in batches for i in b.clips]
    return Plan(all_keys, keys, headers, batches, batch_samples, seg_samples, shard_attrs)


def manifest(chash: str, names: list[str], plan: Plan, nan_policy: str, keep_channels: bool,
             input_list: InputList | None) -> dict[str, Any]:
    """The settings ``manifest.json`` records, ``resume_hash`` first among them."""
    rows_hash = None if input_list is None else input_list.rows_hash
    rhash = resume_hash(chash, plan.segment_samples, nan_policy, plan.batch_samples, rows_hash)
    return {
        "resume_hash": rhash, "config_hash": chash, "features": names,
        "segment_samples": plan.segment_samples, "nan_policy": nan_policy,
        "keep_channels": keep_channels, "batch_samples": plan.batch_samples,
        **({} if rows_hash is None else {"input_rows": rows_hash}),
    }
