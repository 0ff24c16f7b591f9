"""``nnaudio invert``: stored features back to audio files.

The method follows from the file's own attributes: complex uniform-grid STFT -> iSTFT,
complex CQT -> iCQT, magnitude STFT or mel power spectrogram -> Griffin-Lim (mel bands are
first mapped back to linear frequency by a batched non-negative least-squares solve).
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
"""

from __future__ import annotations

import errno
import json
import math
import os
import re
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import h5py
import numpy as np
import soundfile as sf
import torch

from nnaudio_cli.errors import CliError
from nnaudio_cli.featurefile.layout import READABLE_VERSIONS, feature_group, feature_names
from nnaudio_cli.featurefile.reader import FeatureFile
from nnaudio_cli.featurefile.validate import FeatureFileError, validate_layout
from nnaudio_cli.plumbing.outputs import remove_stale, replacing
from nnaudio_cli.plumbing.text import count, shown_key

METHODS = ("auto", "istft", "icqt", "griffin-lim")
FORMATS = {"wav": ("WAV", "FLOAT"), "flac": ("FLAC", "PCM_24")}
CQT_NAMES = ("CQT1992v2", "CQT2010v2")
#: Default iterations per method (iCQT: conjugate-gradient steps; Griffin-Lim: iterations).
DEFAULT_ITERATIONS = {"icqt": 16, "griffin-lim": 32}
#: Default relative tolerance per method (0: always run every iteration).
DEFAULT_TOLERANCE = {"icqt": 1e-4, "griffin-lim": 0.0}
#: Projected-gradient steps of the mel -> linear non-negative least squares.
NNLS_STEPS = 50
#: frames per NNLS block (n_freq x 256 float32 values stay in the CPU cache)
NNLS_COLUMNS = 256
#: Frames stacked into one batch of equal-length keys (bounds memory).
BATCH_FRAMES = 8192
#: Frames of short keys held in memory before they are inverted (bounds memory).
PENDING_FRAMES = 16384


#: Write errors that belong to one key's name, not to the disk (a failed row, not fatal).
_KEY_ERRNOS = (errno.ENAMETOOLONG, errno.EINVAL, errno.EILSEQ, errno.ENOTDIR, errno.EISDIR)


class InvertError(CliError, ValueError):
    """A file or request that cannot be inverted; the message is one line for the user.

    ``usage`` marks a wrong request (exit 2) rather than a bad file (exit 1).
    """


def show(key: str) -> str:
    """A key as it appears in messages (:func:`nnaudio_cli.plumbing.text.shown_key`: printable keys
    as they are, others ``repr``-escaped, so no raw newline or control character)."""
    return shown_key(key)


@dataclass
class InvertSummary:
    """What ``invert`` did, for the log line and ``--json``."""

    method: str
    feature: str = ""
    written: list[str] = field(default_factory=list)
    files: dict[str, str] = field(default_factory=dict)
    failures: list[dict[str, str]] = field(default_factory=list)
    audio_seconds: float = 0.0
    wall_seconds: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "feature": self.feature,
            "written": len(self.written),
            "failed": len(self.failures),
            "files": self.files,
            "failures": self.failures,
            "audio_seconds": self.audio_seconds,
            "wall_seconds": self.wall_seconds,
            **self.extra,
        }


def choose_method(config: dict[str, Any], requested: str) -> str:
    """The inversion method for a stored transform config, or :class:`InvertError`."""
    name = config.get("transform")
    params = config.get("params", {})
    fmt = params.get("output_format")
    if name == "STFT":
        if params.get("freq_scale", "no") != "no":
            raise InvertError(
                f"cannot invert a freq_scale='{params.get('freq_scale')}' STFT: only the "
                "uniform grid (freq_scale='no') is invertible"
            )
        auto = "istft" if fmt == "Complex" else "griffin-lim" if fmt == "Magnitude" else None
    elif name in CQT_NAMES:
        auto = "icqt" if fmt == "Complex" else None
    elif name == "MelSpectrogram":
        auto = "griffin-lim"
    else:
        auto = None
    if auto is None:
        raise InvertError(
            f"cannot invert {name} features with output_format={fmt!r}: invertible are "
            "complex STFT (istft), complex CQT1992v2/CQT2010v2 (icqt), and magnitude STFT or "
            "mel spectrograms (griffin-lim)"
        )
    if requested == "auto":
        return auto
    # a complex STFT may also go through Griffin-Lim (its magnitude); nothing else mixes
    allowed = {"istft": ("istft", "griffin-lim"), "icqt": ("icqt",),
               "griffin-lim": ("griffin-lim",)}
    if requested not in allowed[auto]:
        raise InvertError(
            f"--method {requested} does not apply to {name} ({fmt}) features; use "
            f"{' or '.join(allowed[auto])}", usage=True,
        )
    return requested


