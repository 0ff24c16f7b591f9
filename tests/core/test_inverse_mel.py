"""``InverseMelScale``: mel bands back to a linear-frequency magnitude (batched NNLS).

Closed forms: a spectrum ``s*`` in the row space of the (non-negative) mel basis ``B`` with
``s* = B^T c``, ``c >= 0``, is non-negative and is the pseudo-inverse solution of
``m = B s*``, so the solve returns it (to float32 round-off) and ``B s = m`` again. On a
real mel spectrogram (not every ``m`` is ``B s`` for some ``s >= 0``) the solution is
compared with ``scipy.optimize.nnls``.
"""

from __future__ import annotations

import numpy as np
import pytest
import signals
import torch

from nnaudio_core import ParameterError
from nnaudio_core.features import InverseMelScale, MelSpectrogram


@pytest.fixture(scope="module")
def mel() -> MelSpectrogram:
    return MelSpectrogram(sr=22050, n_fft=1024, hop_length=256, n_mels=64)


def _in_row_space(mel: MelSpectrogram, shape: tuple[int, ...], seed: int = 0) -> torch.Tensor:
    """``B^T c`` for uniform ``c >= 0`` of ``shape[:-2] + (n_mels, frames)``, float64:
    ``(..., n_freq, frames)`` power spectra."""
    c = torch.rand(shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    return mel.mel_basis.double().T @ c


def test_power_spectrum_in_the_row_space_is_recovered(mel) -> None:
    """``s*`` (power) -> ``m = B s*`` -> the magnitude ``sqrt(s*)``: max error of the
    power below 1e-5 of its peak (measured 4.5e-7), with and without gradient steps."""
    power = _in_row_space(mel, (3, 64, 20))
    m = (mel.mel_basis.double() @ power).float()
    for steps in (50, 0):
        magnitude = InverseMelScale.from_mel(mel, n_steps=steps)(m)
        assert magnitude.shape == (3, 513, 20) and magnitude.dtype == torch.float32
        err = float((magnitude.double() ** 2 - power).abs().max() / power.abs().max())
        assert err < 1e-5, (steps, err)


def test_mel_of_the_inverse_gives_the_mel_bands_back(mel) -> None:
    """``B (InverseMelScale(m)) ** power == m`` for ``m`` that some ``s >= 0`` makes, to
    1e-5 of the peak (measured 1.2e-7); ``power=1``: the output is ``s`` itself."""
    s = _in_row_space(mel, (2, 64, 9), seed=3)
    basis = mel.mel_basis.double()
    m = (basis @ s).float()
    back = basis @ InverseMelScale(mel.mel_basis, power=2.0)(m).double() ** 2
    assert float((back - m).abs().max() / m.abs().max()) < 1e-5
    linear = InverseMelScale(mel.mel_basis, power=1.0)(m).double()
    assert float((basis @ linear - m).abs().max() / m.abs().max()) < 1e-5


def test_speech_mel_residual_is_small_and_the_steps_reduce_it(mel) -> None:
    """On a speech-like mel spectrogram (1 s) the residual ``||B s - m|| / ||m||`` is below
    3 % overall (measured 1.7 %) and the 50 projected-gradient steps lower it below the
    clipped pseudo-inverse start's."""
    x = torch.from_numpy(signals.speech_like(22050, 1.0, seed=2))[None]
    m = mel(x).double()
    basis = mel.mel_basis.double()

    def residual(steps: int) -> float:
        s = InverseMelScale.from_mel(mel, n_steps=steps)(m.float()).double() ** 2
        return float(torch.linalg.norm(basis @ s - m) / torch.linalg.norm(m))

    solved, start = residual(50), residual(0)
    assert solved < 0.03
    assert solved < 0.9 * start, (solved, start)


def test_output_is_non_negative_and_finite(mel) -> None:
    x = torch.randn(2, 8000, generator=torch.Generator().manual_seed(4))
    out = InverseMelScale.from_mel(mel)(mel(x))
    assert torch.isfinite(out).all()
    assert float(out.min()) >= 0.0
    assert float(out.max()) > 0.0


def test_leading_dims_are_kept_and_items_are_independent(mel) -> None:
    """``(..., n_mels, frames) -> (..., n_freq, frames)``; an item inverted alone equals
    the same item inside a batch (to float32 round-off)."""
    inv = InverseMelScale.from_mel(mel)
    m = (mel.mel_basis.double() @ _in_row_space(mel, (2, 3, 64, 7), seed=5)).float()
    out = inv(m)
    assert out.shape == (2, 3, 513, 7)
    assert inv(m[1, 2]).shape == (513, 7)
    torch.testing.assert_close(inv(m[1, 2]), out[1, 2], rtol=1e-5, atol=1e-6)


def test_bad_arguments_raise_parameter_error(mel) -> None:
    basis = mel.mel_basis
    for kwargs in ({"power": 0.0}, {"power": -1.0}, {"n_steps": -1}, {"block_frames": 0}):
        with pytest.raises(ParameterError):
            InverseMelScale(basis, **kwargs)
    for bad in (basis[0], torch.zeros(0, 5), torch.zeros(4, 5),
                torch.full((4, 5), float("nan"))):
        with pytest.raises(ParameterError):
            InverseMelScale(bad)
    with pytest.raises(ParameterError, match="64"):
        InverseMelScale(basis)(torch.ones(1, 63, 4))
    with pytest.raises(ParameterError):
        InverseMelScale(basis)(torch.ones(64))


def test_matches_scipys_nnls() -> None:
    """The batched projected-gradient NNLS against ``scipy.optimize.nnls`` (active set,
    float64) on 20 speech frames: the solution is non-negative and its residual
    ``||B s - m||`` is within 2 % of ``||m||`` of the optimum (measured 0.2-1.3 %). The
    objective is compared, not ``s``: with 513 unknowns and 64 equations it is not unique."""
    import scipy.optimize

    mel = MelSpectrogram(sr=22050, n_fft=1024, hop_length=256, n_mels=64)
    x = torch.from_numpy(signals.speech_like(22050, 0.3, seed=2))[None]
    m = mel(x)[..., 5:25]
    power = InverseMelScale(mel.mel_basis, 2.0)(m)[0].double() ** 2
    assert float(power.min()) >= 0.0
    B, M = mel.mel_basis.double().numpy(), m[0].double().numpy()
    for j in range(M.shape[1]):
        _, optimum = scipy.optimize.nnls(B, M[:, j], maxiter=5000)
        ours = np.linalg.norm(B @ power[:, j].numpy() - M[:, j])
        assert ours - optimum <= 0.02 * np.linalg.norm(M[:, j]), j


def test_blocks_match_one_block(mel) -> None:
    """The NNLS runs over blocks of frames; the result does not depend on the block size."""
    x = torch.randn(2, 22050, generator=torch.Generator().manual_seed(1))
    m = mel(x)  # (2, 64, frames)
    whole = InverseMelScale(mel.mel_basis, 2.0, block_frames=10**9)(m)
    blocks = InverseMelScale(mel.mel_basis, 2.0, block_frames=7)(m)
    assert whole.shape == (2, 513, m.shape[-1])
    # float32 round-off of the products differs with the block width; compare the NNLS
    # solution (power), not its square root, which magnifies differences near 0
    power_diff = float((blocks**2 - whole**2).abs().max())
    assert power_diff <= 1e-5 * float((whole**2).max())
    assert float((blocks - whole).norm() / whole.norm()) < 1e-5


def test_buffers_move_with_the_module(mel) -> None:
    """The pseudo-inverse and the basis are buffers: in ``state_dict``, cast by ``.double()``
    (float64 in gives float64 out, the same numbers to float32 round-off)."""
    inv = InverseMelScale.from_mel(mel)
    assert set(inv.state_dict()) == {"pinv", "mel_basis"}
    assert inv.pinv.shape == (513, 64)
    m = mel(torch.randn(1, 4000, generator=torch.Generator().manual_seed(6)))
    out64 = inv.double()(m.double())
    assert out64.dtype == torch.float64
    out32 = InverseMelScale.from_mel(mel)(m)
    assert float((out64**2 - out32.double() ** 2).abs().max()) <= 1e-4 * float(out64.max() ** 2)
