"""``nnaudio extract INPUT_DIR OUTPUT.h5``: compute the features of every audio file."""

from __future__ import annotations

import json
import os
import sys
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Any, List, Optional

import typer

from nnaudio_cli.errors import EXIT_FATAL, EXIT_OK, EXIT_PARTIAL, CliError, error
from nnaudio_cli.plumbing.flags import (
    check_verbosity,
    device_option,
    examples,
    positive_finite,
    quiet_option,
    set_option,
    sr_option,
    threads_option,
    transform_option,
    verbose_option,
)
from nnaudio_cli.plumbing.text import count, shown_key, skipped_text

if TYPE_CHECKING:  # pragma: no cover - annotations only (the module is torch-free)
    from nnaudio_cli.extract.options import ExtractOptions

NAME = "extract"
EPILOG = examples(
    "nnaudio extract data/ feats.h5 -c mel128 --resume --json > summary.json",
    "nnaudio extract data/ feats.h5 -c mel128 -c cqt84 -c mfcc   # one decode, three features",
    "nnaudio extract --files segments.csv feats.h5 -c mel128 --shard 0/4   # path,start,end",
)


class Compression(str, Enum):
    """HDF5 compression of /features/data."""

    lzf = "lzf"
    gzip = "gzip"
    none = "none"


class Dtype(str, Enum):
    """Stored dtype of the features."""

    float32 = "float32"
    float16 = "float16"
    bfloat16 = "bfloat16"


class NanPolicy(str, Enum):
    """What to do with NaN/Inf input samples."""

    reject = "reject"
    zero = "zero"


