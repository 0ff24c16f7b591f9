"""Block workers (nnaudio_core.workers): the transforms' independent pieces run on single-
threaded worker threads at the default thread count, with the numbers of the in-order run."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch

import nnaudio_core.features as F
from nnaudio_core import workers

SR = 22050


@pytest.fixture
def two_threads():
    old = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(old)


def clips(batch: int = 12, n: int = 40000) -> torch.Tensor:
    t = np.arange(n) / SR
    rng = np.random.default_rng(0)
    x = [np.sin(2 * np.pi * (110 * (i + 1)) * t) + 0.1 * rng.standard_normal(n)
         for i in range(batch)]
    return torch.from_numpy(np.stack(x).astype(np.float32))


def in_order(fn, *args):
    """``fn(*args)`` with one torch thread: every piece in order in this thread."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return fn(*args)
    finally:
        torch.set_num_threads(old)


def test_map_blocks_spreads_pieces_over_single_threaded_threads(two_threads):
    seen = []
    lock = threading.Lock()
    gate = threading.Barrier(2, timeout=30)  # two pieces can only pass it side by side

    def work(i: int) -> int:
        with lock:
            seen.append((threading.get_ident(), torch.get_num_threads()))
        if i < 2:
            gate.wait()
        return i * i

    x = torch.zeros(1)
    assert workers.map_blocks(work, list(range(6)), x) == [i * i for i in range(6)]
    assert len({ident for ident, _ in seen}) == 2
    assert all(n == 1 for _, n in seen)
    assert torch.get_num_threads() == 2  # the caller's count is given back
    got = []
    t = threading.Thread(target=lambda: got.append(torch.get_num_threads()))
    t.start()
    t.join()
    assert got == [2]  # and the count new threads start with


def test_a_new_pool_leaves_the_thread_counts_alone():
    old = torch.get_num_threads()
    torch.set_num_threads(3)  # a pool size no other test makes: it is created here
    try:
        assert workers.map_blocks(int, [1, 2, 3, 4], torch.zeros(1)) == [1, 2, 3, 4]
        assert torch.get_num_threads() == 3
        got = []
        t = threading.Thread(target=lambda: got.append(torch.get_num_threads()))
        t.start()
        t.join()
        assert got == [3]
        with workers.one_thread():
            assert torch.get_num_threads() == 1
            assert workers.parallel(torch.zeros(1), 4, False) == 3  # still the caller's 3
        assert torch.get_num_threads() == 3
    finally:
        torch.set_num_threads(old)


def test_map_blocks_in_order_where_it_cannot_run_in_parallel(two_threads):
    main = threading.get_ident()

    def where(_: int) -> int:
        return threading.get_ident()

    x = torch.zeros(1)
    assert set(workers.map_blocks(where, [0, 1, 2], x, grad=True)) == {main}
    assert set(workers.map_blocks(where, [0], x)) == {main}
    assert set(in_order(workers.map_blocks, where, [0, 1, 2], x)) == {main}


@pytest.mark.parametrize("error", [ValueError, KeyboardInterrupt])
def test_map_blocks_raises_the_first_error_and_keeps_the_thread_count(two_threads, error):
    def work(i: int) -> int:
        if i == 3:
            raise error("piece 3")
        return i

    with pytest.raises(error, match="piece 3"):
        workers.map_blocks(work, list(range(8)), torch.zeros(1))
    assert torch.get_num_threads() == 2
    assert workers.map_blocks(int, [1, 2, 3], torch.zeros(1)) == [1, 2, 3]  # still works


def test_stft_blocks_run_on_the_workers(two_threads, monkeypatch):
    """The regression: at 2 threads the STFT's cache-sized blocks ran one after another, each
    operation in its own 2-thread parallel region (which a busy neighbour stalls); now the
    blocks go to single-threaded workers."""
    m = F.STFT(n_fft=2048, hop_length=512, sr=SR, output_format="Magnitude")
    seen = set()
    real_imag = m.real_imag

    def spy(seg):
        seen.add((threading.get_ident(), torch.get_num_threads()))
        return real_imag(seg)

    monkeypatch.setattr(m, "real_imag", spy)
    with torch.inference_mode():
        m(clips(32))
    assert len(seen) == 2 and {n for _, n in seen} == {1}


MODULES = {
    "stft": lambda: F.STFT(n_fft=2048, hop_length=512, sr=SR, output_format="Complex"),
    "mel": lambda: F.MelSpectrogram(sr=SR, n_fft=2048, hop_length=512, n_mels=128),
    "mfcc": lambda: F.MFCC(sr=SR, n_fft=2048, hop_length=512, n_mels=128, n_mfcc=20),
    "cqt-fast": lambda: F.CQT(sr=SR, hop_length=512, fmin=32.7, n_bins=84,
                              pad_mode="constant", output_format="Complex"),
    "cqt1992v2": lambda: F.CQT1992v2(sr=SR, hop_length=512, n_bins=84),
    "cqt2010v2": lambda: F.CQT2010v2(sr=SR, hop_length=512, n_bins=84),
    "vqt": lambda: F.VQT(sr=SR, hop_length=512, fmin=32.7, n_bins=84, gamma=5.0),
}


@pytest.mark.parametrize("name", list(MODULES))
def test_transforms_equal_the_in_order_run(two_threads, name):
    m = MODULES[name]()
    x = clips()
    with torch.inference_mode():
        want = in_order(m, x)
        got = m(x)
    assert got.shape == want.shape
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5 * float(want.abs().max()))


def test_inverses_equal_the_in_order_run(two_threads):
    x = clips(8, 20000)
    cqt = F.CQT(sr=SR, hop_length=512, fmin=65.4, n_bins=72, output_format="Complex")
    icqt = F.iCQT(sr=SR, hop_length=512, fmin=65.4, n_bins=72, n_iter=5)
    gl = F.Griffin_Lim(n_fft=1024, hop_length=256, n_iter=5, rand_init=False)
    stft = F.STFT(n_fft=1024, hop_length=256, sr=SR, output_format="Magnitude")
    with torch.no_grad():  # (the iCQT's adjoint needs autograd: not inference_mode)
        c = cqt(x)
        s = stft(x)
        for fn, arg in ((lambda a: icqt(a, length=20000), c), (lambda a: gl(a, length=20000), s)):
            want = in_order(fn, arg)
            got = fn(arg)
            torch.testing.assert_close(got, want, rtol=1e-4,
                                       atol=1e-4 * float(want.abs().max()))


def test_gradients_stay_in_the_calling_thread(two_threads):
    m = F.MelSpectrogram(sr=SR, n_fft=512, hop_length=128, n_mels=32, trainable_mel=True)
    m.stft.cpu_block_samples = 512 * 8  # several blocks
    x = clips(4, 8000)
    y = m(x)
    assert y.grad_fn is not None
    y.sum().backward()
    assert m.mel_basis.grad is not None and torch.isfinite(m.mel_basis.grad).all()
    with torch.no_grad():
        torch.testing.assert_close(m(x), y.detach(), rtol=1e-5, atol=1e-5 * float(y.max()))
