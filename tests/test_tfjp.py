"""TFJP: each step against audio where the right answer is known."""
import io

import numpy as np
import pytest
import soundfile as sf

from streamaudio.format import SAMPLE_RATE
from streamaudio.plan import EpisodePlan, SegmentPlan, TurnPlan
from streamaudio.render.label import episode_violations, label_turns
from streamaudio.render.mix import render
from streamaudio.render.tfjp import (DEFAULT_TFJP, N_FFT, boundary_norm, core_span, denoise, silence_cut,
                                     spec_smooth)

SR = SAMPLE_RATE


def _voice(n: int, f0: float = 150.0) -> np.ndarray:
    t = np.arange(n) / SR
    return sum(np.sin(2 * np.pi * f0 * k * t) / k for k in range(1, 6)).astype(np.float32) * 0.2


def _room(n: int, seed: int, level: float = 0.003) -> np.ndarray:
    """A recording's own floor: low-passed (coloured) noise."""
    w = np.random.default_rng(seed).standard_normal(n + 64)
    return (np.convolve(w, np.ones(8) / 8, "same")[:n] * level * 3).astype(np.float32)


def _clip(tmp_path, name, x, words, **kw):
    path = tmp_path / f"{name}.wav"
    sf.write(path, x, SR)
    return {"id": f"t:{name}", "corpus": "t", "path": str(path), "offset_s": 0.0, "duration_s": len(x) / SR,
            "sample_rate": SR, "text": " ".join(w["text"] for w in words), "language": "en", "labels": [],
            "license": "", "words": words, **kw}


def _two_words_with_a_pause(tmp_path, pause_s=2.0, room=True):
    """'one' at 0.3-0.8 s, a pause of ``pause_s``, 'two' for 0.5 s, 0.3 s of tail; the recording's
    own floor under all of it (or digital silence)."""
    a0, a1 = 0.3, 0.8
    b0 = a1 + pause_s
    b1 = b0 + 0.5
    n = int(round((b1 + 0.3) * SR))
    x = _room(n, 1) if room else np.zeros(n, np.float32)
    for s, e in ((a0, a1), (b0, b1)):
        x[int(s * SR):int(e * SR)] += _voice(int(e * SR) - int(s * SR))
    words = [{"text": "one", "start_s": a0, "end_s": a1}, {"text": "two", "start_s": b0, "end_s": b1}]
    return _clip(tmp_path, f"pause{pause_s}-{room}", x, words)


