"""Rendering: an EpisodePlan becomes one 16 kHz mono stream.

Every clip is read with soundfile (only the frames the plan uses), mixed
down to mono, resampled with soxr, normalised to one reference level and
then set to the plan's gain, with short fades so that no join clicks: a
click at a boundary would become a cue for "respond now". Background beds
loop, with crossfades, under the whole episode.
"""
from __future__ import annotations

import io
import json
from dataclasses import dataclass

import numpy as np
import soundfile as sf

from ..audio import AudioReadError, load_clip as _load_clip
from ..format import CHUNK_S, SAMPLE_RATE, round_up_to_chunk
from ..plan.types import EpisodePlan, PlanError, RenderError, SegmentPlan

REFERENCE_DBFS = -23.0  # active level every clip is normalised to before gain_db
PEAK_LIMIT = 0.97
FADE_S = 0.01
LOOP_XFADE_S = 0.05
FLAC_LEVEL = 0.0
SNR_FLOOR_DB = -100.0  # below this, the rest of the mix is digital silence: no SNR to speak of


def load_clip(clip: dict, start_s: float = 0.0, dur_s: float | None = None) -> np.ndarray:
    try:
        return _load_clip(clip, start_s, dur_s)
    except AudioReadError as exc:
        raise RenderError(str(exc)) from None


@dataclass
class RenderedEpisode:
    flac: bytes
    duration_s: float
    segments: list[dict]  # format v2 segment structs (episode time), in plan order


def _frame_energy(x: np.ndarray) -> np.ndarray:
    """Mean square of every 10 ms frame (a dot product per frame: no squared copy of the
    signal is made; float32 sums of 160 squares lose nothing a level in dB can show)."""
    hop = SAMPLE_RATE // 100
    n = len(x) // hop
    if n == 0:
        return np.array([np.mean(x.astype(np.float64) ** 2) + 1e-12])
    f = x[: n * hop].reshape(n, hop)
    return np.einsum("ij,ij->i", f, f).astype(np.float64) / hop + 1e-12


def _active(e: np.ndarray) -> np.ndarray:
    """The active 10 ms frames: those within 20 dB of the loudest 5%."""
    return e >= np.percentile(e, 95) * 0.01


def active_level_db(x: np.ndarray) -> float:
    """Mean level of the active 10 ms frames. Pauses in speech and the quiet around a
    short event do not count, so a sparse event and continuous noise at the same gain
    sound equally loud where they sound."""
    e = _frame_energy(x)
    return float(10 * np.log10(np.mean(e[_active(e)])))


def snr_db(own: np.ndarray, rest: np.ndarray) -> float | None:
    """A segment's level over everything else audible under it: mean energies over the
    segment's active frames, own / rest. None when the rest is digital silence there."""
    e_own, e_rest = _frame_energy(own), _frame_energy(rest)
    act = _active(e_own)
    rest_db = 10 * np.log10(np.mean(e_rest[act]))
    if rest_db < SNR_FLOOR_DB:
        return None
    return float(np.float32(round(10 * np.log10(np.mean(e_own[act])) - rest_db, 2))) + 0.0  # no "-0.0"