def _how(config: dict[str, Any], requested: str) -> str | None:
    """The method ``requested`` resolves to for ``config``, or None when it does not apply."""
    try:
        return choose_method(config, requested)
    except InvertError:
        return None


def select_feature(path: Path, feature: str | None, requested: str) -> str | None:
    """Check a feature file before it is opened for reading, and pick its feature.

    The layout of every feature is validated first (a damaged index is a one-line
    :class:`InvertError` before anything reads it). ``feature`` given: it must be in the file
    (else a usage error naming the choices). Not given: None for a one-feature file (the
    reader takes its only feature); with several, the one feature that ``requested`` applies
    to, else a usage :class:`InvertError` (one line) naming every feature with the method
    ``auto`` would use for it (or "not invertible"). Files that are not feature files are
    left to the reader (returned as is).
    """
    try:
        h5 = h5py.File(path, "r")
    except OSError:
        return feature
    with h5:
        if h5.attrs.get("layout_version") not in READABLE_VERSIONS:
            return feature
        validate_layout(h5, path)  # a damaged file: one line naming it (FeatureFileError)
        names = feature_names(h5)  # validate_layout read them
        if feature is not None:
            if feature not in names:
                raise InvertError(f"--feature {feature}: {path} has no such feature; it "
                                  f"holds {', '.join(names)}", usage=True)
            return feature
        if len(names) < 2:
            return None
        try:
            configs = {n: json.loads(feature_group(h5, n).attrs["config_json"])
                       for n in names}
        except (KeyError, TypeError, ValueError):
            return None  # the reader names what is missing
    fits = [n for n, c in configs.items() if _how(c, requested) is not None]
    if len(fits) == 1:
        return fits[0]
    each = ", ".join(f"{n} ({_how(c, 'auto') or 'not invertible'})"
                     for n, c in configs.items())
    if requested == "auto":
        why = "none is invertible" if not fits else f"{len(fits)} are invertible"
    else:
        why = f"--method {requested} applies to {len(fits) or 'none'} of them"
    raise InvertError(f"{path} holds {len(names)} features: {each}; {why}; say which with "
                      "--feature NAME", usage=True)


# --- output names ---------------------------------------------------------------------

def _name_max(folder: Path) -> int:
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    try:
        return int(os.pathconf(folder, "PC_NAME_MAX"))
    except (OSError, ValueError, AttributeError):
        return 255


def _check_key(key: str) -> PurePosixPath:
    if not key or "\x00" in key:
        raise InvertError(f"refusing unsafe key {show(key)}: empty or contains NUL")
    seps = {s for s in (os.sep, os.altsep) if s and s != "/"}
    if any(s in key for s in seps):
        raise InvertError(f"refusing key {show(key)}: it contains a path separator of this OS")
    rel = PurePosixPath(key)
    if rel.is_absolute() or any(part in ("..", ".") for part in key.split("/")):
        raise InvertError(f"refusing key {show(key)}: it would escape the output folder")
    return rel


#: What counts as a file name extension to replace: a letter, then up to 9 letters/digits.
#: The key of a segment (``a.wav@1.5-3``, from ``extract --files``) ends in none: its output
#: is ``a.wav@1.5-3.wav``, not ``a.wav@1.wav``.
_EXTENSION = re.compile(r"^\.[A-Za-z][A-Za-z0-9]{0,9}$")


