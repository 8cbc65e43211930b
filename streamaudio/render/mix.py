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
from .tfjp import (TfjpSettings, boundary_norm, content_spans, core_span, denoise, original_end_time, original_time, remove_spans,
                   spec_smooth)

REFERENCE_DBFS = -23.0  # active level every clip is normalised to before gain_db
PEAK_LIMIT = 0.97
FADE_S = 0.01
LOOP_XFADE_S = 0.05
FLAC_LEVEL = 0.0
SNR_FLOOR_DB = -100.0  # below this, the rest of the mix is digital silence: no SNR to speak of
# A speech segment is still heard while it makes a 100 ms window of the stream this much louder
# than the stream without it (the published check allows 1 dB; the margin covers windows that
# start between the 1 ms grid's points). Below -80 dBFS nothing counts as heard, so a clip's
# dither or a faded tail over digital silence does not hold a reply back.
AUDIBLE_WINDOW_S = 0.1
AUDIBLE_MARGIN_DB = 0.5
AUDIBLE_FLOOR = 10 ** (-80 / 10)  # mean square
# a turn waits for a whole utterance when its evidence_s is at or after the last word's end
# (the plan places words on clip timings, the segment on a sample: they agree to well under 1 ms)
WORD_END_TOL_S = 1e-3


def load_clip(clip: dict, start_s: float = 0.0, dur_s: float | None = None) -> np.ndarray:
    """The clip's audio (16 kHz mono) from ``start_s`` for ``dur_s``; a clip row with ``edits``
    (TFJP's silence_cut) is read in its edited time: the removed spans are cut out."""
    try:
        edits = clip.get("edits")
        if not edits:
            return _load_clip(clip, start_s, dur_s)
        dur_s = clip["duration_s"] - start_s if dur_s is None else dur_s
        removed = sum(e1 - e0 for e0, e1 in edits)
        t0, t1 = original_time(start_s, edits), original_end_time(start_s + dur_s, edits)
        original = {**clip, "duration_s": round(clip["duration_s"] + removed, 6)}
        x = _load_clip(original, t0, min(t1 - t0, original["duration_s"] - t0))
        return remove_spans(x, t0, edits)
    except AudioReadError as exc:
        raise RenderError(str(exc)) from None


def to_pcm16(x: np.ndarray) -> np.ndarray:
    """float32 -> int16 as libsndfile converts when it writes 16-bit FLAC (x * 32768, rounded
    to nearest, ties to even), so the FLAC bytes are the same as from floats; done here, an
    encode costs ~10% less CPU. The clip never acts on a rendered mix (the limiter keeps it
    within PEAK_LIMIT) and keeps a full-scale sample from wrapping."""
    return np.clip(np.rint(x * np.float32(32768)), -32768, 32767).astype(np.int16)


@dataclass
class RenderedEpisode:
    flac: bytes
    duration_s: float
    segments: list[dict]  # format v2 segment structs (episode time), in plan order
    turns: list[dict]  # the plan's turns (stored form), settled on the audio: see settle_turns


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


def _active_span_attr(seg: SegmentPlan, start_s: float, end_s: float) -> dict:
    """{"active_span_s": [start, end]} (episode time) for a sound or music clip whose row knows
    where it is active: what an audit of the quiet around events needs (a recipe's own value wins)."""
    a0, a1 = seg.clip.get("active_start_s"), seg.clip.get("active_end_s")
    if seg.kind not in ("sound", "music") or a1 is None or a0 is None or a1 < 0:
        return {}
    origin = seg.start_s - seg.clip_start_s
    a, b = max(start_s, origin + a0), min(end_s, origin + a1)
    return {"active_span_s": [round(a, 4), round(b, 4)]} if b > a else {}


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


@dataclass
class Mixed:
    """A plan mixed down (before the limiter): the stream, and each segment as placed
    (its samples ``stem`` at ``at``..``end`` and its gain after any SNR target)."""
    mix: np.ndarray
    duration_s: float
    stems: list[tuple[int, int, np.ndarray]]
    gains: list[float]
    origins: list[int]  # the sample where each segment's clip time clip_start_s lies (its planned start)


