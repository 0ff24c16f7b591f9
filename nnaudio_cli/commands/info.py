"""``nnaudio info FEATURES.h5``: what a feature file contains and how it was made."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from nnaudio_cli.errors import EXIT_OK, CliError
from nnaudio_cli.flags import check_verbosity, examples, quiet_option, verbose_option

NAME = "info"
EPILOG = examples(
    "nnaudio info feats.h5",
    "nnaudio info feats.h5 --key sub/song.flac",
    "nnaudio info feats.h5 --json | jq .transform",
)


def run(
    features: Path = typer.Argument(..., exists=True, dir_okay=False, help="HDF5 feature file."),
    json_out: bool = typer.Option(False, "--json", help="Print the description as JSON."),
    failed: bool = typer.Option(False, "--failed", help="List every failed input."),
    key: Optional[str] = typer.Option(
        None, "--key", "-k",
        help="Show one input's row instead: status, reason, rate, length, frames, rows, source.",
    ),
    quiet: bool = quiet_option(),
    verbose: bool = verbose_option(),
) -> int:
    """Show what FEATURES contains and how it was made (--key: one input's row)."""
    check_verbosity(quiet, verbose)
    from nnaudio_cli.describe import describe, describe_key, render, render_key

    try:
        desc = describe(features)
    except (OSError, ValueError, KeyError) as e:
        raise CliError(
            f"{features}: not a readable nnaudio feature file ({' '.join(str(e).split())})"
        ) from None
    import h5py

    from nnaudio_cli.store import validate_layout

    try:
        with h5py.File(features, "r") as h5:
            validate_layout(h5)
    except (OSError, ValueError) as e:
        raise CliError(f"{features}: {e}") from None
    if key is not None:
        row = describe_key(features, key)
        if json_out:
            print(json.dumps(row, indent=2))
        else:
            render_key(row)
    elif json_out:
        print(json.dumps(desc, indent=2))
    else:
        render(desc, show_all_failed=failed or verbose)
    return EXIT_OK
