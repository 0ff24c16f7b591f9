"""``nnaudio merge SHARDS... OUTPUT.h5``: shard files of one extraction as one feature file."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import List, Optional

import typer

from nnaudio_cli.errors import EXIT_OK, CliError
from nnaudio_cli.plumbing.flags import check_verbosity, examples, quiet_option, verbose_option
from nnaudio_cli.plumbing.text import count, shown_key

NAME = "merge"
EPILOG = examples(
    "nnaudio merge feats.shard-*-of-4.h5 feats.h5",
    "nnaudio merge --expect 8 feats.h5          # finds feats.shard-I-of-8.h5 next to it",
    "nnaudio merge --expect 8 feats.h5 --copy   # one self-contained file",
)


def run(
    paths: List[Path] = typer.Argument(
        ..., metavar="[SHARDS]... OUTPUT",
        help="Shard files, then the merged file to write (with --expect: only OUTPUT).",
    ),
    quiet: bool = quiet_option(),
    verbose: bool = verbose_option(),
    expect: Optional[int] = typer.Option(
        None, "--expect", min=1, max=1_000_000, metavar="N",
        help="Merge OUTPUT's N shard files (OUTPUT.shard-I-of-N.h5 next to it); report "
        "the missing ones by number.",
    ),
    copy: bool = typer.Option(
        False, "--copy", help="Write one self-contained file (default: a virtual master "
        "that reads the shard files in place)."
    ),
    overwrite: bool = typer.Option(
        False, "--overwrite",
        help="Replace an existing OUTPUT (only an nnaudio feature file: anything else is "
        "refused, exit 2).",
    ),
    json_out: bool = typer.Option(False, "--json", help="Print a JSON summary on stdout."),
) -> int:
    """Merge the shard files of one `nnaudio extract --shard` run into OUTPUT (every feature
    of a multi-feature extraction, with its statistics)."""
    check_verbosity(quiet, verbose)
    from nnaudio_cli.commands.extract import _list_failures, _note
    from nnaudio_cli.extract.shard import shard_path
    from nnaudio_cli.merge import merge, missing_message, missing_shards
    from nnaudio_cli.plumbing.outputs import check_owned, check_parent

    *shards, output = paths
    if expect is not None:
        if shards:
            raise CliError("with --expect N give only OUTPUT (the shards are found next to "
                           "it)", usage=True)
        missing = missing_shards(output, expect)
        if missing:
            raise CliError(missing_message(output, missing, expect))
        shards = [shard_path(output, i, expect) for i in range(expect)]
    elif not shards:
        raise CliError("give the shard files and then OUTPUT, or --expect N OUTPUT",
                       usage=True)
    for p in shards:
        if not p.exists():
            raise CliError(f"{shown_key(str(p))}: no such file")
        if not p.is_file():
            raise CliError(f"{shown_key(str(p))}: not a regular file (a shard is an HDF5 "
                           "file written by nnaudio extract --shard)")
        if p.resolve() == output.resolve():
            raise CliError(f"{shown_key(str(output))} is one of the shards", usage=True)
    if output.exists() and not overwrite:
        raise CliError(f"{output} exists; pass --overwrite to replace it", usage=True)
    check_parent(output)
    check_owned(output, overwrite=overwrite)  # never replaces a file nnaudio did not write
    summary = merge(shards, output, copy=copy, note=(lambda m: None) if quiet else _note)
    if verbose:
        _list_failures(summary.failures)
    kind = "virtual master over" if summary.virtual else "one file from"
    failed = f", {count(summary.failed, 'failed row')} carried over" if summary.failed else ""
    print(f"nnaudio: wrote {shown_key(str(output))}: {kind} {count(summary.shards, 'shard')}, "
          f"{summary.ok}/{count(summary.inputs, 'input')}{failed}", file=sys.stderr)  # with -q
    if json_out:
        print(json.dumps({"output": summary.output, "shards": summary.shards,
                          "inputs": summary.inputs, "ok": summary.ok,
                          "failed": summary.failed, "rows": summary.rows,
                          "features": summary.features,
                          "virtual": summary.virtual, "failures": summary.failures}, indent=2))
    return EXIT_OK