def mix_plan(plan: EpisodePlan, chunk_s: float = CHUNK_S, min_duration_s: float = 0.0) -> Mixed:
    """Every segment read, prepared and placed; the stream as long as the plan needs (whole
    chunks, past every segment and turn, at least ``min_duration_s``)."""
    if not plan.segments:
        raise PlanError("episode has no segments")
    for seg in plan.segments:
        if seg.start_s < 0:
            raise PlanError(f"segment starts before the episode ({seg.start_s})")

    default_tfjp = TfjpSettings.from_dict(plan.render.get("tfjp", False))
    by_corpus = {c: TfjpSettings.from_dict(d) for c, d in (plan.render.get("tfjp_by_corpus") or {}).items()}
    lead = [0.0] * len(plan.segments)  # seconds of the clip left out before what is mixed (core_locate)

    def prepared(i: int, seg: SegmentPlan, dur_s: float | None) -> np.ndarray:
        x = load_clip(seg.clip, seg.clip_start_s, dur_s)
        if len(x) == 0:
            raise RenderError(f"{seg.clip['id']}: no audio")
        tfjp = by_corpus.get(seg.clip.get("corpus"), default_tfjp)
        if tfjp.enabled and seg.role != "background":  # beds and noise tracks are the floor itself
            x = _tfjp_clip(x, seg, tfjp)
            a, b = boundary_norm(seg.start_s, core_span(x, seg.clip, seg.clip_start_s, seg.kind, tfjp.margin_s),
                                 len(x) / SAMPLE_RATE, tfjp.grid_s)
            # a room's reverberation rings past the span: only the lead is cut then
            b = len(x) / SAMPLE_RATE if seg.rir is not None else b
            ia, ib = int(round(a * SAMPLE_RATE)), int(round(b * SAMPLE_RATE))
            if ib - ia > 0:
                lead[i] = ia / SAMPLE_RATE
                x = _fade(x[ia:ib].copy(), int(tfjp.fade_s * SAMPLE_RATE), int(tfjp.fade_s * SAMPLE_RATE))
                for edge in (0, len(x)):  # no spectral step where the clip meets the stream
                    spec_smooth(x, edge, tfjp.smooth_s)
        if seg.rir is not None:
            x = reverberate(x, load_clip(seg.rir))
        level = active_level_db(x)
        if level < -90:
            raise RenderError(f"{seg.clip['id']}: clip is digital silence")
        x *= np.float32(10 ** ((REFERENCE_DBFS + seg.gain_db - level) / 20))
        return x

    # foreground first: it fixes the episode's length, so a background bed is read
    # only as far as it is needed (a bed longer than the episode is never decoded whole)
    loaded: dict[int, np.ndarray] = {i: prepared(i, s, s.clip_dur_s) for i, s in enumerate(plan.segments) if not s.loop_to_end}
    ends = [plan.segments[i].start_s + lead[i] + len(x) / SAMPLE_RATE for i, x in loaded.items()]
    triggers = [t.trigger_s for t in plan.turns]
    duration_s = round_up_to_chunk(max([plan.min_duration_s, min_duration_s, *ends, *triggers, chunk_s]), chunk_s)
    n = int(round(duration_s * SAMPLE_RATE))
    for i, seg in enumerate(plan.segments):
        if seg.loop_to_end:
            avail = seg.clip["duration_s"] - seg.clip_start_s
            need = (n - int(round(seg.start_s * SAMPLE_RATE))) / SAMPLE_RATE
            loaded[i] = prepared(i, seg, need if need < avail - 1e-3 else None)
    loaded = [loaded[i] for i in range(len(plan.segments))]
    mix = np.zeros(n, dtype=np.float32)
    fade = int(FADE_S * SAMPLE_RATE)
    stems: list = [None] * len(plan.segments)
    gains = [float(seg.gain_db) for seg in plan.segments]
    # segments with a target SNR go last: their gain is set over what the others put under them
    order = sorted(range(len(plan.segments)), key=lambda i: plan.segments[i].snr_db is not None)
    for i in order:
        seg, x = plan.segments[i], loaded[i]
        at = int(round(seg.start_s * SAMPLE_RATE)) + int(round(lead[i] * SAMPLE_RATE))
        if seg.loop_to_end:
            x = _loop(x, n - at)
        f = fade if seg.fade_s is None else int(seg.fade_s * SAMPLE_RATE)
        x = _fade(x, 0 if at == 0 else f, f if not seg.loop_to_end else fade)
        end = min(n, at + len(x))
        x = x[: end - at]
        if seg.snr_db is not None and end > at:
            now = snr_db(x, mix[at:end])
            if now is not None:  # something is under it: move its level to the target over it
                delta = float(seg.snr_db) - now
                x = x * np.float32(10 ** (delta / 20))
                gains[i] += delta
        mix[at:end] += x
        stems[i] = (at, end, x)
    return Mixed(mix=mix, duration_s=duration_s, stems=stems, gains=gains,
                 origins=[int(round(seg.start_s * SAMPLE_RATE)) for seg in plan.segments])


