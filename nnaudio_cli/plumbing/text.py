"""How names and messages are shown on the terminal (no heavy imports: workers use it too)."""

from __future__ import annotations

from nnaudio_cli import DISTRIBUTION


def install_hint(extra: str) -> str:
    """The command that installs this project with an extra.

    Examples
    --------
    >>> install_hint("plot")
    "pip install 'nnaudio-cli[plot]'"
    """
    return f"pip install '{DISTRIBUTION}[{extra}]'"


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


def stored_key(key: str) -> str:
    """The text a key is stored under in a feature file's ``/index/key``.

    A key that is valid UTF-8 is stored unchanged. A file name that is not (a Latin-1
    ``é``, byte 0xE9, reaches Python as the lone surrogate ``\\udce9``, see
    :func:`os.fsdecode`) is stored as Python's ``repr`` of it, quotes included:
    ``'caf\\udce9.wav'``, the same text every message shows (:func:`shown_key`).
    :func:`key_from_stored` inverts it; ``os.fsencode(key_from_stored(text))`` gives the
    file name's bytes.

    Examples
    --------
    >>> stored_key("a/b.wav")
    'a/b.wav'
    >>> print(stored_key(b"caf\\xe9.wav".decode("utf-8", "surrogateescape")))
    'caf\\udce9.wav'
    """
    try:
        key.encode("utf-8")
    except UnicodeEncodeError:
        return repr(key)
    return key


def key_from_stored(text: str) -> str:
    """The key (as :func:`os.fsdecode` gives file names) that :func:`stored_key` stored as
    ``text``; any other text is returned unchanged.

    Examples
    --------
    >>> key_from_stored("'caf\\\\udce9.wav'") == "caf\\udce9.wav"
    True
    >>> key_from_stored("'quoted'.wav")
    "'quoted'.wav"
    """
    if len(text) > 2 and text[0] in "'\"" and text[-1] == text[0] and "\\" in text:
        import ast

        try:
            key = ast.literal_eval(text)
        except (ValueError, SyntaxError, MemoryError, RecursionError):
            return text
        if isinstance(key, str) and stored_key(key) == text:
            return key
    return text


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


def skipped_text(counts: dict[str, int]) -> str:
    """Skipped entries per group as shown in messages, most first: ``{".txt": 2, ".json":
    1}`` -> ``"3 files (.txt 2, .json 1)"``; ``""`` for none.

    Examples
    --------
    >>> skipped_text({".json": 1, ".txt": 2})
    '3 files (.txt 2, .json 1)'
    """
    total = sum(counts.values())
    if not total:
        return ""
    groups = ", ".join(f"{g} {n}" for g, n in sorted(counts.items(), key=lambda kv: -kv[1]))
    return f"{total} file{'s' if total != 1 else ''} ({groups})"


def one_line(exc: BaseException) -> str:
    """A one-line description of an exception (at most 300 characters)."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= 300 else text[:297] + "..."