def run(
    ctx: typer.Context,
    input_dir: Optional[Path] = typer.Argument(
        None, metavar="INPUT_DIR", show_default=False,
        help="Folder searched recursively (not with --files).",
    ),
    output: Optional[Path] = typer.Argument(None, metavar="OUTPUT", show_default=False,
                                            help="HDF5 file to write."),
    files: Optional[str] = typer.Option(
        None, "--files", metavar="LIST",
        help="Take the inputs from LIST instead of a folder: paths one a line, or CSV / "
        "JSON lines with path and optional key, start, end (seconds); '-' reads stdin. "
        "Relative paths are relative to LIST's folder (the current folder for '-').",
    ),
    include: List[str] = typer.Option(
        [], "--include", metavar="GLOB",
        help="Take only audio files whose path relative to INPUT_DIR matches GLOB "
        "(repeatable; '*' also matches '/').",
    ),
    exclude: List[str] = typer.Option(
        [], "--exclude", metavar="GLOB",
        help="Leave out files whose relative path matches GLOB (repeatable).",
    ),
    config: List[str] = typer.Option(
        [], "--config", "-c",
        help="Preset: a TOML path or a name in configs/ (mel128, ...). Repeat it to compute "
        "several features from one decode; each goes to /features/NAME.",
    ),
    transform: Optional[str] = transform_option(),
    set_: List[str] = set_option(),
    sr: Optional[float] = sr_option(),
    mono: bool = typer.Option(
        True, "--mono/--keep-channels", help="Mix to mono (default) or store every channel."
    ),
    device: str = device_option(),
    workers: Optional[int] = typer.Option(
        None, "--workers", "-j", min=0, max=256,
        help="Decoder processes (default: cores - 1; 0: inline).",
    ),
    batch_seconds: float = typer.Option(
        60.0, "--batch-seconds", min=0.01, callback=positive_finite("seconds"),
        help="Audio seconds per transform batch.",
    ),
    segment_seconds: Optional[float] = typer.Option(
        None, "--segment-seconds", min=0.01, callback=positive_finite("seconds"),
        help="Files longer than this are streamed in segments (default: --batch-seconds).",
    ),
    compression: Compression = typer.Option(Compression.lzf, "--compression"),
    dtype: Dtype = typer.Option(
        Dtype.float32, "--dtype",
        help="Stored dtype (readers get float32). float16 overflows above 65504: use --db.",
    ),
    db: bool = typer.Option(
        False, "--db",
        help="Store decibels: 10*log10(max(x, amin)/ref) of power, 20*log10 of magnitude "
        "features (librosa's power_to_db), floored --db-top-db below each clip's peak.",
    ),
    db_ref: float = typer.Option(1.0, "--db-ref", callback=positive_finite("reference"),
                                 help="--db reference value (0 dB)."),
    db_amin: Optional[float] = typer.Option(
        None, "--db-amin", callback=positive_finite("amin"),
        help="--db floor of the linear values (default 1e-10 power, 1e-5 magnitude).",
    ),
    db_top_db: Optional[float] = typer.Option(
        80.0, "--db-top-db", callback=positive_finite("dB"),
        help="--db: dB below each clip's peak where values are floored.",
    ),
    no_top_db: bool = typer.Option(False, "--db-no-top-db",
                                   help="--db without the top_db floor."),
    threads: Optional[int] = threads_option(
        "cores minus the default decoder count; it never follows --workers, so results do "
        "not depend on --workers"),
    overwrite: bool = typer.Option(
        False, "--overwrite",
        help="Replace an existing OUTPUT (and discard OUTPUT.parts/). Like --resume, it "
        "touches only an nnaudio feature file: any other file at OUTPUT is refused (exit 2) "
        "and left as it is.",
    ),
    resume: bool = typer.Option(
        False, "--resume",
        help="Continue an interrupted run from OUTPUT.parts/ (changed inputs are recomputed).",
    ),
    nan_policy: NanPolicy = typer.Option(
        NanPolicy.reject, "--nan-policy",
        help="Inputs with NaN/Inf samples: reject (failed row) or zero (replaced by 0).",
    ),
    shard_text: Optional[str] = typer.Option(
        None, "--shard", metavar="I/N",
        help="Extract shard I of N (from 0; balanced by duration) into "
        "OUTPUT.shard-I-of-N.h5. Default: from torchrun (RANK/WORLD_SIZE) or Slurm "
        "(SLURM_ARRAY_TASK_ID/COUNT, SLURM_PROCID/NTASKS), else no shard.",
    ),
    merge_timeout: float = typer.Option(
        600.0, "--merge-timeout", min=0, max=1e7,
        help="Under torchrun: seconds rank 0 waits for the other shards, then merges them "
        "into OUTPUT.",
    ),
    strict: bool = typer.Option(
        False, "--strict",
        help="Under torchrun: exit 3 when some inputs failed (default there: 0 once the "
        "merged OUTPUT is written, so torchrun does not report a crash). Without torchrun "
        "failed inputs always exit 3.",
    ),
    json_out: bool = typer.Option(False, "--json", help="Print a JSON summary on stdout."),
    quiet: bool = quiet_option(),
    verbose: bool = verbose_option(),
) -> int:
    """Compute features of every audio file under INPUT_DIR (or in --files LIST) and write
    them to OUTPUT."""
    check_verbosity(quiet, verbose)
    input_dir, output = _positionals(input_dir, output, files, include, exclude)
    shard = _shard(shard_text)
    target = output  # the merged file under torchrun (rank 0 writes it)
    merges = shard is not None and shard.source == "torchrun" and shard.index == 0
    if shard is not None:
        from nnaudio_cli.extract.shard import shard_path

        output = shard_path(output, shard.index, shard.count)
        if merges and target.exists() and not (overwrite or resume):
            raise CliError(f"{target} exists; pass --overwrite to replace it or --resume",
                           usage=True)
    if resume and overwrite:
        raise CliError("--resume and --overwrite exclude each other", usage=True)
    if output.exists() and not (overwrite or resume):
        raise CliError(
            f"{output} exists; pass --overwrite to replace it or --resume to update it",
            usage=True,
        )
    from nnaudio_cli.plumbing.outputs import check_owned, check_parent

    check_parent(output)
    for path in (output, target) if merges else (output,):
        check_owned(path, resume=resume, overwrite=overwrite)  # before anything is started
    torchrun = shard is not None and shard.source == "torchrun"
    if not db and (no_top_db or db_ref != 1.0 or db_amin is not None or db_top_db != 80.0):
        raise CliError("--db-ref, --db-amin and --db-top-db need --db", usage=True)
    from nnaudio_cli.config import resolve_features

    cfgs = resolve_features(list(config), transform, list(set_), sr)  # no torch: at once
    input_list = None
    if files is not None:
        from nnaudio_cli.extract.listing import read_list

        input_list = read_list(files)
    from nnaudio_cli.extract.decode import default_workers, make_decoder
    from nnaudio_cli.extract.discover import read_headers
    from nnaudio_cli.extract.inputs import select_inputs
    from nnaudio_cli.plumbing import interrupts
    from nnaudio_cli.plumbing.preload import Preload

    restore_signals = interrupts.install()  # SIGTERM stops the run like Ctrl-C (exit 143)
    decoder: Any = None
    try:
        # start-up overlaps the torch import: the decoder processes (no torch) start, then
        # torch and the pipeline load in a thread while the inputs are found and their
        # headers read (a signal meanwhile is acted on here, never inside torch's import)
        n_workers = default_workers() if workers is None else workers
        decoder = make_decoder(n_workers)
        loading = Preload()
        inputs, skipped = select_inputs(input_dir, input_list, list(include), list(exclude),
                                        output, target, _note if verbose else None)
        found = (inputs, skipped, read_headers([inp.path for inp in inputs]))
        loading.wait()
        from nnaudio_cli.plumbing.devices import resolve_device

        dev = resolve_device(device)
        if device.strip().lower() == "auto":
            from nnaudio_cli.extract.shard import rank_device

            dev = rank_device(dev, shard)
        argv = list((ctx.find_root().obj or {}).get("argv", []))
        from nnaudio_cli.extract.options import ExtractOptions

        opts = ExtractOptions(
            input_dir=input_dir, output=output, features=cfgs, device=dev, mono=mono,
            workers=n_workers, batch_seconds=batch_seconds, segment_seconds=segment_seconds,
            compression=compression.value, command_line=["nnaudio", *argv], resume=resume,
            overwrite=overwrite, nan_policy=nan_policy.value, note=_note,
            shard=None if shard is None else (shard.index, shard.count), dtype=dtype.value,
            db=db, db_ref=db_ref, db_amin=db_amin, db_top_db=None if no_top_db else db_top_db,
            input_list=input_list, include=list(include), exclude=list(exclude),
            target=target, verbose=verbose,
        )
        local_world = shard.local_world if shard is not None else 1  # ranks share its cores
        code = _run(opts, decoder, found, threads, local_world, json_out, quiet,
                    list_failures=not torchrun)
        if merges and code in (EXIT_OK, EXIT_PARTIAL):
            code = _merge(target, shard.count, merge_timeout, overwrite or resume, quiet,
                          strict)
        elif torchrun and code == EXIT_PARTIAL:
            # torchrun stops every rank when one exits non-zero: failed inputs are no
            # reason to stop rank 0's merge; rank 0 lists them after merging
            code = EXIT_OK
        return code
    except KeyboardInterrupt:  # before the run started: nothing to keep
        if decoder is not None:
            decoder.close()
        print("nnaudio: interrupted; nothing written", file=sys.stderr, flush=True)
        return interrupts.interrupted_exit(interrupts.exit_code())
    finally:
        restore_signals()
        if decoder is not None:
            decoder.close()