def _tfjp_clip(x: np.ndarray, seg: SegmentPlan, tfjp: TfjpSettings) -> np.ndarray:
    """noise_profile and denoise: the clip's own room tone turned down to nothing, so that only
    the episode's floor is heard around it."""
    return denoise(x, tfjp.denoise_db, content_spans(seg.clip, seg.clip_start_s, len(x) / SAMPLE_RATE, seg.kind))


def residue_db(mix: np.ndarray, stem: tuple[int, int, np.ndarray], t0: int, t1: int) -> float:
    """How much louder the stream is over samples [t0, t1) with ``stem`` in it than without it
    (dB; both sides over the same inaudible floor): ~0 once the segment is no longer heard."""
    at, end, x = stem
    with_it = mix[t0:t1].astype(np.float64)
    without = with_it.copy()
    a, b = max(t0, at), min(t1, end)
    if b > a:
        without[a - t0:b - t0] -= x[a - at:b - at]
    floor = AUDIBLE_FLOOR * max(1, t1 - t0)
    return float(10 * np.log10((np.dot(with_it, with_it) + floor) / (np.dot(without, without) + floor)))


def audible_end(mix: np.ndarray, stem: tuple[int, int, np.ndarray], from_s: float) -> float:
    """When a segment stops being heard in the stream, at or after ``from_s`` (episode time):
    the earliest time from which every window of AUDIBLE_WINDOW_S, on a 1 ms grid, is less than
    AUDIBLE_MARGIN_DB louder with the segment than without it. What decides is the stream as
    heard: the room's reverberation, the clip's own breath or tail, and what lies under it."""
    at, end, x = stem
    w = int(AUDIBLE_WINDOW_S * SAMPLE_RATE)
    p0 = max(at, int(round(from_s * SAMPLE_RATE)))
    if p0 >= end:
        return from_s
    hi = min(len(mix), end + w)
    seg_mix = mix[p0:hi].astype(np.float64)
    rest = seg_mix.copy()
    rest[: end - p0] -= x[p0 - at:]
    c_with = np.concatenate([[0.0], np.cumsum(seg_mix * seg_mix)])
    c_rest = np.concatenate([[0.0], np.cumsum(rest * rest)])
    step = SAMPLE_RATE // 1000
    starts = np.arange(0, end - p0, step)
    stops = np.minimum(starts + w, hi - p0)
    floor = AUDIBLE_FLOOR * w
    ratio = (c_with[stops] - c_with[starts] + floor) / (c_rest[stops] - c_rest[starts] + floor)
    loud = np.nonzero(ratio > 10 ** (AUDIBLE_MARGIN_DB / 10))[0]
    if len(loud) == 0:
        return from_s
    return max(from_s, (p0 + int(starts[loud[-1]]) + step) / SAMPLE_RATE)


