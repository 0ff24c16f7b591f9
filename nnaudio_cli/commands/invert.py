"""``nnaudio invert FEATURES.h5 OUTPUT_DIR``: stored features back into audio files.

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

from nnaudio_cli.errors import EXIT_OK, EXIT_PARTIAL, CliError
from nnaudio_cli.plumbing.flags import (
    check_verbosity,
    device_option,
    examples,
    features_argument,
    quiet_option,
    threads_option,
    verbose_option,
)

NAME = "invert"
EPILOG = examples(
    "nnaudio invert stft.h5 audio_out/",
    "nnaudio invert cqt.h5 audio_out/ --iterations 4   # cqt.h5 from -c cqt_invertible",
    "nnaudio invert feats.h5 audio_out/ --feature mel128 --only a/b.wav --overwrite --json",
)


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


def run(
    features: Path = features_argument(),
    output_dir: Path = typer.Argument(
        ..., file_okay=False,
        help="Folder for the audio files (created if missing; its parent must exist).",
    ),
    feature: Optional[str] = typer.Option(
        None, "--feature", metavar="NAME",
        help="The feature to invert, in a file with several (extract -c A -c B). Without "
        "it: the file's only feature, or the only one --method applies to; otherwise a "
        "usage error listing each feature and how it inverts.",
    ),
    method: Method = typer.Option(
        Method.auto, "--method", "-m",
        help="Inversion method; auto: complex STFT -> istft, complex CQT -> icqt, "
        "magnitude STFT or mel (power or magnitude) -> griffin-lim.",
    ),
    fmt: AudioFormat = typer.Option(AudioFormat.wav, "--format", "-f", help="wav or flac."),
    only: Optional[List[str]] = typer.Option(
        None, "--only", help="Invert just this key (repeatable)."
    ),
    overwrite: bool = typer.Option(
        False, "--overwrite", help="Replace audio files that already exist."
    ),
    iterations: Optional[int] = typer.Option(
        None, "--iterations", min=1,
        help="iCQT conjugate-gradient steps (default 16) or Griffin-Lim iterations "
        "(default 32).",
    ),
    tolerance: Optional[float] = typer.Option(
        None, "--tolerance", min=0.0,
        help="Stop iterating early: iCQT once the residual fell by this factor (default "
        "1e-4), Griffin-Lim once the spectral convergence improves by less than this "
        "(relative, default 0: never).",
    ),
    device: str = device_option(),
    segment_seconds: float = typer.Option(
        30.0, "--segment-seconds", min=1.0,
        help="Longer inputs are inverted in segments of this many seconds (bounded memory).",
    ),
    threads: Optional[int] = threads_option(
        "torch's own; invert runs no decoder processes"),
    json_out: bool = typer.Option(False, "--json", help="Print a JSON summary on stdout."),
    quiet: bool = quiet_option(),
    verbose: bool = verbose_option(),
) -> int:
    """Turn the features stored in FEATURES back into audio files under OUTPUT_DIR.

    Invertible: complex STFT (istft), complex CQT1992v2/CQT2010v2 (icqt), magnitude STFT
    and mel spectrograms (griffin-lim). float16/bfloat16 values are widened and features
    stored in dB (extract --db) are converted back to linear first.

    For audio back from a CQT, extract with the cqt_invertible preset (complex, 100 bins
    32.7 Hz-9.96 kHz, hop 32 at 22.05 kHz: a hop small enough for its top bins) and invert
    with --iterations 4 (~35 dB in-band SNR on speech; 2 give ~30 dB, 8 ~43 dB). cqt84's
    hop 512 undersamples every bin above ~780 Hz (invert warns and names the hop that
    works); only the band between the lowest and the top bin comes back.

    Output names: each key's relative path with its last extension replaced by the
    format's (sub/a.flac -> sub/a.wav); a segment key from extract --files gets it
    appended (a.wav@1.5-3 -> a.wav@1.5-3.wav). Keys that would share a name each keep their whole
    name plus the extension (a.flac -> a.flac.wav, a.wav -> a.wav.wav). Unsafe keys and
    names too long for the file system are failed rows (exit 3); --json maps every
    written key to its file. Existing files are kept unless --overwrite.
    """
    check_verbosity(quiet, verbose)
    import torch

    from nnaudio_cli.invert import invert_file, show
    from nnaudio_cli.plumbing.devices import resolve_device
    from nnaudio_cli.plumbing.outputs import check_parent
    from nnaudio_cli.plumbing.progress import make_reporter

    dev = resolve_device(device)
    check_parent(output_dir)  # the same rule as extract's OUTPUT
    if threads is not None:
        torch.set_num_threads(threads)
    if verbose:
        print(f"nnaudio: device {dev}, {torch.get_num_threads()} torch thread(s)",
              file=sys.stderr)
    reporter = make_reporter(quiet, label="invert")
    try:
        summary = invert_file(
            features, output_dir, method.value, fmt.value, list(only or []),
            progress=lambda key, seconds: reporter.advance(seconds),
            start=reporter.start, overwrite=overwrite, feature=feature, iterations=iterations,
            tolerance=tolerance, device=dev, segment_seconds=segment_seconds,
        )
    except CliError:
        raise
    except OSError as e:
        raise CliError(f"cannot write to {output_dir}: {e.strerror or e}") from None
    reporter.finish()
    for f in summary.failures:
        text = " ".join(f["reason"].split())
        print(f"nnaudio: failed: {show(f['key'])}: {text}", file=sys.stderr)
    if verbose:
        for key, path in summary.files.items():
            print(f"nnaudio: wrote {show(key)} -> {show(str(path))}", file=sys.stderr)
    from nnaudio_cli.plumbing.text import count

    print(  # the final result: with -q too
        f"nnaudio: wrote {count(len(summary.written), 'file')} to {output_dir} from "
        f"{summary.feature} with {summary.method} "
        f"({summary.audio_seconds:.1f} s of audio in {summary.wall_seconds:.1f} s)",
        file=sys.stderr,
    )
    if json_out:
        print(json.dumps({**summary.as_dict(), "threads": torch.get_num_threads()}, indent=2))
    return EXIT_PARTIAL if summary.failures else EXIT_OK
