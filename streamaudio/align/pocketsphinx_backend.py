"""CPU forced alignment with pocketsphinx; the en-us acoustic model and the CMU
dictionary ship inside the PyPI wheel, so this works offline."""
from __future__ import annotations

import re

import numpy as np

from . import energy
from .base import AlignedWord, Alignment, AlignmentFailure, normalise_word, precheck
from .g2p import arpabet

FRAME_S = 0.01  # pocketsphinx's 100 frames per second

# Search settings tried in order; the first whose best path covers the whole transcript wins.
# set_align_text makes a linear word graph in which the FSG search lets silence (and
# fillers) in before, between and after the words; how readily is the question:
# - silprob 1.0 (default 0.005): a pause costs nothing over the words' edge phones, so a
#   pause is silence rather than a stretched edge phone;
# - bestpath off: the lattice rescoring after the search lost the end of the transcript on
#   9 of 48 continuous fixture clips and moved boundaries into pauses;
# - wider beams (default 1e-48): slow voices with long pauses had the right path pruned,
#   and a word then shrank while silence took its audio (errors over 1 s).
# Then the energy check (energy.refine) moves edges out of silence. Boundary error median /
# p90 on benchmarks/bench_align.py's speech with pauses (200 clips): pocketsphinx's defaults
# 24 / 146 ms; these settings 19 / 43 ms; the defaults with the energy check 3 / 65 ms; these
# settings with it 2.4 / 16 ms. Continuous speech: 8-10 / 27-30 ms in all four.
# The fallbacks relax silence (a near-zero silprob got some paths through before); none
# was needed on the benchmark's 248 clips.
METHOD = "optional-silence+energy"  # the search settings and the energy check below
WIDE_BEAMS = {"beam": 1e-80, "wbeam": 1e-60, "pbeam": 1e-80}
SEARCHES = [{"bestpath": False, "silprob": 1.0, **WIDE_BEAMS},
            {"bestpath": False, **WIDE_BEAMS},
            {"bestpath": False, "silprob": 1e-8, **WIDE_BEAMS}]


SPEECH_LEVEL_DBFS = -20.0  # the loud 10 ms frames (95th percentile) are brought to this level
DITHER_DB = -52.0  # faint noise added before the search, relative to that level


def _pcm16(audio: np.ndarray) -> bytes:
    """16-bit PCM for the decoder: the clip's gain set so that its loud frames are at
    SPEECH_LEVEL_DBFS, with a faint, fixed noise added DITHER_DB below that. Digital silence
    (the exact zeros between a TTS engine's words) has no spectrum: the features' log
    energies there are arbitrary and the search lost or misplaced whole words next to it
    (paused speech over digital silence, with the energy check: 3 of 30 clips not aligned
    and boundary p90 82 ms with no noise; p90 32 ms with noise 70 dB below the speech, 15 ms
    with noise 52 dB below). Level and noise relative to the clip's own speech level, so a
    quiet recording is not buried in the noise. Seeded: the same audio, the same alignment."""
    x = np.asarray(audio, np.float64)
    hop = 160
    frames = x[: x.size // hop * hop].reshape(-1, hop) if x.size >= hop else x[None, :]
    loud_db = float(np.percentile(10 * np.log10(np.mean(frames ** 2, axis=1) + 1e-20), 95))
    gain = 10 ** ((SPEECH_LEVEL_DBFS - loud_db) / 20)
    noise = np.random.default_rng(0).standard_normal(x.size) * 10 ** ((SPEECH_LEVEL_DBFS + DITHER_DB) / 20)
    return (np.clip(x * gain + noise, -1, 1) * 32767).round().astype("<i2").tobytes()


class PocketsphinxAligner:
    languages = frozenset({"en"})

    def __init__(self) -> None:
        from importlib.metadata import version

        from pocketsphinx import Decoder

        # the name keys the align cache: METHOD changes whenever the results do
        self.name = f"pocketsphinx-{version('pocketsphinx')}/en-us/{METHOD}"
        self._Decoder = Decoder
        self.decoders = [self._new(SEARCHES[0])]
        self.added: dict[str, str] = {}

    def _new(self, params: dict):
        d = self._Decoder(lm=None, loglevel="FATAL", samprate=16000, **params)
        for w, phones in getattr(self, "added", {}).items():
            d.add_word(w, phones, True)
        return d

    def _ensure_words(self, words: list[str]) -> None:
        for w in words:
            if w in self.added or self.decoders[0].lookup_word(w) is not None:
                continue
            try:
                phones = " ".join(arpabet(w))
            except ValueError as exc:
                raise AlignmentFailure(f"no pronunciation for {w!r}: {exc}") from None
            for d in self.decoders:
                d.add_word(w, phones, True)
            self.added[w] = phones

    def _search(self, d, words: list[str], pcm: bytes):
        try:
            d.set_align_text(" ".join(words))
            # the front end carries state (cepstral mean, noise estimate) over from the last
            # utterance, which made results depend on what a worker aligned before; every
            # clip starts from a fresh front end
            d.reinit_feat()
            d.start_utt()
            d.process_raw(pcm, full_utt=True)
            d.end_utt()
            seg = list(d.seg() or [])
        except RuntimeError:
            return None
        got = [s for s in seg if not s.word.startswith(("<", "["))]
        if [re.sub(r"\(\d+\)$", "", s.word) for s in got] != words:
            return None  # the best path stopped short of the transcript's end
        return got

    def align(self, audio: np.ndarray, transcript: str, language: str, refine: bool = True) -> Alignment:
        """``refine``: check the search's word edges against the audio's energy
        (energy.refine; the last word's end is the audible end of the utterance)."""
        toks = precheck(audio, transcript, language, self.languages)
        norm = [normalise_word(t) for t in toks]
        keep = [i for i, n in enumerate(norm) if n]  # punctuation-only tokens are not spoken
        if not keep:
            raise AlignmentFailure("transcript has no speakable words")
        words = [norm[i] for i in keep]
        self._ensure_words(words)
        pcm = _pcm16(audio)
        got = None
        for k, params in enumerate(SEARCHES):
            if k == len(self.decoders):
                self.decoders.append(self._new(params))
            got = self._search(self.decoders[k], words, pcm)
            if got is not None:
                break
        if got is None:
            raise AlignmentFailure(f"pocketsphinx found no path through the whole transcript "
                                   f"({len(SEARCHES)} search settings tried)")
        out = []
        scores = []
        for i, s in zip(keep, got):
            n = max(1, s.end_frame - s.start_frame + 1)
            # the binding gives the word's acoustic score as a probability (logmath.exp of the
            # search's score); its natural log per frame: higher is a better fit
            conf = float(np.log(max(s.ascore, 1e-300)) / n)
            scores.append(conf)
            out.append(AlignedWord(toks[i], round(s.start_frame * FRAME_S, 4), round((s.end_frame + 1) * FRAME_S, 4), conf))
        if refine:
            out = energy.refine(out, audio)
        return Alignment(words=out, score=float(np.mean(scores)))
