"""The aligner interface: (audio, transcript, language) -> timed words, or a
failure with a reason. No backend ever invents timings: what cannot be aligned
is rejected, never spread evenly over the clip."""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from ..format import SAMPLE_RATE


class AlignmentFailure(ValueError):
    """This clip cannot be aligned; the message is the reject reason."""


@dataclass
class AlignedWord:
    text: str  # the transcript's token, as written
    start_s: float  # clip time
    end_s: float
    score: float  # backend confidence, higher is better (pocketsphinx: mean acoustic ln-likelihood
    # per frame; ctc: mean posterior of the word's tokens on their frames, in [0, 1])


@dataclass
class Alignment:
    words: list[AlignedWord]
    score: float  # clip-level confidence: the mean of the word scores


class Aligner(Protocol):
    name: str  # recorded in provenance and the cache key, e.g. "pocketsphinx-5.1.1/en-us"
    languages: frozenset[str] | None  # None: any language the model's vocabulary can spell

    def align(self, audio: np.ndarray, transcript: str, language: str) -> Alignment: ...


# minimum plausible duration per word: ~100 ms is faster than any read speech
MIN_S_PER_WORD = 0.1
SILENCE_DBFS = -55.0
CLIP_FRACTION = 0.005  # share of samples at full scale that makes a clip unusable


def tokens(transcript: str) -> list[str]:
    return transcript.split()


def normalise_word(token: str) -> str:
    """Lower case, letters/digits/apostrophes only: what dictionaries and CTC vocabularies spell."""
    return re.sub(r"[^\w']", "", token.lower()).strip("'_")


def precheck(audio: np.ndarray, transcript: str, language: str, languages) -> list[str]:
    """Reasons shared by all backends to refuse a clip before trying."""
    toks = tokens(transcript)
    if not toks:
        raise AlignmentFailure("empty transcript")
    if languages is not None and language not in languages:
        raise AlignmentFailure(f"language {language!r} not supported by this aligner (supports {sorted(languages)})")
    if audio.size == 0:
        raise AlignmentFailure("no audio")
    dur = audio.size / SAMPLE_RATE
    if dur < MIN_S_PER_WORD * len(toks):
        raise AlignmentFailure(f"audio too short for the transcript: {dur:.2f}s for {len(toks)} words")
    rms_db = 10 * np.log10(np.mean(audio.astype(np.float64) ** 2) + 1e-20)
    if rms_db < SILENCE_DBFS:
        raise AlignmentFailure(f"audio is silent ({rms_db:.0f} dBFS)")
    clipped = float(np.mean(np.abs(audio) >= 0.999))
    if clipped > CLIP_FRACTION:
        raise AlignmentFailure(f"audio is clipped ({clipped:.1%} of samples at full scale)")
    return toks
