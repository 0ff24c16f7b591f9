"""The ``nnaudio invert`` command (registered in :mod:`nnaudio_cli.main`).

Exit codes as ``extract``: 0 every key written, 1 fatal (not a feature file, not invertible),
2 usage, 3 finished but some keys were refused (unsafe names) or failed.
"""

from __future__ import annotations

import json
import sys
from enum import Enum
from pathlib import Path
from typing import List, Optional

import typer


class Method(str, Enum):
    """How to get audio back."""

    auto = "auto"
    istft = "istft"
    icqt = "icqt"
    griffin_lim = "griffin-lim"


class AudioFormat(str, Enum):
    """Container of the written audio."""

    wav = "wav"
    flac = "flac"


def invert(
    features: Path = typer.Argument(..., exists=True, dir_okay=False, help="HDF5 feature file."),
    output_dir: Path = typer.Argument(..., file_okay=False, help="Folder for the audio files."),
    method: Method = typer.Option(Method.auto, "--method", "-m", help="Inversion method."),
    fmt: AudioFormat = typer.Option(AudioFormat.wav, "--format", "-f", help="wav or flac."),
    only: Optional[List[str]] = typer.Option(
        None, "--only", help="Invert just this key (repeatable)."
    ),
    json_out: bool = typer.Option(False, "--json", help="Print a JSON summary on stdout."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress output."),
) -> int:
    """Turn the features stored in FEATURES back into audio files under OUTPUT_DIR."""
    from nnaudio_cli.invert import InvertError, invert_file
    from nnaudio_cli.main import EXIT_FATAL, EXIT_OK, EXIT_PARTIAL, _error
    from nnaudio_cli.progress import make_reporter

    reporter = make_reporter(quiet, label="invert")
    try:
        output_dir.mkdir(parents=True, exist_ok=True)
        summary = invert_file(
            features, output_dir, method.value, fmt.value, list(only or []),
            progress=lambda key, seconds: reporter.advance(seconds),
            start=reporter.start,
        )
    except InvertError as e:
        _error(str(e))
        return EXIT_FATAL
    except OSError as e:
        _error(f"cannot write to {output_dir}: {e.strerror or e}")
        return EXIT_FATAL
    reporter.finish()
    for f in summary.failures:
        print(f"nnaudio: failed: {f['key']}: {f['reason']}", file=sys.stderr)
    if not quiet:
        print(
            f"nnaudio: wrote {len(summary.written)} files to {output_dir} with {summary.method} "
            f"({summary.audio_seconds:.1f} s of audio in {summary.wall_seconds:.1f} s)",
            file=sys.stderr,
        )
    if json_out:
        print(json.dumps(summary.as_dict(), indent=2))
    return EXIT_PARTIAL if summary.failures else EXIT_OK
