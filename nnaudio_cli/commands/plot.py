"""``nnaudio plot FEATURES.h5 KEY -o out.png``: one input's features as a spectrogram image."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from nnaudio_cli.errors import EXIT_OK
from nnaudio_cli.plumbing.flags import (
    check_verbosity,
    examples,
    features_argument,
    positive_finite,
    quiet_option,
    verbose_option,
)

NAME = "plot"
EPILOG = examples(
    "nnaudio plot feats.h5 speech.wav -o speech.png",
    "nnaudio plot feats.h5 sub/song.flac -o song.png --feature cqt84 --linear",
    "nnaudio plot feats.h5 tone.wav -o tone.svg --top-db 60 --width 1600 --height 600",
)


def run(
    features: Path = features_argument(),
    key: str = typer.Argument(..., help="The input to draw (its relative path, see nnaudio info)."),
    output: Path = typer.Option(
        ..., "--output", "-o", dir_okay=False,
        help="Image to write; the format follows the extension (png, pdf, svg, ...).",
    ),
    feature: Optional[str] = typer.Option(
        None, "--feature", help="The feature to draw (needed when the file holds several).",
    ),
    db: Optional[bool] = typer.Option(
        None, "--db/--linear",
        help="dB colour scale (default for power, magnitude and features stored in dB) or "
        "linear values (default for MFCC, phase and CFP).",
    ),
    top_db: float = typer.Option(
        80.0, "--top-db", callback=positive_finite("dB"),
        help="dB range below the clip's peak that the colours span.",
    ),
    overwrite: bool = typer.Option(
        False, "--overwrite", help="Replace an existing image (a symlink there is replaced, "
        "never written through)."
    ),
    width: int = typer.Option(1000, "--width", min=200, max=20000, help="Image width, pixels."),
    height: int = typer.Option(400, "--height", min=150, max=20000, help="Image height, pixels."),
    quiet: bool = quiet_option(),
    verbose: bool = verbose_option(),
) -> int:
    """Draw KEY's features: time in seconds, frequency in Hz, dB colour scale with a colour bar
    (needs matplotlib: pip install 'nnaudio-cli[plot]')."""
    check_verbosity(quiet, verbose)
    from nnaudio_cli.plot import plot_features
    from nnaudio_cli.plumbing.text import count, shown_key

    done = plot_features(features, key, output, feature, db=db, top_db=top_db, width=width,
                         height=height, overwrite=overwrite)
    # the final result: with -q too
    print(f"{shown_key(done['out'])}: {shown_key(key)} ({done['feature']}), "
          f"{count(done['frames'], 'frame')} x {count(done['bins'], 'bin')}"
          + (f" x {count(done['channels'], 'channel')}" if done["channels"] > 1 else "")
          + f", {done['scale']} {done['vmin']:.4g} .. {done['vmax']:.4g}")
    return EXIT_OK
