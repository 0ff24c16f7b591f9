"""How names and messages are shown on the terminal (no heavy imports: workers use it too)."""

from __future__ import annotations


def shown_key(key: str) -> str:
    """A key (relative path) as printed in any message: unchanged when it is printable,
    else Python's ``repr`` of it (quoted, with ``\\n``, ``\\t``, ``\\x1b``... escaped).

    A file name holding a newline or a terminal escape can thus never split a stderr line
    or drive the terminal, and ``ast.literal_eval`` of the shown text gives the key back.

    Examples
    --------
    >>> shown_key("a/b.wav")
    'a/b.wav'
    >>> print(shown_key("bad\\nname.wav"))
    'bad\\nname.wav'
    """
    return key if key.isprintable() else repr(key)
