"""Word boundaries on speech with pauses: optional silence in pocketsphinx's search, and the
energy check every backend applies (streamaudio/align/energy.py)."""
import itertools

import numpy as np
import pytest

from streamaudio.align import energy
from streamaudio.align.base import AlignedWord
from streamaudio.fixtures.paused_speech import (
    SAMPLE_RATE,
    _spoken_word,
    noise_floor,
    paused_clips,
)
from streamaudio.speech.espeak import load_voices

SR = SAMPLE_RATE


def _errors(words, truth):
    out = []
    for w, t in zip(words, truth):
        out += [w.start_s - t["start_s"], w.end_s - t["end_s"]]
    return np.abs(out)


@pytest.fixture(scope="module")
def paused():
    # seed 3: six sentences, four voices, pauses of 0-250 ms, noise floors from -70 to -52 dBFS
    return paused_clips(6, seed=3)


def test_paused_fixture_truth_is_where_the_words_are_audible(paused):
    for c in paused:
        assert [w["text"] for w in c.words] == c.text.split()
        gaps = [b["start_s"] - a["end_s"] for a, b in zip(c.words, c.words[1:])]
        assert min(gaps) >= 0.0099 and max(gaps) <= 0.2601  # 0-250 ms of pause, plus half a window each side
        assert c.words[0]["start_s"] >= 0.15 and c.words[-1]["end_s"] <= len(c.audio) / SR - 0.2
        # between words there is only the noise floor: far below the words themselves
        lv = energy.levels(c.audio)
        speech = np.percentile(lv.db, 95, axis=1)
        for a, b in zip(c.words, c.words[1:]):
            if b["start_s"] - a["end_s"] > 0.03:
                i, j = lv.index(a["end_s"] + 0.01), lv.index(b["start_s"] - 0.01)
                assert np.all(lv.db[:, i:j].max(axis=1) < speech - 20)
    again = paused_clips(2, seed=3)
    assert np.array_equal(again[1].audio, paused[1].audio) and again[1].words == paused[1].words


def test_optional_silence_in_the_search_keeps_pauses_out_of_words(paused):
    """The search alone (no energy check): with silence made cheap, beams wide and no
    lattice rescoring, pauses are silence; pocketsphinx's defaults (the old search) give
    pauses to the words (here: 90th percentile 100 ms and more)."""
    from streamaudio.align.pocketsphinx_backend import PocketsphinxAligner

    aligner = PocketsphinxAligner()
    errors = np.concatenate([_errors(aligner.align(c.audio, c.text, "en", refine=False).words, c.words) for c in paused])
    assert np.median(errors) <= 0.025 and np.percentile(errors, 90) <= 0.06


def test_pocketsphinx_with_the_energy_check_meets_the_targets_on_paused_speech(paused):
    from streamaudio.align.pocketsphinx_backend import PocketsphinxAligner

    aligner = PocketsphinxAligner()
    errors = []
    for c in paused:
        al = aligner.align(c.audio, c.text, "en")
        assert [w.text for w in al.words] == c.text.split()
        assert all(a.end_s <= b.start_s + 1e-9 for a, b in zip(al.words, al.words[1:]))
        errors.append(_errors(al.words, c.words))
    errors = np.concatenate(errors)
    assert np.median(errors) <= 0.02 and np.percentile(errors, 90) <= 0.05


# ------------------------------------------------------------------ the energy rule alone
@pytest.fixture(scope="module")
def voice():
    return load_voices("en")[0]


def _scene(words_audio, gaps_s, noise_dbfs=-60.0, lead_s=0.3, tail_s=0.4, seed=0):
    """Words (clean audio, cut to where they are audible) joined by gaps over a noise floor;
    returns the audio and each word's true (start, end)."""
    pieces, spans, pos = [np.zeros(int(lead_s * SR), np.float32)], [], int(lead_s * SR)
    for k, x in enumerate(words_audio):
        if k:
            g = np.zeros(int(gaps_s[k - 1] * SR), np.float32)
            pieces.append(g)
            pos += len(g)
        half = int(0.005 * SR)  # the truth's rule: centres of the first and last audible 10 ms windows
        spans.append(((pos + half) / SR, (pos + len(x) - half) / SR))
        pieces.append(x)
        pos += len(x)
    pieces.append(np.zeros(int(tail_s * SR), np.float32))
    clean = np.concatenate(pieces)
    return clean + noise_floor(len(clean), np.random.default_rng(seed), noise_dbfs), spans


