"""The index row of one input: :class:`IndexRow`, what ``/index`` stores about it.

A row is made when an input is finished (its features stored, or its failure known), travels
with its part (:class:`~nnaudio_cli.extract.parts.Source`) and is written again, unchanged,
by the assembly; :meth:`IndexRow.as_fields` gives the writer its
:data:`~nnaudio_cli.featurefile.layout.INDEX_COLUMNS`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from nnaudio_cli.extract.audio import SourceInfo
from nnaudio_cli.featurefile.layout import INDEX_COLUMNS, attr_value, column_default


@dataclass(frozen=True)
class IndexRow:
    """One input's index fields and its rows per feature.

    Attributes
    ----------
    key : the input's key (as given, or as stored when read back from a file)
    status : ``"ok"`` or ``"failed"``
    reason : why it failed (``""`` when ok)
    sr, samples, channels, duration, size, mtime : of its source (see
        :class:`~nnaudio_cli.extract.audio.SourceInfo`)
    stored_channels : channels stored per frame (0 for a failed input)
    n_rows : its data rows per feature (none for a failed input)
    """

    key: str
    status: str
    reason: str
    sr: float
    samples: int
    channels: int
    duration: float
    size: int
    mtime: float
    stored_channels: int
    n_rows: dict[str, int] = field(default_factory=dict)

    @classmethod
    def of(cls, key: str, info: SourceInfo, status: str, reason: str = "",
           stored_channels: int = 0, n_rows: Mapping[str, int] | None = None) -> IndexRow:
        """The row of an input finished now, from what decoding learnt of its source."""
        return cls(key, status, reason, float(info.sr), int(info.samples),
                   int(info.channels), float(info.duration), int(info.size),
                   float(info.mtime), int(stored_channels), dict(n_rows or {}))

    @classmethod
    def read(cls, index: Mapping[str, Any], i: int, n_rows: Mapping[str, int]) -> IndexRow:
        """Row ``i`` of the ``/index`` columns of a file (values as stored)."""
        fields = {c: attr_value(index[c][i]) if c in index else column_default(dtype)
                  for c, dtype in INDEX_COLUMNS.items()}
        return cls(**fields, n_rows=dict(n_rows))

    @property
    def ok(self) -> bool:
        """Whether the input's features were stored."""
        return self.status == "ok"

    def as_fields(self) -> dict[str, Any]:
        """The :data:`~nnaudio_cli.featurefile.layout.INDEX_COLUMNS` fields, for
        :meth:`~nnaudio_cli.featurefile.writer.FeatureWriter.add_row`."""
        return {c: getattr(self, c) for c in INDEX_COLUMNS}