def settle_turns(plan: EpisodePlan, mixed: Mixed, words: list[list[dict]]) -> list[dict]:
    """The plan's turns (stored form: evidence as segment indices and a time), each turn that
    waits for the whole of a speech segment moved to when that segment has been heard: its
    evidence_s to the segment's audible end in the stream (never earlier than planned), its
    trigger by the same amount, so the latency the recipe chose counts from then. A turn due at
    a word end inside an utterance (an incremental transcript) keeps its time."""
    ends: dict[int, float] = {}
    out = []
    for t in plan.turns:
        idx, ev = plan.evidence_of(t)
        heard = ev
        for i in idx:
            w = words[i]
            if plan.segments[i].kind != "speech" or not w or ev < w[-1]["end_s"] - WORD_END_TOL_S:
                continue
            if i not in ends:
                ends[i] = audible_end(mixed.mix, mixed.stems[i], w[-1]["end_s"])
            if ends[i] > w[-1]["end_s"]:  # heard past its last word (else the plan's time stands)
                heard = max(heard, ends[i])
        shift = heard - ev
        out.append({"trigger_s": float(t.trigger_s) + shift, "kind": t.kind, "text": t.text, "emotion": t.emotion,
                    "tool_call": t.tool_call, "evidence": idx, "evidence_s": float(heard)})
    return out


def render(plan: EpisodePlan, chunk_s: float = CHUNK_S) -> RenderedEpisode:
    mixed = mix_plan(plan, chunk_s)
    words = [_words(seg, o / SAMPLE_RATE, end / SAMPLE_RATE) if seg.kind == "speech" else []
             for seg, o, (_, end, _) in zip(plan.segments, mixed.origins, mixed.stems)]
    turns = settle_turns(plan, mixed, words)
    late = max([t["trigger_s"] for t in turns], default=0.0)
    if late > mixed.duration_s + 1e-9:  # a settled turn falls past the stream: lengthen it (beds loop on)
        mixed = mix_plan(plan, chunk_s, min_duration_s=late)
        turns = settle_turns(plan, mixed, words)
    mix, duration_s, n, gains = mixed.mix, mixed.duration_s, len(mixed.mix), mixed.gains
    placed = [(seg, at, end, x) for seg, (at, end, x) in zip(plan.segments, mixed.stems)]
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
    for (seg, at, end, _), snr, gain, seg_words in zip(placed, snrs, gains, words):
        clip = seg.clip
        s, e = at / SAMPLE_RATE, end / SAMPLE_RATE
        segments.append({
            "start_s": round(s, 4), "end_s": round(e, 4), "kind": seg.kind, "role": seg.role,
            "text": clip.get("text", "") if seg.text is None else seg.text,
            "language": clip.get("language", "") if seg.kind == "speech" else "",
            "labels": list(clip.get("labels") or []) if seg.labels is None else list(seg.labels),
            "words": seg_words,
            "gain_db": float(np.float32(gain + shift_db)),
            "corpus": clip["corpus"], "clip_id": clip["id"], "license": clip.get("license", ""),
            "snr_db": snr,
            "attrs": json.dumps({**_active_span_attr(seg, s, e), **seg.attrs, **({"rir": seg.rir["id"]} if seg.rir else {})},
                                sort_keys=True, separators=(",", ":"), ensure_ascii=False),
        })
    buf = io.BytesIO()
    # FLAC level 0: ~30% faster to encode than the default for ~1% more bytes (benchmarks/bench_render.py)
    sf.write(buf, to_pcm16(mix), SAMPLE_RATE, format="FLAC", subtype="PCM_16", compression_level=FLAC_LEVEL)
    return RenderedEpisode(flac=buf.getvalue(), duration_s=duration_s, segments=segments, turns=turns)