def plan_outputs(
    keys: list[str], out_dir: Path, fmt: str
) -> dict[str, Path | InvertError]:
    """Each key's output file under ``out_dir`` (see the module docstring), or the reason
    it gets none. Deterministic: depends on the set of keys only, not on their order."""
    name_max = _name_max(out_dir)
    plain: dict[str, str] = {}
    result: dict[str, Path | InvertError] = {}
    for key in keys:
        try:
            rel = _check_key(key)
        except InvertError as e:
            result[key] = e
            continue
        suffix = rel.suffix if _EXTENSION.match(rel.suffix) else ""  # not '.5-3' of a@1.5-3
        stem = rel.name[: -len(suffix)] if suffix else rel.name
        plain[key] = str(rel.parent / f"{stem}.{fmt}") if rel.parent != PurePosixPath(".") \
            else f"{stem}.{fmt}"
    count: dict[str, int] = {}
    for name in plain.values():
        count[name] = count.get(name, 0) + 1
    chosen = {k: (n if count[n] == 1 else f"{k}.{fmt}") for k, n in plain.items()}
    owners: dict[str, list[str]] = {}
    for k, n in chosen.items():
        owners.setdefault(n, []).append(k)
    root = out_dir.resolve() if out_dir.exists() else None
    for key in keys:
        if key in result:
            continue
        name = chosen[key]
        if len(owners[name]) > 1:
            others = ", ".join(show(o) for o in sorted(owners[name]) if o != key)
            result[key] = InvertError(f"output name {show(name)} of {show(key)} is also the "
                                      f"name of {others}")
            continue
        too_long = [p for p in PurePosixPath(name).parts
                    if len(p.encode("utf-8", "surrogateescape")) > name_max]
        if too_long:
            result[key] = InvertError(
                f"output name of {show(key)} has a component of "
                f"{len(too_long[0].encode('utf-8', 'surrogateescape'))} bytes; the file "
                f"system allows {name_max}"
            )
            continue
        target = out_dir.joinpath(*PurePosixPath(name).parts)
        if root is not None:  # a symlinked sub-folder must not lead outside
            resolved = target.parent.resolve() / target.name
            if root != resolved.parent and root not in resolved.parents:
                result[key] = InvertError(f"refusing key {show(key)}: it resolves outside "
                                          f"{out_dir}")
                continue
        result[key] = target
    return result


# --- the inverse operators ---------------------------------------------------------------

