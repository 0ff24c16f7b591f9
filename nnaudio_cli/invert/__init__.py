"""``nnaudio invert``: stored features back to audio files.

The method follows from the file's own attributes: complex uniform-grid STFT -> iSTFT,
complex CQT -> iCQT, magnitude STFT or mel power spectrogram -> Griffin-Lim (mel bands are
first mapped back to linear frequency by a batched non-negative least-squares solve,
:class:`nnaudio_core.features.InverseMelScale`).
Everything else (MFCC, log-frequency STFT, phase-only or magnitude-only CQT) is refused.

How the work is cut (bounded memory, few module calls):

- the inverse modules are built once per file (one centred, one uncentred for segments);
- keys of at most ``segment`` frames are inverted whole, and consecutive keys with the same
  frame count and length are stacked into one batch (one module call for all of them);
- longer keys are cut into segments of ``segment`` frames, each inverted with ``context``
  extra frames on both sides by the uncentred inverse; only the segment's own samples are
  kept and appended to the output file. For iSTFT the context covers every frame that
  touches a kept sample, so the result equals the one-shot inverse to float32 round-off;
  for iCQT and Griffin-Lim (iterative) it is the same to within the solver's accuracy, and
  Griffin-Lim starts each segment from the previous segment's phase so segments join.

Feature choice: a file may hold several features (``extract -c A -c B``). ``feature``
(``--feature NAME``) names the one to invert; without it, a one-feature file inverts its
feature and a file with several inverts the only feature the requested method applies to
(``--method auto``: the only invertible one, e.g. mel128 beside mfcc). When none or several
qualify it is a usage error naming every feature and how it could be inverted.

Values are read decoded (float16 / bfloat16 widened to float32) and features stored in dB
(``extract --db``) are turned back into linear power or magnitude before inversion.

Output names (also in ``nnaudio invert --help`` and docs/cli.md): a key's relative path with
its last extension replaced by the format's (``sub/a.flac`` -> ``sub/a.wav``); a key that
ends in no extension, such as a segment's ``a.wav@1.5-3``, gets it appended
(``a.wav@1.5-3.wav``). When several
keys map to one name, each of them keeps its whole name and gets the extension appended
(``a.flac`` -> ``a.flac.wav``, ``a.wav`` -> ``a.wav.wav``). Any other clash, an unsafe key
(absolute, ``..``, NUL) or a name component over the file system's limit is a failed row.
Keys appear in every message as :func:`nnaudio_cli.plumbing.text.shown_key` shows them (``repr``-
escaped unless printable), so a newline in a key cannot split a line.

The modules: :mod:`~nnaudio_cli.invert.plan` (method, feature and output names, before any
audio), :mod:`~nnaudio_cli.invert.inverse` (one inverse object per method) and
:mod:`~nnaudio_cli.invert.run` (:func:`invert_file` and :class:`InvertRun`, which drives
the keys through the inverse into audio files).
"""

from __future__ import annotations

from nnaudio_cli.invert.inverse import (
    DEFAULT_ITERATIONS,
    DEFAULT_TOLERANCE,
    GriffinLimInverse,
    IcqtInverse,
    Inverse,
    IstftInverse,
    PhaseState,
    build_inverse,
)
from nnaudio_cli.invert.plan import (
    CQT_NAMES,
    FORMATS,
    METHODS,
    InvertError,
    choose_method,
    plan_outputs,
    select_feature,
    show,
)
from nnaudio_cli.invert.run import (
    BATCH_FRAMES,
    PENDING_FRAMES,
    InvertRun,
    InvertSummary,
    invert_file,
)

__all__ = [
    "BATCH_FRAMES", "CQT_NAMES", "DEFAULT_ITERATIONS", "DEFAULT_TOLERANCE", "FORMATS",
    "METHODS", "PENDING_FRAMES", "GriffinLimInverse", "IcqtInverse", "Inverse", "InvertError",
    "InvertRun", "InvertSummary", "IstftInverse", "PhaseState", "build_inverse",
    "choose_method", "invert_file", "plan_outputs", "select_feature", "show",
]
