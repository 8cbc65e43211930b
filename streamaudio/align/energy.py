"""Word boundaries checked against the audio's energy, for any aligner.

An acoustic model gives the silence next to a word to the word when silence and the
word's edge phones fit about equally well (a pause absorbed into a word), and it can stop
a word before its quiet end. The audio itself says where there is sound: a word does not
start or end in silence, and an utterance's last word ends where its sound stops.

One rule for every clip, relative to the clip's own levels (recordings differ in gain, so
no absolute level):
- levels: RMS over 10 ms windows stepped by 1 ms, in two bands: the audio high-passed
  (voiced speech's formants; rumble and mains hum left out) and the audio pre-emphasised (where the
  weak high-frequency energy of fricatives, s f h th sh, stands out of a noise floor);
- per band, the clip's floor: a low percentile of its levels (the quiet around and between
  words), and its speech level: a high percentile;
- a window is sound when either band is at or above its
  ``max(floor + FLOOR_MARGIN_DB, speech - SPEECH_RANGE_DB)``: the second term keeps a very
  clean recording's faint tails (and a TTS engine's digital silence) from counting as speech.
  A boundary is placed at the centre of the first or last sound window.
A boundary moves only where the energy is unambiguous:
- a start in silence moves forward to where the sound begins, an end in silence moves back
  to where it stops, never past the word's other edge (so never across another word);
- a start in sound moves back to where that sound begins when silence comes before it
  and after the previous word (a quiet onset the model cut off), and an end in sound moves
  forward to where that sound stops when silence follows it before the next word; at most
  MAX_EXTEND_S, so a breath that runs into a word is not given to it;
- the last word's end (``last_is_utterance_end``) is the utterance's audible end: forward
  over sound and over silences shorter than BRIDGE_S (a final plosive's closure before its
  release), or back out of silence; sound going on more than MAX_TAIL_S past the aligner's
  end is not the word's tail (music, another voice), and the end then stays.
Boundaries between abutting words (sound on both sides) stay where the aligner put them:
energy cannot tell two words apart there, and a fricative's quiet onset is sound, not
silence.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from ..format import SAMPLE_RATE
from .base import AlignedWord

WINDOW_S = 0.010
STEP_S = 0.001
PRE_EMPHASIS = 0.97
HIGH_PASS_S = 0.003  # moving average taken out of the audio for the voiced band
FLOOR_PERCENTILE = 5.0
SPEECH_PERCENTILE = 95.0
FLOOR_MARGIN_DB = 8.0
SPEECH_RANGE_DB = 40.0
MIN_WORD_S = 0.02  # a word keeps at least this much when its edges move
MAX_EXTEND_S = 0.06  # furthest a boundary in sound moves outwards to reach silence
BRIDGE_S = 0.12  # the last word's end goes on over silences shorter than this (plosive closures)
MAX_TAIL_S = 0.3  # sound going on longer than this past the last word's end is not its tail


@dataclass
class Levels:
    """Window levels of one clip in two bands (high-passed, and pre-emphasised): row
    ``db[band, i]`` is the level of the 10 ms window centred at ``i * step_s``; a window is
    sound when either band is at or above that band's threshold."""

    db: np.ndarray  # (2, windows)
    step_s: float
    floor_db: np.ndarray  # per band
    threshold_db: np.ndarray  # per band

    @property
    def sound(self) -> np.ndarray:
        return np.any(self.db >= self.threshold_db[:, None], axis=0)

    def index(self, t: float) -> int:
        return min(max(round(t / self.step_s), 0), self.db.shape[1] - 1)


