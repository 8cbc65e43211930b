"""Time-frequency joint preprocessing (TFJP): every clip is prepared so that how clips are
joined never tells a model when to respond.

Without it, a model learns the seams: a clip's own room tone that starts and stops with the
clip, a long silence inside a turn, a clip edge that keeps landing just before the reply's
chunk, a spectral jump at the join (the paper's ablation: trigger accuracy 96.8% -> 85.4%).
Each step is a small function over numpy audio and clip-time facts:

1. ``silence_cut``: internal silences between words longer than a limit are shortened; the
   cut is data on the clip row (``edits``, words moved), so plans are made on the cut clip
   and every label stays exact.
2. ``noise_profile``: the clip's noise floor spectrum, from its quietest frames.
3. ``denoise``: spectral gating of that floor, so the clip's room tone does not arrive and
   leave with it (the episode's own bed is the only floor).
4. ``core_locate``: the clip's informative span (words, an event's active span, or energy),
   with margins; outside it the clip is not mixed.
5. ``boundary_norm``: that span's edges moved outwards onto the episode's half-chunk grid,
   with fades, so an edge falls on the grid wherever the reply is due.
6. ``spec_smooth``: short-window spectral smoothing across each join of the mix.

Settings come from the plan (``EpisodePlan.render['tfjp']``), so a stored plan re-renders
the same bytes; ``DEFAULT_TFJP`` is what a catalog gets unless it says otherwise.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from functools import lru_cache

import numpy as np
import scipy.fft

from ..format import SAMPLE_RATE

N_FFT = 512  # 32 ms at 16 kHz
HOP = 256  # half a frame: the gain is smooth over time, so more overlap buys nothing audible


@dataclass(frozen=True)
class TfjpSettings:
    enabled: bool = True
    silence_cut_s: float = 0.6  # internal silences longer than this are shortened to it
    denoise_db: float = 20.0  # the most a bin is turned down (spectral gating's floor)
    margin_s: float = 0.12  # kept around the informative span
    grid_s: float = 0.2  # boundary_norm's grid (half a chunk)
    fade_s: float = 0.02
    smooth_s: float = 0.04  # spec_smooth: half-width of the smoothed region at a join

    @classmethod
    def from_dict(cls, d: dict | bool | None) -> "TfjpSettings":
        if d is None or d is True:
            return cls()
        if d is False:
            return cls(enabled=False)
        unknown = set(d) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"unknown TFJP settings {sorted(unknown)}; known: {sorted(cls.__dataclass_fields__)}")
        return cls(**d)

    def to_dict(self) -> dict:
        return asdict(self)


DEFAULT_TFJP = TfjpSettings().to_dict()


# ----------------------------------------------------------------------------- 1. silence_cut
def silence_cut(clip: dict, limit_s: float) -> dict:
    """The clip row with every silence between consecutive words longer than ``limit_s``
    shortened to ``limit_s`` (the middle is removed, half the limit kept on each side): words
    after a cut move earlier by exactly the cut, ``duration_s`` shrinks, and ``edits`` lists the
    removed spans in the original clip's time (the renderer removes them when it reads the
    clip). A row without words, or without long silences, is returned unchanged."""
    words = clip.get("words") or []
    if len(words) < 2 or clip.get("edits"):
        return clip
    edits = []
    for a, b in zip(words, words[1:]):
        gap = b["start_s"] - a["end_s"]
        if gap > limit_s + 1e-3:
            keep = limit_s / 2
            edits.append([round(a["end_s"] + keep, 4), round(b["start_s"] - keep, 4)])
    if not edits:
        return clip
    out = dict(clip)
    out["edits"] = edits
    out["words"] = [{**w, "start_s": round(edited_time(w["start_s"], edits), 4),
                     "end_s": round(edited_time(w["end_s"], edits), 4)} for w in words]
    out["duration_s"] = round(clip["duration_s"] - sum(e1 - e0 for e0, e1 in edits), 4)
    for k in ("active_start_s", "active_end_s"):
        if out.get(k) is not None and out[k] >= 0:
            out[k] = round(edited_time(out[k], edits), 4)
    return out


def edited_time(t: float, edits: list) -> float:
    """Original clip time -> time in the clip with ``edits`` removed."""
    shift = 0.0
    for e0, e1 in edits:
        if t >= e1:
            shift += e1 - e0
        elif t > e0:
            shift += t - e0
    return t - shift


def original_time(t: float, edits: list) -> float:
    """Time in the edited clip -> original clip time (a point at a cut maps past it)."""
    for e0, e1 in edits:
        if t >= e0 - 1e-9:
            t += e1 - e0
        else:
            break
    return t


def original_end_time(t: float, edits: list) -> float:
    """Like ``original_time``, for the end of a span: a point at a cut maps to the cut's start."""
    for e0, e1 in edits:
        if t > e0 + 1e-9:
            t += e1 - e0
        else:
            break
    return t