def _onsets(y: np.ndarray, thresh: float = 0.05) -> list[float]:
    """Where the voice starts after at least 0.2 s below ``thresh`` (10 ms frames)."""
    hop = SR // 100
    e = np.sqrt(np.mean(y[: len(y) // hop * hop].reshape(-1, hop) ** 2, axis=1))
    on, quiet = [], 20
    for i, v in enumerate(e):
        if v > thresh and quiet >= 20:
            on.append(i * hop / SR)
        quiet = 0 if v > thresh else quiet + 1
    return on


def test_silence_cut_shortens_a_planted_pause_and_moves_the_words_after_it_by_exactly_the_cut(tmp_path):
    clip = _two_words_with_a_pause(tmp_path, pause_s=2.0)
    cut = silence_cut(clip, limit_s=0.6)
    w0, w1 = cut["words"]
    assert w1["start_s"] - w0["end_s"] == pytest.approx(0.6, abs=1e-3)  # 2 s became 0.6 s
    assert w0 == clip["words"][0] and w1["start_s"] == pytest.approx(clip["words"][1]["start_s"] - 1.4, abs=1e-3)
    assert cut["duration_s"] == pytest.approx(clip["duration_s"] - 1.4, abs=1e-3)
    assert silence_cut(_two_words_with_a_pause(tmp_path, pause_s=0.5), 0.6)["words"][1]["start_s"] == 0.5 + 0.8
    # rendered (TFJP on): the second word is heard exactly where the cut row says, and the episode's
    # words say so too
    plan = EpisodePlan(segments=[SegmentPlan(clip=cut, start_s=1.0, kind="speech", role="user")],
                       turns=[TurnPlan(trigger_s=1.0 + w1["end_s"], kind="respond", text="one two",
                                       evidence=[0])], render={"tfjp": DEFAULT_TFJP})
    r = render(plan)
    y, _ = sf.read(io.BytesIO(r.flac), dtype="float32")
    on = _onsets(y)
    assert len(on) == 2 and on[0] == pytest.approx(1.3, abs=0.015) and on[1] == pytest.approx(1.0 + w1["start_s"], abs=0.015)
    assert [w["start_s"] for w in r.segments[0]["words"]] == [round(1.0 + w["start_s"], 4) for w in cut["words"]]
    turns, labels = label_turns(r.turns, r.duration_s)
    row = {"subtask": "asr_utterance", "ability": "real_time_asr", "split": "train", "sample_rate": SR,
           "chunk_s": 0.4, "duration_s": r.duration_s, "chunk_labels": labels, "segments": r.segments,
           "turns": turns, "system_prompt": ""}
    assert episode_violations(row) == []


def test_denoise_removes_a_clips_own_room_tone_and_keeps_its_words(tmp_path):
    clip = _two_words_with_a_pause(tmp_path, pause_s=1.0)
    x, _ = sf.read(clip["path"], dtype="float32")
    pause = slice(int(1.0 * SR), int(1.6 * SR))
    word = slice(int(0.35 * SR), int(0.75 * SR))
    level = lambda z, s: 10 * np.log10(np.mean(z[s].astype(np.float64) ** 2))  # noqa: E731
    y = denoise(x, content=[(w["start_s"], w["end_s"]) for w in clip["words"]])
    # without timings the quietest tenth of the frames stands for the floor (an underestimate: less is removed)
    assert level(x, pause) - level(denoise(x), pause) >= 8.0
    assert level(x, pause) - level(y, pause) >= 12.0  # the room tone is gone from the pause
    assert abs(level(x, word) - level(y, word)) < 0.5  # the word is not
    clean = _two_words_with_a_pause(tmp_path, pause_s=1.0, room=False)
    xc, _ = sf.read(clean["path"], dtype="float32")
    assert np.array_equal(denoise(xc), xc)  # no floor, nothing to remove
    continuous = _voice(SR * 2) + _room(SR * 2, 2)
    assert np.array_equal(denoise(continuous), continuous)  # no frame of floor alone: left as it is


def test_core_locate_and_boundary_norm(tmp_path):
    clip = _two_words_with_a_pause(tmp_path, pause_s=0.4)
    x, _ = sf.read(clip["path"], dtype="float32")
    a, b = core_span(x, clip, 0.0, "speech", margin_s=0.12)
    assert (a, b) == pytest.approx((0.18, 1.82), abs=1e-6)  # 'one' at 0.3 s .. 'two' ends at 1.7 s
    # a sound by its active span; a clip with neither words nor span by its energy
    assert core_span(x, {**clip, "words": [], "active_start_s": 0.5, "active_end_s": 1.0}, 0.0, "sound", 0.1) \
        == pytest.approx((0.4, 1.1))
    ea, eb = core_span(x, {**clip, "words": []}, 0.0, "speech", 0.0)
    assert ea == pytest.approx(0.3, abs=0.011) and eb == pytest.approx(1.7, abs=0.011)
    ga, gb = boundary_norm(1.37, (a, b), len(x) / SR, 0.2)
    for edge in (1.37 + ga, 1.37 + gb):
        assert abs(edge / 0.2 - round(edge / 0.2)) < 1e-6  # on the half-chunk grid
    assert ga <= a and gb >= b and gb - b < 0.2 and a - ga < 0.2
    assert boundary_norm(0.05, (0.01, 0.5), 0.6, 0.2) == pytest.approx((0.01, 0.55))  # it cannot reach 0.0: stays


def test_rendered_clip_edges_fall_on_the_half_chunk_grid_and_the_room_tone_is_not_heard(tmp_path):
    clip = _two_words_with_a_pause(tmp_path, pause_s=0.4)
    bed = _clip(tmp_path, "bed", (np.random.default_rng(4).standard_normal(SR * 8) * 0.001).astype(np.float32), [])
    segs = [SegmentPlan(clip=bed, start_s=0.0, kind="noise", role="background", loop_to_end=True),
            SegmentPlan(clip=clip, start_s=1.37, kind="speech", role="user")]
    segs[0].gain_db = -40.0
    on = render(EpisodePlan(segments=segs, turns=[], min_duration_s=4.0, render={"tfjp": DEFAULT_TFJP}))
    off = render(EpisodePlan(segments=segs, turns=[], min_duration_s=4.0))
    s = on.segments[1]
    for edge in (s["start_s"], s["end_s"]):
        assert abs(edge / 0.2 - round(edge / 0.2)) < 1e-4
    assert s["words"] == off.segments[1]["words"]  # the content did not move
    y_on, _ = sf.read(io.BytesIO(on.flac), dtype="float32")
    y_off, _ = sf.read(io.BytesIO(off.flac), dtype="float32")
    # the 0.3 s before 'one' (clip time 0-0.3 s) carried the clip's room tone over the bed; TFJP cuts
    # the clip there to its margin and removes the tone, so the stream holds the bed alone
    lead = slice(int(1.40 * SR), int(1.52 * SR))
    assert np.mean(y_off[lead] ** 2) > 3 * np.mean(y_on[lead] ** 2)


def test_spec_smooth_takes_the_spectral_step_out_of_a_join():
    rng = np.random.default_rng(0)
    n = SR
    x = np.concatenate([rng.standard_normal(n).astype(np.float32) * 0.05, _voice(n)])  # hiss, then a voice
    y = x.copy()
    spec_smooth(y, n, 0.04)

    def flux_at_join(z):
        frames = np.lib.stride_tricks.sliding_window_view(z, N_FFT)[::128]
        mag = np.abs(np.fft.rfft(frames * np.hanning(N_FFT), axis=1))
        flux = np.sum(np.diff(np.log(mag + 1e-6), axis=0) ** 2, axis=1)
        j = n // 128
        return flux[j - 4:j + 4].max()

    assert flux_at_join(y) < 0.7 * flux_at_join(x)
    far = slice(0, n - 2 * N_FFT - int(0.04 * SR))
    assert np.array_equal(y[far], x[far])  # only the join is touched


def test_two_noise_tracks_lie_under_the_whole_stream_at_their_levels(tmp_path):
    from streamaudio.plan import Pool
    from streamaudio.plan.tracks import NoiseTrackSettings, add_noise_tracks
    from streamaudio.render.mix import active_level_db, mix_plan

    rng = np.random.default_rng(0)
    noises = [_clip(tmp_path, f"noise{k}", (rng.standard_normal(SR * 5) * 0.05 * (k + 1)).astype(np.float32), [])
              for k in range(3)]
    speech = _two_words_with_a_pause(tmp_path, pause_s=0.4, room=False)
    plan = EpisodePlan(segments=[SegmentPlan(clip=speech, start_s=1.0, kind="speech", role="user")], turns=[],
                       min_duration_s=20.0)
    settings = NoiseTrackSettings(background_db=-6.0, environment_db=-12.0, crossfade_s=1.0)
    add_noise_tracks(plan, Pool("noise", noises), np.random.default_rng(1), settings)
    mixed = mix_plan(plan)
    n = len(mixed.mix)
    levels = {}
    for name, want in (("background", -6.0), ("environment", -12.0)):
        idx = [i for i, s in enumerate(plan.segments) if s.attrs.get("track") == name]
        assert len(idx) >= 2  # the layer changes clip over 20 s
        layer = np.zeros(n, np.float32)
        for i in idx:
            at, end, x = mixed.stems[i]
            layer[at:end] += x
        hop = SR // 10
        e = 10 * np.log10(np.mean(layer[: n // hop * hop].reshape(-1, hop).astype(np.float64) ** 2, axis=1) + 1e-20)
        assert e.min() > e.max() - 6.0  # the layer never drops out: no gap, crossfades not holes
        levels[name] = active_level_db(layer)
        # consecutive pieces overlap by their crossfade; the last loops to the stream's end
        for a, b in zip(idx, idx[1:]):
            assert mixed.stems[b][0] < mixed.stems[a][1]
        assert mixed.stems[idx[-1]][1] == n
    speech_level = active_level_db(mixed.stems[0][2])
    assert levels["background"] - speech_level == pytest.approx(-6.0, abs=1.0)
    assert levels["environment"] - speech_level == pytest.approx(-12.0, abs=1.0)
