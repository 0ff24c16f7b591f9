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


def count(n: int, noun: str, plural: str | None = None) -> str:
    """``n`` with its noun, singular for exactly one: every count a message shows goes
    through here, so no message reads "1 files" or "2 file(s)".

    ``plural`` defaults to ``noun + "s"``. In "ok/total" forms the noun follows the total:
    ``f"{ok}/{count(total, 'file')}"``.

    Examples
    --------
    >>> count(1, "file"), count(0, "file"), count(3, "thread"), count(2, "process", "processes")
    ('1 file', '0 files', '3 threads', '2 processes')
    """
    return f"{n} {noun if n == 1 else (plural or noun + 's')}"


def unknown_key(key: str, keys: list[str], where: str) -> str:
    """The one-line message for a key that ``where`` (a file) does not hold, with the
    closest stored keys (``difflib``) as a did-you-mean, or an example key when none is close.

    Examples
    --------
    >>> unknown_key("tone_a44.wav", ["tone_a440.wav", "chirp.wav"], "f.h5")
    "no input tone_a44.wav in f.h5; did you mean 'tone_a440.wav'?"
    """
    import difflib

    close = difflib.get_close_matches(key, keys, n=3, cutoff=0.6)
    if close:
        hint = "did you mean " + " or ".join(repr(k) for k in close) + "?"
    elif keys:
        hint = (f"it holds {count(len(keys), 'input')}, e.g. {shown_key(keys[0])} "
                "(nnaudio info lists them)")
    else:
        hint = "it holds no inputs"
    return f"no input {shown_key(key)} in {shown_key(where)}; {hint}"