def remove_spans(x: np.ndarray, t0: float, edits: list, fade_s: float = 0.01) -> np.ndarray:
    """``x`` (original clip audio from clip time ``t0``) with the ``edits`` spans removed, each
    join crossfaded over ``fade_s`` (taken from the silence before the cut, so the length is
    exactly the original minus the cuts)."""
    k = int(fade_s * SAMPLE_RATE)
    pieces, pos = [], 0
    for e0, e1 in edits:
        a, b = int(round((e0 - t0) * SAMPLE_RATE)), int(round((e1 - t0) * SAMPLE_RATE))
        a, b = max(a, pos), min(b, len(x))
        if b <= a:
            continue
        kk = min(k, a - pos)
        pieces.append(x[pos:a - kk])
        if kk > 0:
            ramp = np.linspace(1.0, 0.0, kk, dtype=np.float32)
            pieces.append(x[a - kk:a] * ramp + x[b - kk:b] * (1 - ramp))
        pos = b
    pieces.append(x[pos:])
    return np.concatenate(pieces).astype(np.float32)


# ----------------------------------------------------------------------------- 2-3. noise_profile, denoise
def _stft(x: np.ndarray) -> np.ndarray:
    """Frames of N_FFT every HOP (Hann), the first centred on sample 0; complex64."""
    pad = np.concatenate([np.zeros(N_FFT // 2, np.float32), x.astype(np.float32, copy=False),
                          np.zeros(N_FFT, np.float32)])
    n = 1 + (len(pad) - N_FFT) // HOP
    frames = np.lib.stride_tricks.sliding_window_view(pad, N_FFT)[::HOP][:n]
    return scipy.fft.rfft(frames * _window(), axis=1)


def _istft(spec: np.ndarray, length: int) -> np.ndarray:
    """Weighted overlap-add inverse of ``_stft`` (N_FFT // HOP strided adds)."""
    frames = scipy.fft.irfft(spec, n=N_FFT, axis=1).astype(np.float32) * _window()
    n = len(frames)
    q = N_FFT // HOP
    out = np.zeros(HOP * (n + q - 1), np.float32)
    blocks = frames.reshape(n, q, HOP)
    for k in range(q):
        out[k * HOP:(k + n) * HOP] += blocks[:, k, :].reshape(-1)
    out *= _inverse_norm(n)
    return out[N_FFT // 2:N_FFT // 2 + length]


@lru_cache(maxsize=512)
def _inverse_norm(n: int) -> np.ndarray:
    """1 / the summed squared windows of n overlapped frames (clips come in few lengths)."""
    q = N_FFT // HOP
    norm = np.zeros(HOP * (n + q - 1), np.float32)
    w2 = (_window() ** 2).reshape(q, HOP)
    for k in range(q):
        norm[k * HOP:(k + n) * HOP] += np.tile(w2[k], n)
    inv = 1.0 / np.maximum(norm, 1e-6)
    inv.flags.writeable = False
    return inv


_WIN = None


def _window() -> np.ndarray:
    global _WIN
    if _WIN is None:
        _WIN = np.hanning(N_FFT + 1)[:N_FFT].astype(np.float32)
    return _WIN


def floor_frames(n_frames: int, content: list[tuple[float, float]], guard_s: float = 0.05) -> np.ndarray:
    """STFT frames (of ``_stft``) that lie wholly outside every ``content`` span (seconds, widened
    by ``guard_s``): where the clip holds nothing but its own floor."""
    centre = np.arange(n_frames) * HOP / SAMPLE_RATE
    half = N_FFT / 2 / SAMPLE_RATE
    free = np.ones(n_frames, bool)
    for a, b in content:
        free &= ~((centre + half > a - guard_s) & (centre - half < b + guard_s))
    return free


def noise_profile(power: np.ndarray, content: list[tuple[float, float]] | None = None,
                  quantile: float = 0.1) -> np.ndarray | None:
    """The clip's noise floor, as a mean power spectrum: over the frames outside its content
    (words, an event's active span) when those are known, else over its quietest frames (the
    lowest ``quantile`` by energy). None when there is no floor to remove: fewer than 0.1 s of
    it, digital silence, or a "floor" not 10 dB below the content (then it is content: a clip
    with no pause has no frames of floor alone, and gating would eat it)."""
    e = power.sum(axis=1)  # power: |STFT|^2 of the clip (frames x bins)
    if len(e) < 8:
        return None
    if content:
        floor = floor_frames(len(e), content)
    else:
        floor = e <= np.quantile(e, quantile)
    if floor.sum() * HOP < 0.1 * SAMPLE_RATE or floor.all():
        return None
    # content's typical level: its median frame where it is known, else the loud tenth
    quiet, loud = e[floor].mean(), np.median(e[~floor]) if content else np.quantile(e, 0.9)
    if quiet < 1e-9 * N_FFT or 10 * np.log10(loud / quiet) < 10.0:
        return None
    return power[floor].mean(axis=0)


def denoise(x: np.ndarray, max_cut_db: float = 20.0, content: list[tuple[float, float]] | None = None) -> np.ndarray:
    """noise_profile then spectral gating: each bin turned down where it is near the floor
    (a Wiener-like gain over twice the floor, smoothed over 3 frames so the gate does not
    chatter, never below -max_cut_db). A clip without a floor to remove is left as it is."""
    if len(x) < 2 * N_FFT or not np.any(x):
        return x
    spec = _stft(x)
    power = spec.real ** 2 + spec.imag ** 2
    profile = noise_profile(power, content)
    if profile is None:
        return x
    snr = np.maximum(power / (profile[None, :] * 2.0 + 1e-20) - 1.0, 0.0)
    gain = snr / (snr + 1.0)
    g = gain.copy()
    g[1:-1] = (gain[:-2] + gain[1:-1] + gain[2:]) / 3
    g = np.maximum(g, np.float32(10 ** (-max_cut_db / 20)))
    return _istft(spec * g, len(x))


def content_spans(clip: dict, clip_start_s: float, dur_s: float, kind: str) -> list[tuple[float, float]] | None:
    """What a clip holds besides its floor, in seconds from ``clip_start_s``: its words (speech
    with timings), its active span (a sound or music), else None (unknown)."""
    words = [(w["start_s"] - clip_start_s, w["end_s"] - clip_start_s) for w in (clip.get("words") or [])]
    words = [(a, b) for a, b in words if b > 0 and a < dur_s]
    if kind == "speech" and words:
        return words
    if kind in ("sound", "music") and clip.get("active_end_s") is not None and clip["active_end_s"] >= 0:
        return [(clip.get("active_start_s", 0.0) - clip_start_s, clip["active_end_s"] - clip_start_s)]
    return None


# ----------------------------------------------------------------------------- 4. core_locate
def core_span(x: np.ndarray, clip: dict, clip_start_s: float, kind: str, margin_s: float) -> tuple[float, float]:
    """The informative span of ``x`` (the clip from ``clip_start_s``), in seconds of ``x``:
    speech by its words, a sound or music by its active span, otherwise by energy (frames
    within 30 dB of the loudest); widened by ``margin_s`` and kept inside ``x``."""
    dur = len(x) / SAMPLE_RATE
    words = [w for w in (clip.get("words") or []) if w["start_s"] >= clip_start_s - 1e-6
             and w["end_s"] - clip_start_s <= dur + 1e-6]
    if kind == "speech" and words:
        a, b = words[0]["start_s"] - clip_start_s, words[-1]["end_s"] - clip_start_s
    elif kind in ("sound", "music") and clip.get("active_end_s") is not None and clip["active_end_s"] >= 0:
        a, b = clip.get("active_start_s", 0.0) - clip_start_s, clip["active_end_s"] - clip_start_s
    else:
        hop = SAMPLE_RATE // 100
        n = len(x) // hop
        if n == 0:
            return 0.0, dur
        e = np.einsum("ij,ij->i", x[: n * hop].reshape(n, hop), x[: n * hop].reshape(n, hop))
        on = np.nonzero(e > e.max() * 1e-3)[0]
        if len(on) == 0:
            return 0.0, dur
        a, b = on[0] * hop / SAMPLE_RATE, (on[-1] + 1) * hop / SAMPLE_RATE
    return max(0.0, a - margin_s), min(dur, b + margin_s)


# ----------------------------------------------------------------------------- 5. boundary_norm
def boundary_norm(start_s: float, span: tuple[float, float], dur_s: float, grid_s: float) -> tuple[float, float]:
    """The span (seconds of a clip placed at episode time ``start_s``) widened so both edges
    fall on the episode's ``grid_s`` grid, as far as the clip reaches (an edge the clip cannot
    reach stays at the clip's own edge)."""
    a, b = span
    ga = math.floor((start_s + a) / grid_s + 1e-9) * grid_s - start_s
    gb = math.ceil((start_s + b) / grid_s - 1e-9) * grid_s - start_s
    return (ga if ga >= 0 else a if a > 0 else 0.0), (gb if gb <= dur_s else dur_s)


# ----------------------------------------------------------------------------- 6. spec_smooth
def spec_smooth(mix: np.ndarray, at: int, half_s: float) -> None:
    """Smooth the magnitude spectrum of ``mix`` across sample ``at`` (a join): over
    +-``half_s``, each STFT frame's magnitudes are averaged with its neighbours' (phases kept),
    and the result is crossfaded in, so a join has no spectral step. In place."""
    h = int(half_s * SAMPLE_RATE)
    a, b = max(0, at - h - N_FFT), min(len(mix), at + h + N_FFT)
    if b - a < 2 * N_FFT:
        return
    x = mix[a:b].astype(np.float32)
    spec = _stft(x)
    mag, phase = np.abs(spec), np.angle(spec)
    sm = mag.copy()
    sm[1:-1] = (mag[:-2] + mag[1:-1] + mag[2:]) / 3
    y = _istft(sm * np.exp(1j * phase), len(x))
    w = np.zeros(len(x), np.float32)  # a window that is 1 at the join and 0 at the region's edges
    c = at - a
    w[:c] = np.linspace(0.0, 1.0, c, dtype=np.float32) ** 2
    w[c:] = np.linspace(1.0, 0.0, len(x) - c, dtype=np.float32) ** 2
    mix[a:b] = x * (1 - w) + y * w
