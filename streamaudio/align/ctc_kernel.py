"""The CTC Viterbi search as one fused Triton kernel per batch.

One program per batch item walks the frames; the item's states (blank, t1, blank, t2, ...,
blank) are one block of lanes. Per frame it reads the emissions it needs straight from the
[B, T, C] log-probabilities (no [B, T, S] gather is ever materialised), keeps the scores in
registers, exchanges the two neighbour scores through a small scratch row, and writes one
int8 backpointer per state. The backtrack runs on the device too, in the same program, so
what comes back to the host is one state per frame ([B, T] int32) and the path score.

It computes exactly what ``ctc.ctc_viterbi_reference`` computes: the same fp32 additions in
the same order, the same tie-breaking (stay, then step, then skip: the first maximum wins,
as torch.max does), the same "no path" sentinel. tests/test_ctc_kernel.py checks that on
random emissions with ties and impossible paths, under Triton's CPU interpreter
(TRITON_INTERPRET=1) when there is no GPU.
"""
from __future__ import annotations

import importlib.util
import os

NEG_INF = -1e30

# Triton is imported only when the kernel runs (_ctc_triton.py): its import costs ~0.2 s of CPU
HAVE_TRITON = importlib.util.find_spec("triton") is not None


def available(device) -> bool:
    """Whether the fused kernel can run for tensors on ``device``: a CUDA device with Triton,
    or any device under Triton's interpreter (TRITON_INTERPRET=1, CPU tensors)."""
    if not HAVE_TRITON:
        return False
    if os.environ.get("TRITON_INTERPRET") == "1":
        return str(device).startswith("cpu")
    return str(device).startswith("cuda")


def viterbi_states(log_probs, ext, can_skip, input_lengths, n_states):
    """Best state per frame for each item: ([B, T] int32 states, [B] fp32 path scores).

    log_probs [B, T, C] fp32 (contiguous in C), ext [B, S] token id of each state, can_skip
    [B, S] bool, input_lengths [B] frames, n_states [B] (2 * target length + 1), all on one
    device. A score <= NEG_INF / 2 means no path fits (frames past an item's length and the
    states of such an item are undefined)."""
    import torch
    import triton

    from ._ctc_triton import _viterbi_kernel

    B, T, _ = log_probs.shape
    S = ext.shape[1]
    block = max(16, triton.next_power_of_2(S))
    dev = log_probs.device
    lp = log_probs.float().contiguous()
    back = torch.empty((B, T, S), dtype=torch.int8, device=dev)
    scratch = torch.empty((B, block), dtype=torch.float32, device=dev)
    states = torch.zeros((B, T), dtype=torch.int32, device=dev)
    score = torch.empty((B,), dtype=torch.float32, device=dev)
    _viterbi_kernel[(B,)](lp, ext.to(torch.int32).contiguous(), can_skip.to(torch.int8).contiguous(),
                          input_lengths.to(torch.int32).contiguous(), n_states.to(torch.int32).contiguous(),
                          back, scratch, states, score, T, S, lp.stride(0), lp.stride(1), NEG=NEG_INF,
                          BLOCK_S=block, num_warps=4 if block <= 1024 else 8)
    return states, score
