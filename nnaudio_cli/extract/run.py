"""The wiring of the extract stages: :func:`run_extract` takes one run from its inputs to
``OUTPUT.h5`` (see the package docstring for the data flow).

It builds the features (:mod:`~nnaudio_cli.extract.lanes`) and the plan
(:mod:`~nnaudio_cli.extract.plan`), opens the work folder
(:mod:`~nnaudio_cli.extract.parts`), has the batches computed
(:mod:`~nnaudio_cli.extract.extraction`), then assembles the output
(:mod:`~nnaudio_cli.extract.assemble`).
"""

from __future__ import annotations

import json
import os
import signal
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import soundfile as sf
import soxr
import torch

import nnaudio_core
from nnaudio_cli.config import canonical_json
from nnaudio_cli.extract.assemble import assemble
from nnaudio_cli.extract.decode import cpu_count, default_workers, make_decoder
from nnaudio_cli.extract.discover import Header, read_headers
from nnaudio_cli.extract.extraction import Extraction
from nnaudio_cli.extract.inputs import select_inputs
from nnaudio_cli.extract.lanes import Lane, build_lanes
from nnaudio_cli.extract.listing import Input
from nnaudio_cli.extract.options import ExtractError, ExtractOptions, Interrupted
from nnaudio_cli.extract.parts import PartStore, ResumeError, remove_parts
from nnaudio_cli.extract.plan import (
    features_hash,
    make_plan,
    manifest,
    resampler_name,
    source_stats,
)
from nnaudio_cli.extract.summary import Summary
from nnaudio_cli.featurefile.encoding import StorageError
from nnaudio_cli.plumbing import interrupts, text
from nnaudio_cli.plumbing.outputs import OutputError, check_owned
from nnaudio_cli.plumbing.progress import Reporter

__all__ = ["ExtractError", "ExtractOptions", "Interrupted", "Summary", "default_threads",
           "default_workers", "run_extract"]

#: Compression of the part files (the output gets ``--compression``).
PART_COMPRESSION = "none"
#: Times a part that fails verification before assembly is recomputed before giving up.
VERIFY_ROUNDS = 3


def default_threads(device: torch.device) -> int:
    """torch CPU threads. A function of the machine only, never of ``--workers``: the thread
    count changes float32 sums, and the same command must give the same bytes whatever
    ``--workers`` is."""
    if device.type != "cpu":
        return max(1, min(4, cpu_count()))
    return max(1, cpu_count() - default_workers())


def _root_attrs(opts: ExtractOptions, lanes: list[Lane], summary: Summary) -> dict[str, Any]:
    """The output's root attributes (the plan's and the shard's are added by the caller)."""
    keep = not opts.mono
    return {
        "sr": lanes[0].engine.sr,
        "keep_channels": keep,
        "resampler": resampler_name(),
        "compression": opts.compression,
        "config_hash": summary.config_hash,
        "package_version": nnaudio_core.__version__,
        "torch_version": torch.__version__,
        "numpy_version": np.__version__,
        "h5py_version": h5py.__version__,
        "soxr_version": soxr.__version__,
        "soundfile_version": sf.__version__,
        "command_line": json.dumps(opts.command_line),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "n_inputs": summary.files,
        "n_ok": summary.ok,
        "n_failed": summary.failed,
        "skipped_json": canonical_json(summary.skipped),
        **({} if opts.input_list is None else {
            "input_list": opts.input_list.name, "input_list_sha256": opts.input_list.sha256,
            "input_rows_hash": opts.input_list.rows_hash}),
    }


