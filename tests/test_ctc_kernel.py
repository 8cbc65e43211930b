"""The fused CTC Viterbi kernel (streamaudio/align/ctc_kernel.py) against the torch reference:
identical best paths and scores on random emissions, with ties and impossible targets.
Runs on a GPU when there is one, else under Triton's CPU interpreter. Needs only torch,
numpy and triton (no conftest fixtures), so it also runs on a bare GPU machine:
`python -m pytest --noconftest tests/test_ctc_kernel.py`."""
import os

import numpy as np
import pytest

torch = pytest.importorskip("torch")
if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")  # read by triton.jit when the kernel module is imported
pytest.importorskip("triton")

from streamaudio.align import ctc_kernel  # noqa: E402
from streamaudio.align.ctc import NEG_INF, ctc_search, ctc_topology, viterbi_states_reference  # noqa: E402

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"


def _batch(seed: int, ties: bool):
    g = np.random.default_rng(seed)
    B, C = 7, 6
    T = int(g.integers(1, 48))
    lens = g.integers(1, T + 1, B)
    lens[0] = T
    tl = g.integers(0, 12, B)  # some targets need more frames than the audio has: no path
    tl[1], lens[1] = 5, min(T, 3)  # one always does
    L = max(1, int(tl.max()))
    targets = g.integers(1, C, (B, L))
    targets[:, 1::3] = targets[:, 0::3][:, : targets[:, 1::3].shape[1]]  # repeated tokens need a blank between
    if ties:  # few distinct values: many equal candidates, the tie-breaking must match
        logits = g.integers(0, 3, (B, T, C)).astype(np.float32)
    else:
        logits = (g.standard_normal((B, T, C)) * 3).astype(np.float32)
    lp = torch.log_softmax(torch.from_numpy(logits), dim=-1)
    return lp, torch.from_numpy(targets), torch.from_numpy(lens), torch.from_numpy(tl)


@pytest.mark.parametrize("seed", range(12))
def test_kernel_equals_reference(seed):
    lp, targets, lens, tl = _batch(seed, ties=seed % 2 == 0)
    ext, can_skip, n_states = ctc_topology(targets, tl, blank=0)
    ref_states, ref_scores = viterbi_states_reference(lp, ext, can_skip, lens, n_states)
    assert ctc_kernel.available(DEVICE)
    k_states, k_scores = ctc_kernel.viterbi_states(lp.to(DEVICE), ext.to(DEVICE), can_skip.to(DEVICE),
                                                   lens.to(DEVICE), n_states.to(DEVICE))
    k_states, k_scores = k_states.cpu(), k_scores.cpu()
    for b in range(len(lens)):
        ref_none, k_none = bool(ref_scores[b] <= NEG_INF / 2), bool(k_scores[b] <= NEG_INF / 2)
        assert ref_none == k_none, b
        if not ref_none:
            assert torch.equal(k_states[b, : lens[b]], ref_states[b, : lens[b]]), b
            assert k_scores[b] == ref_scores[b]
    assert bool(ref_scores[1] <= NEG_INF / 2)  # the impossible item was in the batch


def test_search_auto_uses_the_kernel_and_gives_the_same_spans():
    lp, targets, lens, tl = _batch(3, ties=True)
    from streamaudio.align.ctc import ctc_viterbi

    ref = ctc_viterbi(lp, targets, 0, lens, tl, impl="reference")
    fused = ctc_viterbi(lp.to(DEVICE), targets.to(DEVICE), 0, lens.to(DEVICE), tl.to(DEVICE), impl="kernel")
    assert ref == fused and any(r is None for r in ref) and any(r for r in ref)
    states, *_ = ctc_search(lp.to(DEVICE), targets.to(DEVICE), 0, lens.to(DEVICE), tl.to(DEVICE), impl="auto")
    assert states.device.type == torch.device(DEVICE).type
