"""``nnaudio info FEATURES.h5``: what a feature file contains and how it was made."""

from __future__ import annotations

import json
from functools import partial
from pathlib import Path
from typing import Optional

import typer

from nnaudio_cli.errors import EXIT_OK
from nnaudio_cli.plumbing.flags import (
    check_verbosity,
    examples,
    features_argument,
    quiet_option,
    verbose_option,
)

NAME = "info"
EPILOG = examples(
    "nnaudio info feats.h5 --stats",
    "nnaudio info feats.h5 --key sub/song.flac --feature mel128",
    "nnaudio info merged.h5 --verify   # recompute every (shard's) checksum",
)


def run(
    features: Path = features_argument(),
    json_out: bool = typer.Option(False, "--json", help="Print the description as JSON."),
    failed: bool = typer.Option(False, "--failed", help="List every failed input."),
    key: Optional[str] = typer.Option(
        None, "--key", "-k",
        help="Show one input's row instead: status, reason, rate, length, frames, rows, source.",
    ),
    feature: Optional[str] = typer.Option(
        None, "--feature", help="Show only this feature (default: every feature)."
    ),
    stats: bool = typer.Option(
        False, "--stats",
        help="Per-bin count, mean and std of each feature (text: first and last bins; "
        "--json: every bin).",
    ),
    verify: bool = typer.Option(
        False, "--verify",
        help="Recompute every checksum the file depends on (a merged master: each shard's, "
        "against the one recorded at the merge); reads every stored row.",
    ),
    quiet: bool = quiet_option(),
    verbose: bool = verbose_option(),
) -> int:
    """Show what FEATURES contains and how it was made: every feature (or --feature), the
    shared index, --stats per-bin statistics; --key: one input's row; --verify: the
    checksums."""
    check_verbosity(quiet, verbose)
    from nnaudio_cli.info import (
        check_file,
        describe,
        describe_key,
        render,
        render_key,
        unreadable,
    )

    check_file(features, feature)  # unreadable, damaged (exit 1) or no such feature (exit 2)
    if verify:
        from nnaudio_cli.featurefile.checksum import verify_file

        for line in verify_file(features):  # a mismatch: one line naming the file (exit 1)
            print(line)
        return EXIT_OK
    # --key: one input's row; else the whole file. Either is read first (a read error is
    # one line, exit 1), then printed as JSON or as text.
    if key is not None:
        read, show = partial(describe_key, features, key, feature), render_key
    else:
        read = partial(describe, features, feature, stats)
        show = partial(render, show_all_failed=failed or verbose)
    try:
        found = read()
    except (OSError, ValueError, KeyError) as e:
        raise unreadable(features, e) from None
    if json_out:
        print(json.dumps(found, indent=2))
    else:
        show(found)
    return EXIT_OK
