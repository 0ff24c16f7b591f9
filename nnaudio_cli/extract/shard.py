"""Shards: which inputs one of N independent processes extracts, and where it writes them.

**Assignment.** :func:`split_contiguous` cuts the fixed batch plan (see
:func:`~nnaudio_cli.extract.batch.plan_batches`) into ``N`` contiguous runs of whole batches,
balanced by audio duration (the header samples at the target rate times the stored
channels, the same cost the batches are planned with). Greedy by cumulative duration: a
batch goes to shard ``floor(N * midpoint / total)``, where ``midpoint`` is the cumulative
duration up to the middle of the batch. So

* every shard computes the same assignment alone, from the sorted inputs, their headers and
  the settings (no shard talks to another);
* shards keep key order (shard ``i`` holds keys before shard ``i + 1``), so merging is a
  concatenation;
* a shard computes exactly the batches a single process would, so its features are
  byte-identical to a single-process run with the same device and thread count;
* each shard's duration is within one batch (``--batch-seconds``, or one long file) of
  ``total / N``.

**Environment.** :func:`from_environment` reads the shard of this process from the launcher:
torchrun (``RANK``/``WORLD_SIZE``), a Slurm job array
(``SLURM_ARRAY_TASK_ID - SLURM_ARRAY_TASK_MIN`` of ``SLURM_ARRAY_TASK_COUNT``) or Slurm tasks
(``SLURM_PROCID``/``SLURM_NTASKS``), in that order. A count of 1 is no shard.

**Files.** Shard ``I`` of ``N`` of ``OUT.h5`` is ``OUT.shard-I-of-N.h5`` (:func:`shard_path`)
with its own work folder ``OUT.shard-I-of-N.h5.parts/``, so locking, resume and crash safety
hold per shard unchanged.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nnaudio_cli.extract.batch import Batch

_SHARD_RE = re.compile(r"^\s*([+-]?[0-9]+)\s*/\s*([+-]?[0-9]+)\s*$")
_INT_RE = re.compile(r"^[+-]?[0-9]{1,19}$")
#: The most shards a run may be split into (the plan is cut into this many runs in memory).
MAX_SHARDS = 1_000_000


@dataclass(frozen=True)
class Shard:
    """One process's share of the inputs.

    Attributes
    ----------
    index : 0-based shard number, ``0 <= index < count``
    count : number of shards
    source : where it came from: ``--shard``, ``torchrun`` (RANK/WORLD_SIZE), ``slurm array``
        or ``slurm tasks``
    local_rank : the process's rank on its node (LOCAL_RANK / SLURM_LOCALID), for picking
        ``cuda:LOCAL_RANK``; None when unknown
    local_world : processes on this node (LOCAL_WORLD_SIZE), 1 when unknown
    """

    index: int
    count: int
    source: str = "--shard"
    local_rank: int | None = None
    local_world: int = 1

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


def parse_shard(text: str) -> tuple[int, int]:
    """``"I/N"`` -> ``(I, N)`` with ``0 <= I < N <= MAX_SHARDS`` (ASCII digits).

    Raises
    ------
    ValueError
        One line naming what is wrong.
    """
    m = _SHARD_RE.match(text)
    if not m:
        raise ValueError(f"{text[:40]!r} is not I/N (e.g. 0/4: the first of 4 shards)")
    i, n = _bounded(m.group(1), "I"), _bounded(m.group(2), "N")
    why = _range_reason(i, n)
    if why:
        raise ValueError(f"{text[:40]!r}: {why}")
    return i, n


def _bounded(text: str, name: str) -> int:
    """An integer that fits in 64 bits (ASCII digits, optional sign), else ValueError."""
    value = int(text) if _INT_RE.match(text) else None
    if value is None or not -(1 << 63) <= value < (1 << 63):
        raise ValueError(f"{name}={text[:40]!r} is not an integer of at most 64 bits")
    return value


def _range_reason(index: int, count: int) -> str | None:
    """Why shard ``index`` of ``count`` is impossible (None when ``0 <= index < count <=
    MAX_SHARDS``)."""
    if count < 1:
        return f"the shard count {count} must be at least 1"
    if count > MAX_SHARDS:
        return f"the shard count {count} is above the limit of {MAX_SHARDS:,}"
    if not 0 <= index < count:
        return f"shard {index} of {count} is out of range: need 0 <= I < N (numbered from 0)"
    return None


def _int(env: Mapping[str, str], name: str) -> int | None:
    value = env.get(name, "").strip()
    if not value:
        return None
    return _bounded(value, name)


def from_environment(env: Mapping[str, str]) -> Shard | None:
    """The shard the launcher gave this process, or None (not launched as several).

    torchrun: ``RANK`` of ``WORLD_SIZE``; Slurm array: ``SLURM_ARRAY_TASK_ID -
    SLURM_ARRAY_TASK_MIN`` (0 when unset) of ``SLURM_ARRAY_TASK_COUNT``; Slurm tasks:
    ``SLURM_PROCID`` of ``SLURM_NTASKS``. The first that is set wins; a count of 1 means
    no shard.

    Raises
    ------
    ValueError
        A variable is not an integer of at most 64 bits, a count is below 1 or above
        ``MAX_SHARDS`` (``WORLD_SIZE=0`` is an error, not one unsharded run per rank), or
        the index is out of range (e.g. a Slurm array with a step, ``--array=0-10:2``, whose
        task ids are not consecutive).
    """
    local_rank = _int(env, "LOCAL_RANK")
    if local_rank is None:
        local_rank = _int(env, "SLURM_LOCALID")
    local_world = _int(env, "LOCAL_WORLD_SIZE") or 1
    found: tuple[int, int, str] | None = None
    rank, world = _int(env, "RANK"), _int(env, "WORLD_SIZE")
    task, tasks = _int(env, "SLURM_ARRAY_TASK_ID"), _int(env, "SLURM_ARRAY_TASK_COUNT")
    procid, ntasks = _int(env, "SLURM_PROCID"), _int(env, "SLURM_NTASKS")
    if rank is not None and world is not None:
        found = (rank, world, "torchrun")
    elif task is not None and tasks is not None:
        found = (task - (_int(env, "SLURM_ARRAY_TASK_MIN") or 0), tasks, "slurm array")
    elif procid is not None and ntasks is not None:
        found = (procid, ntasks, "slurm tasks")
    if found is None:
        return None
    index, count, source = found
    why = _range_reason(index, count)
    if why:
        names = {"torchrun": "RANK/WORLD_SIZE",
                 "slurm array": "SLURM_ARRAY_TASK_ID - SLURM_ARRAY_TASK_MIN of "
                                "SLURM_ARRAY_TASK_COUNT (array ids must be consecutive)",
                 "slurm tasks": "SLURM_PROCID/SLURM_NTASKS"}
        raise ValueError(f"{why} (from {names[source]}); fix the launcher's variables or "
                         "pass --shard I/N")
    if count == 1:
        return None
    return Shard(index, count, source, local_rank, max(1, local_world))


def split_contiguous(weights: Sequence[float], count: int) -> list[tuple[int, int]]:
    """Cut units (in order) into ``count`` contiguous runs of about equal total weight.

    Unit ``u`` goes to run ``min(count - 1, floor(count * m_u / total))``, where ``m_u`` is
    the cumulative weight up to the middle of ``u``. The runs' totals differ from
    ``total / count`` by at most the largest unit's weight. With a total weight of 0 every
    unit weighs 1 (balanced by count).

    Parameters
    ----------
    weights : non-negative weight of each unit, in order
    count : number of runs, >= 1

    Returns
    -------
    list of ``count`` half-open ``(start, stop)`` unit ranges; they tile ``[0, len(weights))``
    in order (some may be empty when there are fewer units than runs)
    """
    if count < 1:
        raise ValueError(f"count={count} must be >= 1")
    w = [max(0.0, float(x)) for x in weights]
    total = math.fsum(w)
    if total <= 0:
        w, total = [1.0] * len(w), float(len(w))
    starts = [len(w)] * (count + 1)
    starts[0] = 0
    run, cum = 0, 0.0
    for u, x in enumerate(w):  # the owner is non-decreasing in u
        owner = min(count - 1, int(count * (cum + x / 2) / total))
        while run < owner:
            run += 1
            starts[run] = u
        cum += x
    return [(starts[r], starts[r + 1]) for r in range(count)]


def shard_batches(plan: Sequence[Batch], costs: Sequence[int], index: int,
                  count: int) -> list[Batch]:
    """The batches of shard ``index`` of ``count`` (see :func:`split_contiguous`).

    Parameters
    ----------
    plan : the batch plan over every input (sorted keys)
    costs : each input's samples at the target rate times its stored channels
    """
    weights = [sum(costs[i] for i in b.clips) for b in plan]
    start, stop = split_contiguous(weights, count)[index]
    return list(plan[start:stop])


def plan_hash(keys: Sequence[str], plan: Sequence[Batch], count: int) -> str:
    """SHA-256 of the sorted inputs, the batch plan and the shard count: shards made from
    the same inputs with the same settings have the same one (checked by ``nnaudio merge``)."""
    h = hashlib.sha256(f"shards={count}\0".encode())
    for k in keys:
        h.update(k.encode("utf-8", "surrogateescape") + b"\0")
    for b in plan:
        h.update(f"{b.clips[0]}:{len(b.clips)}:{int(b.streamed)};".encode())
    return h.hexdigest()


def shard_path(output: Path, index: int, count: int) -> Path:
    """``OUT.h5`` -> ``OUT.shard-I-of-N.h5`` (next to it)."""
    output = Path(output)
    return output.with_name(f"{output.stem}.shard-{index}-of-{count}{output.suffix}")


def rank_device(device: Any, shard: Shard | None) -> Any:
    """``cuda:LOCAL_RANK`` (modulo the CUDA devices) for a launched rank whose ``--device
    auto`` resolved to CUDA; ``device`` unchanged otherwise."""
    if shard is None or shard.local_rank is None or device.type != "cuda":
        return device
    import torch

    count = torch.cuda.device_count()
    return torch.device(f"cuda:{shard.local_rank % count}") if count else device
