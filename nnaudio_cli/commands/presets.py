"""``nnaudio presets``: the presets ``--config NAME`` can use, with their key parameters."""

from __future__ import annotations

import json

import typer

from nnaudio_cli.errors import EXIT_OK
from nnaudio_cli.plumbing.flags import check_verbosity, examples, quiet_option, verbose_option

NAME = "presets"
EPILOG = examples(
    "nnaudio presets",
    "nnaudio presets --verbose",
    "nnaudio presets --json | jq '.[].name'",
)


def run(
    json_out: bool = typer.Option(False, "--json", help="Print the presets as JSON."),
    quiet: bool = quiet_option(),
    verbose: bool = verbose_option(),
) -> int:
    """List the presets in configs/ (./configs first): transform, sample rate, parameters."""
    check_verbosity(quiet, verbose)
    from nnaudio_cli.presets import list_presets, render

    rows = list_presets()
    if json_out:
        print(json.dumps(rows, indent=2))
    else:
        render(rows, verbose=verbose)
    return EXIT_OK