@pytest.mark.parametrize("word", ["sun", "fish", "house", "thin", "shape"])
def test_a_start_in_silence_moves_to_the_onset_and_a_fricative_onset_is_kept(word, voice):
    audio, (first, (s, e)) = _scene([_spoken_word("the", voice), _spoken_word(word, voice)], [0.2])
    # the aligner gave the word 150 ms of the pause before it
    early = [AlignedWord("the", *first, 0.0), AlignedWord(word, s - 0.15, e, 0.0)]
    got = energy.refine(early, audio)
    assert abs(got[1].start_s - s) <= 0.012, (word, got[1].start_s, s)
    # a start already at the onset is not moved into the word: the quiet s/f/h/th/sh is
    # sound, not silence (it may move a few ms earlier, to where this clip's rule hears sound)
    exact = [AlignedWord("the", *first, 0.0), AlignedWord(word, s, e, 0.0)]
    assert s - 0.012 <= energy.refine(exact, audio)[1].start_s <= s + 0.003


@pytest.mark.parametrize("word", ["back", "cup", "sat", "kept"])
def test_an_end_in_silence_moves_back_but_not_into_a_plosive_closure(word, voice):
    audio, spans = _scene([_spoken_word(word, voice), _spoken_word("now", voice)], [0.25])
    (s, e), nxt = spans
    late = [AlignedWord(word, s, e + 0.15, 0.0), AlignedWord("now", *nxt, 0.0)]
    got = energy.refine(late, audio)
    # back to the release, not to the vowel before the closure
    assert abs(got[0].end_s - e) <= 0.012, (word, got[0].end_s, e)
    assert got[0].end_s <= got[1].start_s


@pytest.mark.parametrize("offset", [-0.12, -0.04, 0.0, 0.1, 0.3])
def test_the_last_words_end_is_the_audible_end(offset, voice):
    audio, spans = _scene([_spoken_word("she", voice), _spoken_word("stopped", voice)], [0.1])
    (s0, e0), (s, e) = spans
    got = energy.refine([AlignedWord("she", s0, e0, 0.0), AlignedWord("stopped", s, e + offset, 0.0)], audio)
    assert abs(got[1].end_s - e) <= 0.012, (offset, got[1].end_s, e)


def test_abutting_words_keep_their_shared_boundary_and_the_rule_ignores_gain(voice):
    audio, spans = _scene([_spoken_word(w, voice) for w in ("seven", "silver", "coins")], [0.0, 0.12])
    (a0, a1), (b0, b1), (c0, c1) = spans
    words = [AlignedWord("seven", a0 - 0.1, a1 + 0.02, 0.0), AlignedWord("silver", b0 + 0.02, b1 + 0.08, 0.0),
             AlignedWord("coins", c0 - 0.06, c1, 0.0)]
    got = energy.refine(words, audio)
    assert got[0].end_s == pytest.approx(a1 + 0.02) and got[1].start_s == pytest.approx(b0 + 0.02)  # in sound: kept
    assert abs(got[0].start_s - a0) <= 0.012 and abs(got[1].end_s - b1) <= 0.012 and abs(got[2].start_s - c0) <= 0.012
    assert all(a.end_s <= b.start_s for a, b in itertools.pairwise(got))
    # levels are relative to the clip's own floor and speech: 30 dB quieter, same result
    assert energy.refine(words, audio * 0.03) == got


def test_refined_words_stay_in_order_and_inside_the_clip(paused):
    """Whatever the aligner hands in (edges early, late, in sound or in silence), the words
    come out in order, each with a positive span, none overlapping the next, within the clip."""
    rng = np.random.default_rng(0)
    for c in paused[:3]:
        dur = len(c.audio) / SR
        for _ in range(20):
            jitter = rng.uniform(-0.15, 0.15, size=(len(c.words), 2))
            edges = np.clip(np.array([[w["start_s"], w["end_s"]] for w in c.words]) + jitter, 0, dur)
            edges = np.maximum.accumulate(np.sort(edges.ravel())).reshape(-1, 2)  # in order, as aligners give them
            words = [AlignedWord(w["text"], float(a), float(b), 0.0) for w, (a, b) in zip(c.words, edges)]
            got = energy.refine(words, c.audio)
            assert [w.text for w in got] == [w.text for w in words]
            assert all(0 <= w.start_s <= w.end_s <= dur for w in got)
            assert all(a.end_s <= b.start_s for a, b in itertools.pairwise(got))
            assert all(g.end_s > g.start_s for g, w in zip(got, words) if w.end_s - w.start_s > 0.03)


def test_the_last_words_end_does_not_run_into_sound_that_goes_on(voice):
    """Music or another voice right after the utterance is not its tail: the end stays."""
    audio, spans = _scene([_spoken_word("she", voice), _spoken_word("stopped", voice)], [0.1], tail_s=1.5)
    (s0, e0), (s, e) = spans
    t = np.arange(int(1.2 * SR)) / SR
    at = int((e + 0.05) * SR)
    audio[at:at + len(t)] += (0.05 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    words = [AlignedWord("she", s0, e0, 0.0), AlignedWord("stopped", s, e, 0.0)]
    assert energy.refine(words, audio)[1].end_s == e