def reverberate(x: np.ndarray, rir: np.ndarray) -> np.ndarray:
    """``x`` as heard in the room of ``rir``: convolved with the response from its direct path
    on (what precedes the strongest tap is cut, so the speech is not delayed and its word
    timings still hold), the same length as ``x`` (the reverberant tail after the clip ends
    is not kept). The level is set afterwards, like any clip's."""
    if len(rir) == 0 or not np.any(rir):
        raise RenderError("room impulse response is empty or silent")
    start = max(0, int(np.argmax(np.abs(rir))) - SAMPLE_RATE // 1000)
    h = rir[start:].astype(np.float64)
    n = len(x) + len(h) - 1
    size = 1 << (n - 1).bit_length()
    y = np.fft.irfft(np.fft.rfft(x.astype(np.float64), size) * np.fft.rfft(h, size), size)[: len(x)]
    return y.astype(np.float32)


def _fade(x: np.ndarray, n_in: int, n_out: int) -> np.ndarray:
    n_in, n_out = min(n_in, len(x) // 2), min(n_out, len(x) // 2)
    if n_in:
        x[:n_in] *= np.linspace(0.0, 1.0, n_in, dtype=np.float32)
    if n_out:
        x[len(x) - n_out:] *= np.linspace(1.0, 0.0, n_out, dtype=np.float32)
    return x


def _loop(x: np.ndarray, n: int) -> np.ndarray:
    """Repeat x to n samples with crossfades, so the loop point is not audible."""
    if len(x) >= n:
        return x[:n].copy()
    xf = min(int(LOOP_XFADE_S * SAMPLE_RATE), len(x) // 4)
    out = np.zeros(n, dtype=np.float32)
    ramp_in = np.linspace(0.0, 1.0, xf, dtype=np.float32)
    pos = 0
    while pos < n:
        piece = x.copy()
        if pos > 0 and xf:
            piece[:xf] *= ramp_in
            out[pos:pos + xf] *= ramp_in[::-1][: min(xf, n - pos)]
        end = min(n, pos + len(piece))
        out[pos:end] += piece[: end - pos]
        pos += len(x) - xf
    return out


def _words(seg: SegmentPlan, start_s: float, end_s: float) -> list[dict]:
    """Clip-time words -> episode time, keeping words wholly inside the cut."""
    out = []
    cut0 = seg.clip_start_s
    for w in seg.clip.get("words") or []:
        ws, we = w["start_s"] - cut0, w["end_s"] - cut0
        if ws < -1e-6 or start_s + we > end_s + 1e-6:
            continue
        out.append({"text": w["text"], "start_s": round(start_s + ws, 4), "end_s": round(min(end_s, start_s + we), 4)})
    return out


def render(plan: EpisodePlan, chunk_s: float = CHUNK_S) -> RenderedEpisode:
    if not plan.segments:
        raise PlanError("episode has no segments")
    for seg in plan.segments:
        if seg.start_s < 0:
            raise PlanError(f"segment starts before the episode ({seg.start_s})")

    def prepared(seg: SegmentPlan, dur_s: float | None) -> np.ndarray:
        x = load_clip(seg.clip, seg.clip_start_s, dur_s)
        if len(x) == 0:
            raise RenderError(f"{seg.clip['id']}: no audio")
        if seg.rir is not None:
            x = reverberate(x, load_clip(seg.rir))
        level = active_level_db(x)
        if level < -90:
            raise RenderError(f"{seg.clip['id']}: clip is digital silence")
        x *= np.float32(10 ** ((REFERENCE_DBFS + seg.gain_db - level) / 20))
        return x

    # foreground first: it fixes the episode's length, so a background bed is read
    # only as far as it is needed (a bed longer than the episode is never decoded whole)
    loaded: dict[int, np.ndarray] = {i: prepared(s, s.clip_dur_s) for i, s in enumerate(plan.segments) if not s.loop_to_end}
    ends = [plan.segments[i].start_s + len(x) / SAMPLE_RATE for i, x in loaded.items()]
    triggers = [t.trigger_s for t in plan.turns]
    duration_s = round_up_to_chunk(max([plan.min_duration_s, *ends, *triggers, chunk_s]), chunk_s)
    n = int(round(duration_s * SAMPLE_RATE))
    for i, seg in enumerate(plan.segments):
        if seg.loop_to_end:
            avail = seg.clip["duration_s"] - seg.clip_start_s
            need = (n - int(round(seg.start_s * SAMPLE_RATE))) / SAMPLE_RATE
            loaded[i] = prepared(seg, need if need < avail - 1e-3 else None)
    loaded = [loaded[i] for i in range(len(plan.segments))]
    mix = np.zeros(n, dtype=np.float32)
    fade = int(FADE_S * SAMPLE_RATE)
    placed: list = [None] * len(plan.segments)
    gains = [float(seg.gain_db) for seg in plan.segments]
    # segments with a target SNR go last: their gain is set over what the others put under them
    order = sorted(range(len(plan.segments)), key=lambda i: plan.segments[i].snr_db is not None)
    for i in order:
        seg, x = plan.segments[i], loaded[i]
        at = int(round(seg.start_s * SAMPLE_RATE))
        if seg.loop_to_end:
            x = _loop(x, n - at)
        x = _fade(x, fade, fade)
        end = min(n, at + len(x))
        x = x[: end - at]
        if seg.snr_db is not None and end > at:
            now = snr_db(x, mix[at:end])
            if now is not None:  # something is under it: move its level to the target over it
                delta = float(seg.snr_db) - now
                x = x * np.float32(10 ** (delta / 20))
                gains[i] += delta
        mix[at:end] += x
        placed[i] = (seg, at, end, x)
    # measured on the mix as rendered, before the limiter (which scales everything alike)
    snrs = [snr_db(x, mix[at:end] - x) if end > at else None for _, at, end, x in placed]

    # a peak limiter on the whole mix keeps every relative level; its gain is
    # added to each segment's gain_db so the metadata still tells the truth
    peak = float(np.max(np.abs(mix))) if n else 0.0
    shift_db = 0.0
    if peak > PEAK_LIMIT:
        mix *= np.float32(PEAK_LIMIT / peak)
        shift_db = 20 * np.log10(PEAK_LIMIT / peak)

    segments = []
    for (seg, at, end, _), snr, gain in zip(placed, snrs, gains):
        clip = seg.clip
        s, e = at / SAMPLE_RATE, end / SAMPLE_RATE
        segments.append({
            "start_s": round(s, 4), "end_s": round(e, 4), "kind": seg.kind, "role": seg.role,
            "text": clip.get("text", "") if seg.text is None else seg.text,
            "language": clip.get("language", "") if seg.kind == "speech" else "",
            "labels": list(clip.get("labels") or []) if seg.labels is None else list(seg.labels),
            "words": _words(seg, s, e) if seg.kind == "speech" else [],
            "gain_db": float(np.float32(gain + shift_db)),
            "corpus": clip["corpus"], "clip_id": clip["id"], "license": clip.get("license", ""),
            "snr_db": snr,
            "attrs": json.dumps({**seg.attrs, **({"rir": seg.rir["id"]} if seg.rir else {})}, sort_keys=True,
                                separators=(",", ":"), ensure_ascii=False),
        })
    buf = io.BytesIO()
    # FLAC level 0: ~30% faster to encode than the default for ~1% more bytes (benchmarks/bench_render.py)
    sf.write(buf, mix, SAMPLE_RATE, format="FLAC", subtype="PCM_16", compression_level=FLAC_LEVEL)
    return RenderedEpisode(flac=buf.getvalue(), duration_s=duration_s, segments=segments)
