"""Stage 1, inputs: what a run extracts, without torch (``extract`` calls it while torch
loads): the ``--files`` list, or the audio files found under the input folder, with the
entries it skips counted by kind (see :mod:`nnaudio_cli.extract.discover`)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from nnaudio_cli.errors import CliError
from nnaudio_cli.extract.discover import discover, own_files
from nnaudio_cli.extract.listing import Input, InputList
from nnaudio_cli.plumbing.text import skipped_text


def select_inputs(
    input_dir: Path | None,
    input_list: InputList | None,
    include: list[str],
    exclude: list[str],
    output: Path,
    target: Path | None,
    note: Callable[[str], object] | None = None,
) -> tuple[list[Input], dict[str, int]]:
    """The inputs of the run, sorted by key, and the skipped entries per kind.

    Parameters
    ----------
    input_dir, input_list : the folder, or the ``--files`` list (one of them)
    include, exclude : ``--include``/``--exclude`` globs (folders only)
    output, target : the run's output and, under torchrun, the merged file: never inputs
    note : called with one ``skipped: PATH (why)`` line per skipped entry (``-v``)

    Raises
    ------
    CliError
        Nothing to extract (every file of the folder skipped, or an empty list): exit 1.
    """
    if input_list is not None:
        if not input_list.inputs:
            raise CliError(f"--files {input_list.name}: the list holds no inputs")
        return list(input_list.inputs), {}
    if input_dir is None:
        raise CliError("internal error: neither an input folder nor a list")
    found = discover(input_dir, include, exclude, own_files(input_dir, output, target))
    if note is not None:
        for rel, group in found.skipped:
            note(f"skipped: {rel} ({_skip_reason(group)})")
    counts = found.skipped_counts()
    if not found.keys:
        what = f"; skipped {skipped_text(counts)}" if counts else ""
        patterns = " matching --include/--exclude" if include or exclude else ""
        raise CliError(
            f"no audio files{patterns} under {input_dir}{what} (looked for .wav .flac "
            ".ogg .opus .mp3 .aiff .m4a .mp4 .webm .mkv .wma ...)"
        )
    return [Input(k, str(input_dir / k)) for k in found.keys], counts


def _skip_reason(group: str) -> str:
    if group.startswith("("):
        return group[1:-1]
    return f"not an audio extension: {group}"
