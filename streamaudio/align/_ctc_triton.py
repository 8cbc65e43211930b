"""The Triton kernel of ctc_kernel.py, in a module of its own: importing Triton costs ~0.2 s of
CPU, and the stage registry imports every module of streamaudio.align (this one's leading
underscore keeps it out), so a build's driver no longer pays it (benchmarks/bench_build.py)."""
from __future__ import annotations

import triton
import triton.language as tl


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