class _WorkFolder:
    """The identity of the parts folder when the run took it: a folder moved or deleted
    mid-run makes writes fail with "no such file", which must not read as a full disk."""

    def __init__(self, folder: Path, output: Path) -> None:
        self.folder = folder
        self.output = output
        self.ident = self._ident()

    def _ident(self) -> tuple[int, int] | None:
        try:
            st = os.stat(self.folder)
        except OSError:
            return None
        return (st.st_dev, st.st_ino)

    def check(self) -> None:
        """Raise :class:`ExtractError` saying what happened when the folder is no longer
        the one this run created (gone, or replaced by another)."""
        now = self._ident()
        if self.ident is None or now == self.ident:
            return
        what = "deleted or moved away" if now is None else "replaced by another folder"
        raise ExtractError(
            f"the work folder {self.folder}/ was {what} during the run (the parts of the "
            f"inputs finished so far went with it); nothing was written to {self.output}; "
            "put the folder back and rerun with --resume, or rerun to start again"
        )


def _recount(reporter: Reporter, lost: list[str], before: dict[str, Any],
             computed: set[str]) -> None:
    """Progress after inputs lost their parts (checksum failures) and are computed again:
    those finished in this run leave the done count, those kept from an earlier run join
    the total, so it never shows more done than there are inputs (``before``: the sources
    before the check)."""
    again = [k for k in lost if k in computed]
    rows = [before[k].row for k in again]
    reporter.redo(len(again), failed=sum(not r.ok for r in rows),
                  audio_seconds=sum(float(r.duration) for r in rows if r.ok))
    reporter.extend(len(lost) - len(again))
    computed.update(lost)


def run_extract(opts: ExtractOptions, reporter: Reporter, decoder: Any = None,
                found: tuple[list[Input], dict[str, int], list[Header]] | None = None,
                ) -> Summary:
    """Extract features of every audio file under ``opts.input_dir`` into ``opts.output``.

    ``decoder``: decoder processes started earlier by the caller (from
    :func:`~nnaudio_cli.extract.decode.make_decoder`, e.g. before importing torch, so they
    start while it loads); closed here. None: started here. ``found``: the inputs and
    skipped counts (:func:`~nnaudio_cli.extract.inputs.select_inputs`) and their headers
    (:func:`~nnaudio_cli.extract.discover.read_headers`) when the caller read them already
    (while torch loaded); None: read here.

    Returns
    -------
    Summary (``failed > 0`` means some inputs could not be read; they are in the index)

    Raises
    ------
    ExtractError
        Fatal problems (no audio files, unwritable output: the parts are kept).
    Interrupted
        SIGINT/SIGTERM: committed parts are kept for ``--resume``.
    ResumeError
        Another run holds the output, leftovers of an earlier run, or ``--resume`` with
        different settings.
    nnaudio_core.ParameterError
        The transform rejected its parameters.
    """
    t_start = time.perf_counter()
    try:
        if found is None:
            inputs, skipped = select_inputs(
                opts.input_dir, opts.input_list, opts.include, opts.exclude, opts.output,
                opts.target, opts.note if opts.verbose else None)
            headers = None
        else:
            inputs, skipped, headers = found
        if decoder is None:
            decoder = make_decoder(opts.workers)  # they start while the kernels are built
        return _run(opts, reporter, inputs, skipped, decoder, t_start, headers)
    finally:
        if decoder is not None:
            decoder.close()


