"""What one ``nnaudio extract`` run is asked to do (:class:`ExtractOptions`) and how it stops
early (:class:`ExtractError`, :class:`Interrupted`); torch-free.

The command builds one :class:`ExtractOptions` from its flags and hands it to
:func:`~nnaudio_cli.extract.run.run_extract`; nothing here imports torch, so the command can
build it without paying for the import.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nnaudio_cli.errors import CliError
from nnaudio_cli.plumbing import text

if TYPE_CHECKING:  # pragma: no cover - annotations only
    import torch

    from nnaudio_cli.config import ExtractConfig
    from nnaudio_cli.extract.listing import InputList


class ExtractError(CliError, RuntimeError):
    """A fatal problem that stops the extraction (exit code 1), one line."""


class Interrupted(Exception):
    """The run was interrupted (SIGINT/SIGTERM); ``kept`` of ``total`` inputs are committed.

    ``assembling`` is True when it happened while the output was being assembled (every
    input is then kept; ``--resume`` only assembles).
    """

    def __init__(self, kept: int, total: int, assembling: bool = False) -> None:
        super().__init__(f"interrupted; {kept} of {text.count(total, 'input')} kept")
        self.kept = kept
        self.total = total
        self.assembling = assembling


def _no_note(msg: str) -> None:
    """The default ``note``: say nothing."""


@dataclass(frozen=True)
class ExtractOptions:
    """Everything ``nnaudio extract`` needs besides the configuration."""

    #: the folder searched (None with ``input_list``)
    input_dir: Path | None
    output: Path
    #: the features of the pass, in stored order (distinct ``name``s)
    features: list[ExtractConfig]
    device: torch.device
    mono: bool = True
    workers: int = 1
    batch_seconds: float = 60.0
    segment_seconds: float | None = None
    compression: str = "lzf"
    command_line: list[str] = field(default_factory=list)
    resume: bool = False
    overwrite: bool = False
    nan_policy: str = "reject"
    note: Callable[[str], Any] = _no_note
    #: ``(index, count)``: extract only that shard of the inputs (see
    #: :mod:`~nnaudio_cli.extract.shard`); ``output`` is then the shard's own file
    shard: tuple[int, int] | None = None
    #: stored dtype of every feature: float32, float16 or bfloat16
    dtype: str = "float32"
    #: store decibels (``--db``), with librosa's ``power_to_db`` parameters
    db: bool = False
    db_ref: float = 1.0
    db_amin: float | None = None
    db_top_db: float | None = 80.0
    #: ``--files``: the inputs of a list (then ``input_dir`` is not searched)
    input_list: InputList | None = None
    #: ``--include``/``--exclude`` glob patterns for searching ``input_dir``
    include: list[str] = field(default_factory=list)
    exclude: list[str] = field(default_factory=list)
    #: the merged output of a sharded run (its files are never taken as inputs either)
    target: Path | None = None
    #: ``-v``: list the skipped files as notes
    verbose: bool = False