def _positionals(
    input_dir: Optional[Path], output: Optional[Path], files: Optional[str],
    include: List[str], exclude: List[str],
) -> tuple[Optional[Path], Path]:
    """``(INPUT_DIR, OUTPUT)`` from the positional arguments: with ``--files`` the only one
    is OUTPUT. Usage errors as one line, in click's words."""
    given = [p for p in (input_dir, output) if p is not None]
    if files is not None:
        if len(given) != 1:
            raise CliError("with --files LIST give only OUTPUT (the list replaces INPUT_DIR)",
                           usage=True)
        if include or exclude:
            raise CliError("--include/--exclude choose files of INPUT_DIR; with --files, "
                           "filter the list itself", usage=True)
        input_dir, output = None, given[0]
    else:
        if input_dir is None:
            raise CliError("Missing argument 'input_dir' (or pass --files LIST).", usage=True)
        if output is None:
            raise CliError("Missing argument 'output'.", usage=True)
        if not input_dir.exists():
            raise CliError(f"Invalid value for 'input_dir': dir '{input_dir}' does not exist.",
                           usage=True)
        if not input_dir.is_dir():
            raise CliError(f"Invalid value for 'input_dir': dir '{input_dir}' is a file.",
                           usage=True)
    if output.is_dir():
        raise CliError(f"Invalid value for 'output': file '{output}' is a directory.",
                       usage=True)
    return input_dir, output


def _note(msg: str) -> None:
    print(f"nnaudio: note: {msg}", file=sys.stderr, flush=True)


def _shard(text: Optional[str]) -> Any:
    """The shard of this run: ``--shard I/N``, else the launcher's environment, else None."""
    from nnaudio_cli.extract.shard import Shard, from_environment, parse_shard

    try:
        env = from_environment(os.environ)
    except ValueError as e:
        raise CliError(str(e), usage=True) from None
    if text is None:
        return env
    try:
        index, count = parse_shard(text)
    except ValueError as e:
        raise CliError(f"--shard: {e}", usage=True) from None
    if env is None:
        return Shard(index, count)
    return Shard(index, count, "--shard", env.local_rank, env.local_world)