def _window_db(y: np.ndarray, win: int, step: int) -> np.ndarray:
    """Level (dB) of the ``win``-sample window centred on every ``step``-th sample: the
    squares summed per step-long block once, then windows as sums of whole blocks."""
    blocks = max(1, win // step)
    n = -(-len(y) // step)  # windows (and blocks of signal)
    sq = np.zeros((n + blocks) * step)
    lead = (blocks // 2) * step
    sq[lead:lead + len(y)] = y * y
    c = np.zeros(n + blocks + 1)
    np.cumsum(sq.reshape(-1, step).sum(axis=1), out=c[1:])
    return 10 * np.log10((c[blocks:blocks + n] - c[:n]) / (blocks * step) + 1e-20)


def _high_pass(x: np.ndarray, sr: int) -> np.ndarray:
    """``x`` less its moving average over 3 ms: rumble, mains hum and DC out (50 Hz down
    29 dB, 100 Hz 17 dB), voiced speech's formants kept (above 330 Hz within 2 dB). A moving
    average costs one cumulative sum, where a proper filter would need scipy (not wanted on
    the GPU machine) or an FFT of the whole clip (several times slower)."""
    n = max(1, round(HIGH_PASS_S * sr))
    c = np.empty(len(x) + n + 1)
    c[0] = 0.0
    np.cumsum(np.pad(x, (n // 2, n - n // 2), mode="edge"), out=c[1:])
    return x - (c[n:n + len(x)] - c[: len(x)]) / n


def levels(audio: np.ndarray, sr: int = SAMPLE_RATE) -> Levels:
    x = np.asarray(audio, dtype=np.float64)
    if x.size < 2:
        raise ValueError("no audio to measure")
    emphasised = np.empty_like(x)
    emphasised[0] = x[0]
    emphasised[1:] = x[1:] - PRE_EMPHASIS * x[:-1]
    win, step = max(1, round(WINDOW_S * sr)), max(1, round(STEP_S * sr))
    db = np.stack([_window_db(_high_pass(x, sr), win, step), _window_db(emphasised, win, step)])
    floor = np.percentile(db, FLOOR_PERCENTILE, axis=1)
    speech = np.percentile(db, SPEECH_PERCENTILE, axis=1)
    return Levels(db, step / sr, floor, np.maximum(floor + FLOOR_MARGIN_DB, speech - SPEECH_RANGE_DB))


def refine(words: list[AlignedWord], audio: np.ndarray, sr: int = SAMPLE_RATE,
           last_is_utterance_end: bool = True) -> list[AlignedWord]:
    """``words`` (in order, clip time) with their edges checked against the audio's energy
    (see the module docstring). Returns new AlignedWord objects; scores and texts kept."""
    if not words:
        return []
    lv = levels(audio, sr)
    snd = lv.sound
    n = len(snd)
    step = lv.step_s
    min_len = max(1, round(MIN_WORD_S / step))
    reach = round(MAX_EXTEND_S / step)
    spans = [(lv.index(w.start_s), lv.index(w.end_s)) for w in words]
    out = []
    for k, (a, b) in enumerate(spans):
        prev_end = out[-1][1] if out else 0
        next_start = spans[k + 1][0] if k + 1 < len(spans) else n - 1
        last = k == len(spans) - 1 and last_is_utterance_end
        if b - a > min_len:
            if not snd[a]:
                on = np.flatnonzero(snd[a:b - min_len])
                if len(on):
                    a = a + int(on[0])
            else:
                a = _outwards(snd, a, -1, max(prev_end, a - reach))
            if not last:
                if not snd[b]:
                    off = np.flatnonzero(snd[a + min_len:b + 1])
                    if len(off):
                        b = a + min_len + int(off[-1])
                else:
                    b = _outwards(snd, b, +1, min(next_start, b + reach))
        if last:
            b = _audible_end(snd, a + min_len, b, round(BRIDGE_S / step), round(MAX_TAIL_S / step))
        out.append((a, b))
    res = []
    for w, (a0, b0), (a, b) in zip(words, spans, out):
        # an edge that did not move keeps the aligner's time, not its 1 ms window
        s = w.start_s if a == a0 else round(a * step, 4)
        e = w.end_s if b == b0 else round(b * step, 4)
        res.append(w if (s, e) == (w.start_s, w.end_s) else replace(w, start_s=s, end_s=e))
    return res


def _outwards(snd: np.ndarray, i: int, direction: int, limit: int) -> int:
    """From sound at ``i``, walk in ``direction`` while there is sound; the last sound window
    if silence comes before ``limit``, else ``i`` unchanged."""
    j = i
    while j != limit and 0 <= j + direction < len(snd) and snd[j + direction]:
        j += direction
    if j == limit or not (0 <= j + direction < len(snd)):
        return i
    return j


def _audible_end(snd: np.ndarray, lowest: int, at: int, bridge: int, most: int) -> int:
    """Where the sound that the utterance's last word ends in stops: from ``at`` forward over
    sound and over silences shorter than ``bridge`` windows; when ``at`` lies in silence with
    no sound within ``bridge`` after it, back to the last sound (not before ``lowest``). Sound
    that goes on more than ``most`` windows past ``at`` is something else (music, another
    voice, a noisy room): then ``at`` stays."""
    n = len(snd)
    at = min(at, n - 1)
    end, i = None, at
    while i < n:
        if snd[i]:
            quiet = np.flatnonzero(~snd[i:i + most + 1])
            end = i + int(quiet[0]) - 1 if len(quiet) else min(n, i + most + 1) - 1
            if end - at > most:
                return at
            i = end + 1
            continue
        nxt = np.flatnonzero(snd[i:i + bridge])
        if len(nxt) == 0:
            break
        i += int(nxt[0])
    if end is not None:
        return end
    prv = np.flatnonzero(snd[lowest:at + 1])
    return lowest + int(prv[-1]) if len(prv) else at