class MelToLinear:
    """Mel power bands -> linear-frequency magnitude by batched non-negative least squares.

    Minimises ``||B s - m||^2`` over ``s >= 0`` for every frame at once: start from the
    pseudo-inverse solution clipped at 0, then :data:`NNLS_STEPS` projected-gradient steps
    of size ``1 / ||B||_2^2``. ``B`` (mel basis, ``(n_mels, n_freq)``), its pseudo-inverse
    and the step are computed once per file. Output ``s ** (1 / power)``, ``(..., n_freq,
    frames)`` for input ``(..., n_mels, frames)``.
    """

    def __init__(self, basis: torch.Tensor, power: float, device: torch.device) -> None:
        b64 = basis.detach().double().cpu().numpy()
        u, sv, vt = np.linalg.svd(b64, full_matrices=False)  # one small SVD gives both
        keep = sv > sv[0] * max(b64.shape) * np.finfo(np.float64).eps
        pinv = (vt[keep].T / sv[keep]) @ u[:, keep].T
        self.pinv = torch.from_numpy(pinv.astype(np.float32)).to(device)
        self.step = float(1.0 / sv[0] ** 2)
        dense = torch.from_numpy(b64.astype(np.float32))
        if device.type == "cpu":  # the mel basis is ~99 % zeros
            with warnings.catch_warnings():  # "sparse CSR support is in beta"
                warnings.simplefilter("ignore", UserWarning)
                self.B = dense.to_sparse_csr()
                self.Bt = dense.T.contiguous().to_sparse_csr()
        else:
            self.B, self.Bt = dense.to(device), dense.T.contiguous().to(device)
        self.power = power

    def __call__(self, mel: torch.Tensor) -> torch.Tensor:
        lead, (n_mels, frames) = mel.shape[:-2], mel.shape[-2:]
        m = mel.reshape(-1, n_mels, frames).permute(1, 0, 2).reshape(n_mels, -1)
        # frames are independent: a few hundred at a time stay in the CPU cache
        s = torch.cat([self._solve(m[:, j : j + NNLS_COLUMNS])
                       for j in range(0, m.shape[1], NNLS_COLUMNS)], 1)
        s = s.reshape(-1, m.shape[1] // frames, frames).permute(1, 0, 2)
        return s.pow(1.0 / self.power).reshape(*lead, -1, frames)

    def _solve(self, m: torch.Tensor) -> torch.Tensor:
        """Projected gradient for mel columns ``(n_mels, cols)`` -> ``(n_freq, cols)``."""
        s = (self.pinv @ m).clamp_(min=0)
        for _ in range(NNLS_STEPS):
            s.sub_(self.Bt @ (self.B @ s - m), alpha=self.step).clamp_(min=0)
        return s


@dataclass
class Inverse:
    """A method's operators for one file.

    ``whole(x, length)``: stored frames of a batch of keys ``(batch, frames, bins[, 2])`` ->
    ``(waveforms (batch, length), convergence (batch,) or None)`` with the centred inverse.
    ``piece(x, init)``: frames of a segment with context -> samples of the padded signal
    from the first frame on (uncentred inverse), plus the state to hand to the next piece.
    """

    whole: Callable[[np.ndarray, int], tuple[np.ndarray, np.ndarray | None]]
    piece: Callable[[np.ndarray, Any], tuple[np.ndarray, Any]]
    hop: int
    pad: int  # samples of centre padding (n_fft // 2, 0 when not centred)
    context: int  # frames on each side of a segment


def _as_complex_batch(x: np.ndarray, device: torch.device) -> torch.Tensor:
    """(batch, frames, bins, 2) -> (batch, bins, frames, 2) float32 on ``device``."""
    return torch.from_numpy(np.ascontiguousarray(x.transpose(0, 2, 1, 3))).to(device)


def build_inverse(
    ff: FeatureFile, method: str, device: torch.device, iterations: int | None,
    tolerance: float | None,
) -> Inverse:
    """Build the inverse operators of ``method`` for ``ff`` once."""
    from nnaudio_core.features import iSTFT
    from nnaudio_core.features.griffin_lim import Griffin_Lim
    from nnaudio_core.features.icqt import iCQT

    config = ff.config
    name, params = config["transform"], dict(config["params"])
    center = bool(params.get("center", True))
    n_iter = iterations if iterations is not None else DEFAULT_ITERATIONS.get(method, 0)
    tol = tolerance if tolerance is not None else DEFAULT_TOLERANCE.get(method, 0.0)

    if method == "istft":
        inv_c = iSTFT.from_stft(config).to(device)
        inv_u = iSTFT.from_stft(config, center=False).to(device)
        hop, n_fft = inv_c.hop_length, inv_c.n_fft

        @torch.no_grad()
        def whole_istft(x: np.ndarray, length: int) -> tuple[np.ndarray, None]:
            return inv_c(_as_complex_batch(x, device), length=length).cpu().numpy(), None

        @torch.no_grad()
        def piece_istft(x: np.ndarray, state: Any) -> tuple[np.ndarray, Any]:
            return inv_u(_as_complex_batch(x, device)).cpu().numpy(), None

        return Inverse(whole_istft, piece_istft, hop, n_fft // 2 if center else 0,
                       math.ceil(n_fft / hop))

    if method == "icqt":
        inv_c = iCQT.from_config(config, n_iter=n_iter, tol=tol).to(device)
        hop, n_fft = inv_c.hop_length, inv_c.n_fft
        uncentred: list[Any] = []  # built on the first long key only (kernels take ~1 s)

        def whole_icqt(x: np.ndarray, length: int) -> tuple[np.ndarray, None]:
            y = inv_c(_as_complex_batch(x, device), length=length)
            return y.detach().cpu().numpy(), None

        def piece_icqt(x: np.ndarray, state: Any) -> tuple[np.ndarray, Any]:
            if not uncentred:
                uncentred.append(
                    iCQT.from_config(config, n_iter=n_iter, tol=tol, center=False).to(device)
                )
            return uncentred[0](_as_complex_batch(x, device)).detach().cpu().numpy(), None

        return Inverse(whole_icqt, piece_icqt, hop, n_fft // 2 if center else 0,
                       2 * math.ceil(n_fft / hop))

    # Griffin-Lim from a linear-frequency magnitude (STFT and MelSpectrogram share the keys)
    n_fft = params["n_fft"]
    hop = params.get("hop_length") or (params.get("win_length") or n_fft) // 4
    kw = dict(n_fft=n_fft, hop_length=hop, win_length=params.get("win_length"),
              window=params.get("window", "hann"), n_iter=max(1, n_iter))
    gl_c = Griffin_Lim(center=center, pad_mode=params.get("pad_mode", "reflect"), **kw)
    gl_u = Griffin_Lim(center=False, **kw)
    gl_c, gl_u = gl_c.to(device), gl_u.to(device)
    to_linear = None
    if name == "MelSpectrogram":
        to_linear = MelToLinear(ff.transform().mel_basis, float(params.get("power", 2.0)),
                                device)
    complex_input = params.get("output_format") == "Complex"
    generator = torch.Generator().manual_seed(0)

    def magnitude(x: np.ndarray) -> torch.Tensor:
        if complex_input:  # complex STFT asked to go through Griffin-Lim: use |X|
            x = np.sqrt((x.astype(np.float32) ** 2).sum(-1))
        mag = torch.from_numpy(np.ascontiguousarray(x.transpose(0, 2, 1))).to(device)
        return to_linear(mag) if to_linear is not None else mag

    @torch.no_grad()
    def whole_gl(x: np.ndarray, length: int) -> tuple[np.ndarray, np.ndarray]:
        mag = magnitude(x)
        wav, hist = gl_c.reconstruct(mag, length=length, generator=generator, tol=tol,
                                     keep_history=False)
        return wav.cpu().numpy(), hist[..., -1].cpu().numpy()

    @torch.no_grad()
    def piece_gl(x: np.ndarray, state: Any) -> tuple[np.ndarray, Any]:
        mag = magnitude(x)
        if not center:
            wav, hist = gl_u.reconstruct(mag, generator=generator, tol=tol, init_angles=state,
                                         keep_history=False)
            return wav.cpu().numpy(), (gl_u, wav, hist[..., -1].cpu().numpy())
        # the centred (faster) module on the segment: its sample 0 is the segment's first
        # frame centre, i.e. padded-signal sample n_fft // 2 of the uncentred layout; the
        # longest signal with these frames, so a last segment reaches the key's end
        wav, hist = gl_c.reconstruct(mag, length=hop * mag.shape[-1] - 1,
                                     generator=generator, tol=tol, init_angles=state,
                                     keep_history=False)
        y = np.pad(wav.cpu().numpy(), ((0, 0), (n_fft // 2, 0)))
        return y, (gl_c, wav, hist[..., -1].cpu().numpy())

    return Inverse(whole_gl, piece_gl, hop, n_fft // 2 if center else 0,
                   2 * math.ceil(n_fft / hop))


# --- driving it ----------------------------------------------------------------------------

@dataclass
class _Job:
    key: str
    target: Path
    row: int  # index row
    frames: int
    channels: int  # stored channels (rows per frame)
    length: int  # output samples


def _read(ff: FeatureFile, job: _Job, a: int, b: int) -> np.ndarray:
    """Frames [a, b) of a job as (channels, frames, bins[, 2]) float32, decoded (float16 /
    bfloat16 widened) and linear (dB-stored values converted back)."""
    start = int(ff.offsets[job.row]) + a * job.channels
    block = ff.rows(start, start + (b - a) * job.channels)
    if ff.storage.db is not None:
        block = ff.storage.db.to_linear(block)
    block = block.reshape((b - a, job.channels) + block.shape[1:])
    return np.moveaxis(block, 1, 0)


def _write_atomic(target: Path, audio: np.ndarray | Iterator[np.ndarray], sr: int, fmt: str,
                  channels: int) -> None:
    """Write (samples, channels) audio (or blocks of it) to a short hidden temporary file
    next to ``target``, then rename it into place (:func:`nnaudio_cli.plumbing.outputs.replacing`; a
    killed run's temporary file is removed by the next run, :func:`remove_stale`)."""
    container, subtype = FORMATS[fmt]
    blocks = [audio] if isinstance(audio, np.ndarray) else audio
    with replacing(target) as tmp, sf.SoundFile(
            tmp, "w", samplerate=sr, channels=channels, format=container,
            subtype=subtype) as out:
        for block in blocks:
            if not np.isfinite(block).all():
                raise FloatingPointError("the inverse produced non-finite samples")
            if fmt == "flac":
                block = np.clip(block, -1.0, 1.0)
            out.write(block.astype(np.float32))


def _finite(ff: FeatureFile, job: _Job, step: int) -> bool:
    for a in range(0, job.frames, step):
        if not np.isfinite(_read(ff, job, a, min(job.frames, a + step))).all():
            return False
    return True


def invert_file(
    features: Path,
    out_dir: Path,
    method: str = "auto",
    fmt: str = "wav",
    only: list[str] | None = None,
    progress: Callable[[str, float], None] | None = None,
    start: Callable[[int], None] | None = None,
    overwrite: bool = False,
    feature: str | None = None,
    iterations: int | None = None,
    tolerance: float | None = None,
    device: torch.device | None = None,
    segment_seconds: float = 30.0,
) -> InvertSummary:
    """Write one audio file per stored key of ``features`` under ``out_dir``.

    ``out_dir`` is created if missing; its parent must exist. Nothing is written when the
    file is damaged, the method does not apply, or (without ``overwrite``) an output exists.
    ``feature``: which feature to invert (see the module docstring when None).
    """
    t0 = time.perf_counter()
    device = device or torch.device("cpu")
    feature = select_feature(features, feature, method)  # also validates the layout
    ff: FeatureFile | None = None
    try:
        ff = FeatureFile(features, feature)
        config = ff.config
        sr = float(ff.attrs["sr"])
    except (OSError, KeyError, ValueError) as e:
        if ff is not None:
            ff.close()
        if isinstance(e, CliError):  # damaged (FeatureFileError): it names file and defect
            raise
        raise InvertError(
            f"{features}: not an nnaudio feature file ({' '.join(str(e).split())})"
        ) from None
    try:
        chosen = choose_method(config, method)
        keys = list(ff) if not only else list(dict.fromkeys(only))
        missing = [k for k in keys if k not in ff]
        if missing:
            raise InvertError(f"no features stored for {', '.join(show(k) for k in missing[:5])}")
        # names are planned over every stored key, so --only gives the same names
        plan = plan_outputs(list(ff), out_dir, fmt)
        existing = [p for k in keys if isinstance(p := plan[k], Path) and p.exists()]
        if existing and not overwrite:
            raise InvertError(
                f"{count(len(existing), 'output file')} already there, e.g. "
                f"{show(str(existing[0]))}; pass --overwrite to replace them", usage=True,
            )
        inverse = build_inverse(ff, chosen, device, iterations, tolerance)
        out_dir.mkdir(exist_ok=True)
        for folder in {p.parent for p in plan.values() if isinstance(p, Path)}:
            remove_stale(folder)  # what a killed invert was writing
        if start is not None:
            start(len(keys))
        summary = InvertSummary(method=chosen, feature=ff.feature)
        convergence: dict[str, float] = {}
        if chosen == "griffin-lim":
            summary.extra["spectral_convergence"] = convergence
        hop = int(config["params"].get("hop_length") or inverse.hop)
        segment = max(4 * inverse.context, int(round(segment_seconds * sr / hop)))
        rate = int(round(sr))

        def fail(key: str, reason: str) -> None:
            summary.failures.append({"key": key, "reason": reason})
            if progress is not None:
                progress(key, 0.0)

        def done(job: _Job, conv: float | None) -> None:
            summary.written.append(job.key)
            summary.files[job.key] = str(job.target)
            summary.audio_seconds += job.length / sr
            if conv is not None:
                convergence[job.key] = conv
            if progress is not None:
                progress(job.key, job.length / sr)

        def write(job: _Job, audio: Any, conv: float | None) -> None:
            try:
                job.target.parent.mkdir(parents=True, exist_ok=True)
                _write_atomic(job.target, audio, rate, fmt, job.channels)
            except FeatureFileError:  # the features could not be read: fatal, as for
                raise  # keys read whole (never "cannot write")
            except (FloatingPointError, ValueError, RuntimeError) as e:
                fail(job.key, " ".join(str(e).split()))
                return
            except OSError as e:
                if e.errno in _KEY_ERRNOS:
                    fail(job.key, f"cannot write {show(str(job.target))}: "
                                  f"{e.strerror or e}")
                    return
                raise
            done(job, conv)

        def run_batch(batch: list[tuple[_Job, np.ndarray]]) -> None:
            x = np.concatenate([d for _, d in batch])  # (sum channels, frames, bins[, 2])
            try:
                audio, conv = inverse.whole(x, batch[0][0].length)
            except (ValueError, RuntimeError) as e:
                for job, _ in batch:
                    fail(job.key, " ".join(str(e).split()))
                return
            i = 0
            for job, _ in batch:
                a = audio[i : i + job.channels].T
                c = None if conv is None else float(np.mean(conv[i : i + job.channels]))
                i += job.channels
                write(job, a, c)

        def flush(pending: list[tuple[_Job, np.ndarray]]) -> None:
            """Invert short keys, those with equal (frames, length) as one batch."""
            buckets: dict[tuple[int, int], list[tuple[_Job, np.ndarray]]] = {}
            for item in pending:
                buckets.setdefault((item[0].frames, item[0].length), []).append(item)
            for group in buckets.values():
                chunk = []
                for item in group:
                    chunk.append(item)
                    if sum(j.frames * j.channels for j, _ in chunk) >= BATCH_FRAMES:
                        run_batch(chunk)
                        chunk = []
                if chunk:
                    run_batch(chunk)

        pending: list[tuple[_Job, np.ndarray]] = []
        pending_frames = 0
        for key in keys:
            target = plan[key]
            if isinstance(target, InvertError):
                fail(key, str(target))
                continue
            row = ff._row[key]
            info = ff.info(key)
            channels = int(info["stored_channels"]) if ff.keep_channels else 1
            n_rows = int(ff.offsets[row + 1] - ff.offsets[row])
            job = _Job(key, target, row, n_rows // max(1, channels), max(1, channels),
                       int(math.ceil(int(info["samples"]) * sr / float(info["sr"]))))
            if job.frames <= segment:
                data = _read(ff, job, 0, job.frames)
                if not np.isfinite(data).all():
                    fail(key, "stored features contain NaN or infinite values")
                    continue
                pending.append((job, data))
                pending_frames += job.frames * job.channels
                if pending_frames >= PENDING_FRAMES:
                    flush(pending)
                    pending, pending_frames = [], 0
                continue
            if not _finite(ff, job, segment):
                fail(key, "stored features contain NaN or infinite values")
                continue
            convs: list[float] = []
            write(job, _segments(ff, job, inverse, segment, convs), None)
            if convs and job.key in summary.files:
                convergence[job.key] = float(np.mean(convs))
        flush(pending)
    finally:
        ff.close()
    summary.wall_seconds = time.perf_counter() - t0
    return summary


def _segments(ff: FeatureFile, job: _Job, inverse: Inverse, segment: int,
              convs: list[float]) -> Iterator[np.ndarray]:
    """The audio of a long key, segment by segment, as (samples, channels) blocks."""
    hop, pad, ctx = inverse.hop, inverse.pad, inverse.context
    state: Any = None
    prev_start = 0  # first frame of the previous segment
    emitted = 0  # output samples produced so far
    for a in range(0, job.frames, segment):
        b = min(job.frames, a + segment)
        a0, b0 = max(0, a - ctx), min(job.frames, b + ctx)
        init = None
        if state is not None:  # Griffin-Lim: continue the previous segment's phase
            gl, wav, conv = state
            convs.append(float(np.mean(conv)))
            init = _continue_phase(gl, wav, prev_start, a0, b0)
        y, state = inverse.piece(_read(ff, job, a0, b0), init)
        prev_start = a0
        # y[:, 0] is padded-signal sample a0 * hop; output sample n is padded sample n + pad
        lo = a * hop - pad
        hi = job.length if b == job.frames else b * hop - pad
        lo, hi = max(lo, emitted), min(hi, job.length)
        if hi <= lo:
            continue
        block = np.zeros((job.channels, hi - lo), np.float32)
        src_lo = lo + pad - a0 * hop
        avail = y[:, src_lo : src_lo + (hi - lo)]
        block[:, : avail.shape[1]] = avail
        emitted = hi
        yield block.T
    if state is not None and state[2] is not None:
        convs.append(float(np.mean(state[2])))


def _continue_phase(gl: Any, wav: torch.Tensor, prev_start: int, a0: int, b0: int
                    ) -> torch.Tensor:
    """Unit phases for frames [a0, b0): the previous segment's where it covered them
    (its waveform started at frame ``prev_start``), random elsewhere."""
    spec = gl.stft(wav)  # (batch, bins, frames_prev, 2)
    n_prev = spec.shape[-2]
    frames = b0 - a0
    angles = torch.rand(spec.shape[0], spec.shape[1], frames, device=spec.device)
    angles = torch.stack((torch.cos(2 * torch.pi * angles), torch.sin(2 * torch.pi * angles)),
                         -1)
    first, last = a0 - prev_start, min(n_prev, b0 - prev_start)
    if last > first:
        overlap = spec[..., first:last, :]
        norm = torch.sqrt((overlap**2).sum(-1, keepdim=True) + 1e-16)
        angles[..., : last - first, :] = overlap / norm
    return angles