def _merge(target: Path, shards: int, timeout: float, overwrite: bool, quiet: bool,
           strict: bool = False) -> int:
    """Rank 0 under torchrun: wait for every shard, write the virtual master, list every
    failed input. Failed inputs exit 0 (torchrun would report a non-zero rank as a crash),
    3 with ``strict``."""
    from nnaudio_cli.merge import wait_and_merge

    summary = wait_and_merge(target, shards, timeout, overwrite,
                             note=(lambda msg: None) if quiet else _note)
    _list_failures(summary.failures)
    print(f"nnaudio: merged {count(summary.shards, 'shard')} into {shown_key(str(target))}: "
          f"{summary.ok}/{count(summary.inputs, 'input')}", file=sys.stderr)  # even with -q
    if summary.failed and not strict:
        print(f"nnaudio: {count(summary.failed, 'input')} failed (listed above and in the "
              f"index of {shown_key(str(target))}); exit 0 under torchrun, --strict makes it 3",
              file=sys.stderr)
        return EXIT_OK
    return EXIT_PARTIAL if summary.failed else EXIT_OK


def _list_failures(failures: List[dict]) -> None:
    """One ``nnaudio: failed: KEY: REASON`` line per failed input."""
    for f in failures:
        reason = " ".join(str(f["reason"]).split())
        print(f"nnaudio: failed: {shown_key(str(f['key']))}: {reason}", file=sys.stderr)


def _run(opts: ExtractOptions, decoder: Any, found: Any, threads: Optional[int],
         local_world: int, json_out: bool, quiet: bool, list_failures: bool = True) -> int:
    """Run the extraction ``opts`` and print its result: the failed inputs
    (``list_failures``), the one-line summary and, with ``json_out``, the JSON summary.
    ``threads``: ``--threads`` (None: the default, shared by the ``local_world`` ranks of
    this node). Returns the exit code."""
    import torch

    from nnaudio_cli.extract import Interrupted, default_threads, run_extract
    from nnaudio_cli.plumbing import interrupts
    from nnaudio_cli.plumbing.progress import make_reporter
    from nnaudio_core import ParameterError

    cfgs, output, verbose = opts.features, opts.output, opts.verbose
    torch.set_num_threads(threads or max(1, default_threads(opts.device) // local_world))
    if verbose:
        for cfg in cfgs:
            params = ", ".join(f"{k}={v!r}" for k, v in sorted(cfg.params.items()))
            _note(f"{cfg.name}: {cfg.transform}({params}) at {cfg.sr:g} Hz from "
                  f"{cfg.source}")
        _note(f"device {opts.device}, {count(opts.workers, 'decoder')}, "
              f"{count(torch.get_num_threads(), 'torch thread')}")
    try:
        summary = run_extract(opts, make_reporter(quiet), decoder, found)
    except ParameterError as e:
        raise CliError(f"invalid {cfgs[0].transform} parameters: {e}") from None
    except (CliError, OSError) as e:
        from nnaudio_cli.featurefile.writer import LEAKED

        if LEAKED:  # an HDF5 handle failed mid-write: closing it may crash; skip teardown
            error(str(e))
            sys.stdout.flush()
            os._exit(EXIT_FATAL)
        raise
    except Interrupted as e:
        decoder.close()  # reap the workers before exiting at once
        interrupts.flush_streams()
        if e.assembling:
            print(f"nnaudio: interrupted while assembling {output}; all "
                  f"{count(e.total, 'input')} are kept; rerun with --resume to assemble them",
                  file=sys.stderr, flush=True)
        else:
            print(f"nnaudio: interrupted; {e.kept} of {count(e.total, 'input')} kept; rerun "
                  "with --resume to continue", file=sys.stderr, flush=True)
        return interrupts.interrupted_exit(interrupts.exit_code())
    result = summary.as_dict()
    if list_failures:  # under torchrun rank 0 lists every rank's after merging
        _list_failures(summary.failures)
    # the final result: printed with -q too (-q drops progress and warnings only)
    resumed = f" ({summary.resumed} kept from before)" if summary.resumed else ""
    skipped = skipped_text(summary.skipped)
    if skipped:
        skipped = f"; skipped {skipped}" + ("" if verbose else " (-v lists them)")
    print(
        f"nnaudio: wrote {shown_key(str(output))}: {summary.ok}/"
        f"{count(summary.files, 'file')}{resumed}, "
        f"{summary.audio_seconds / 3600:.3f} h audio in {summary.wall_seconds:.1f} s "
        f"({result['audio_seconds_per_second']:.0f}x real time){skipped}",
        file=sys.stderr,
    )
    if json_out:
        print(json.dumps(result, indent=2))
    return EXIT_PARTIAL if summary.failed else EXIT_OK
