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

import os

NEG_INF = -1e30

try:  # the kernel needs Triton (bundled with CUDA builds of torch; `pip install triton` elsewhere)
    import triton
    import triton.language as tl
except ImportError:  # pragma: no cover - depends on the install
    triton = None


def available(device) -> bool:
    """Whether the fused kernel can run for tensors on ``device``: a CUDA device with Triton,
    or any device under Triton's interpreter (TRITON_INTERPRET=1, CPU tensors)."""
    if triton is None:
        return False
    if os.environ.get("TRITON_INTERPRET") == "1":
        return str(device).startswith("cpu")
    return str(device).startswith("cuda")


if triton is not None:

    @triton.jit
    def _viterbi_kernel(lp_ptr, ext_ptr, skip_ptr, in_len_ptr, n_states_ptr, back_ptr, scratch_ptr,
                        states_ptr, score_ptr, T, S_max, stride_b, stride_t, NEG: tl.constexpr,
                        BLOCK_S: tl.constexpr):
        b = tl.program_id(0).to(tl.int64)
        s = tl.arange(0, BLOCK_S)
        n_s = tl.load(n_states_ptr + b)
        il = tl.load(in_len_ptr + b)
        valid = s < n_s
        tok = tl.load(ext_ptr + b * S_max + s, mask=valid, other=0)
        can_skip = tl.load(skip_ptr + b * S_max + s, mask=valid, other=0) != 0
        lp_b = lp_ptr + b * stride_b
        # frame 0: only the first blank and the first token can start a path
        e = tl.load(lp_b + tok, mask=valid, other=NEG)
        alpha = tl.where(s < 2, e, NEG)
        row = scratch_ptr + b * BLOCK_S
        back_b = back_ptr + b * T * S_max
        tl.store(back_b + s, tl.zeros([BLOCK_S], dtype=tl.int8), mask=s < S_max)
        for t in range(1, il):
            tl.store(row + s, alpha)
            tl.debug_barrier()
            step = tl.load(row + s - 1, mask=s >= 1, other=NEG)
            skip = tl.load(row + s - 2, mask=(s >= 2) & can_skip, other=NEG)
            tl.debug_barrier()  # every lane has read before the next frame overwrites the row
            best = alpha
            arg = tl.zeros([BLOCK_S], dtype=tl.int8)
            take = step > best
            best = tl.where(take, step, best)
            arg = tl.where(take, 1, arg).to(tl.int8)
            take = skip > best
            best = tl.where(take, skip, best)
            arg = tl.where(take, 2, arg).to(tl.int8)
            e = tl.load(lp_b + t * stride_t + tok, mask=valid, other=NEG)
            alpha = best + e
            tl.store(back_b + t * S_max + s, arg, mask=s < S_max)
        # the path ends in the last blank or the last token; the last blank wins a tie
        last = n_s - 1
        a_last = tl.max(tl.where(s == last, alpha, NEG * 4), axis=0)
        a_prev = tl.max(tl.where((s == last - 1) & (last > 0), alpha, NEG * 4), axis=0)
        cur = tl.where(a_prev > a_last, last - 1, last)
        tl.store(score_ptr + b, tl.maximum(a_last, a_prev))
        tl.debug_barrier()  # the backpointers written by every lane are visible to the backtrack
        states_b = states_ptr + b * T
        for k in range(0, il):
            t = il - 1 - k
            tl.store(states_b + t, cur.to(tl.int32))
            cur = cur - tl.load(back_b + t * S_max + cur).to(cur.dtype)


def viterbi_states(log_probs, ext, can_skip, input_lengths, n_states):
    """Best state per frame for each item: ([B, T] int32 states, [B] fp32 path scores).

    log_probs [B, T, C] fp32 (contiguous in C), ext [B, S] token id of each state, can_skip
    [B, S] bool, input_lengths [B] frames, n_states [B] (2 * target length + 1), all on one
    device. A score <= NEG_INF / 2 means no path fits (frames past an item's length and the
    states of such an item are undefined)."""
    import torch

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