def _run(opts: ExtractOptions, reporter: Reporter, inputs: list[Input],
         skipped: dict[str, int], decoder: Any, t_start: float,
         headers: list[Header] | None = None) -> Summary:
    seg_seconds = opts.segment_seconds or opts.batch_seconds
    lanes = build_lanes(opts, seg_seconds)
    if headers is None:
        headers = read_headers([inp.path for inp in inputs])
    plan = make_plan(inputs, headers, max(lane.engine.sr for lane in lanes), opts.mono,
                     opts.batch_seconds, seg_seconds,
                     max(ln.engine.n_fft + ln.engine.hop for ln in lanes), opts.shard)
    keys, all_keys = plan.keys, plan.all_keys
    keep = not opts.mono
    names = [ln.name for ln in lanes]
    chash = features_hash([{"name": ln.name, "config_hash": ln.spec.attrs["config_hash"],
                            "storage": ln.spec.storage.attrs()} for ln in lanes])
    listed = opts.input_list
    summary = Summary(output=str(opts.output), files=len(keys), device=str(opts.device),
                      workers=opts.workers, threads=torch.get_num_threads(),
                      transform=", ".join(ln.engine.name for ln in lanes), config_hash=chash,
                      features=names, skipped=skipped,
                      input_list=None if listed is None else {"name": listed.name,
                                                              "sha256": listed.sha256})
    settings = manifest(chash, names, plan, opts.nan_policy, keep, listed)
    rhash = settings["resume_hash"]
    part_attrs = {"config_hash": chash, "sr": lanes[0].engine.sr, "keep_channels": keep}
    specs = [ln.spec for ln in lanes]
    # parts are uncompressed: they are read back (verified, assembled) and deleted, so
    # compressing them would cost CPU three times for a file that lives minutes
    store = PartStore(opts.output, settings, specs, PART_COMPRESSION, part_attrs, opts.note)
    # every refusal comes before the work folder is made: a refused run leaves nothing
    check_owned(opts.output, resume=opts.resume, overwrite=opts.overwrite)
    previous = opts.output if opts.resume and opts.output.is_file() else None
    if previous is not None:
        store.check_previous(previous)
    store.open(opts.resume, opts.overwrite)
    folder = _WorkFolder(store.folder, opts.output)
    try:
        if opts.resume:
            mine = set(keys)
            try:
                summary.resumed = store.load(
                    source_stats([i for i in inputs if i.key in mine]), previous)
            except ResumeError:
                store.discard_created()
                raise
        interrupts.check()
        extraction = Extraction(opts, lanes, inputs, plan.headers, store, decoder, reporter,
                                summary, plan.batch_samples)
        todo = plan.todo(store)
        computed = {all_keys[i] for b in todo for i in b.clips}
        reporter.start(len(computed))
        try:
            for _ in range(VERIFY_ROUNDS):
                extraction.run(todo)
                before = dict(store.sources)
                lost = store.verify_sources()
                if not lost:
                    break
                folder.check()  # parts gone with their folder: say so, stop
                _recount(reporter, lost, before, computed)
                todo = plan.todo(store)
            else:
                raise ExtractError(f"parts in {store.folder} keep failing verification; the "
                                   "disk may be faulty")
        except KeyboardInterrupt:
            signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not interrupt
            store.abort()
            raise Interrupted(store.kept(keys), len(keys)) from None
        except StorageError as e:
            store.abort()
            raise ExtractError(
                f"{e} ({store.kept(keys)} of {text.count(len(keys), 'input')} were written to "
                f"{store.folder}/; rerun with --overwrite)") from None
        except OutputError as e:
            store.abort(broken=True)
            folder.check()
            raise ExtractError(
                f"{e}; {store.kept(keys)} of {text.count(len(keys), 'input')} are kept in "
                f"{store.folder}/; free space (or make it writable) and rerun with --resume"
            ) from None
        finally:
            reporter.finish()
        summary.tally(keys, store.sources)
        summary.wall_seconds = time.perf_counter() - t_start
        attrs = _root_attrs(opts, lanes, summary)
        attrs.update(resume_hash=rhash, segment_samples=plan.segment_samples,
                     nan_policy=opts.nan_policy, batch_samples=plan.batch_samples,
                     **plan.shard_attrs)
        try:
            assemble(opts.output, keys, store.sources, specs, opts.compression, attrs)
        except KeyboardInterrupt:
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            raise Interrupted(len(keys), len(keys), assembling=True) from None
        except OutputError as e:
            folder.check()
            raise ExtractError(
                f"{e}; all {text.count(len(keys), 'input')} are kept in {store.folder}/; free "
                "space (or make it writable) and rerun with --resume"
            ) from None
        try:
            remove_parts(store.folder)
        except (OSError, ResumeError):
            pass  # the output is complete; a leftover work folder is harmless
    finally:
        store.close()
    summary.wall_seconds = time.perf_counter() - t_start
    return summary
