"""CPU forced alignment with pocketsphinx; the en-us acoustic model and the CMU
dictionary ship inside the PyPI wheel, so this works offline."""
from __future__ import annotations

import re

import numpy as np

from .base import AlignedWord, Alignment, AlignmentFailure, normalise_word, precheck
from .g2p import arpabet

FRAME_S = 0.01  # pocketsphinx's 100 frames per second

# Search settings tried in order. The default finds the most exact boundaries
# (fixtures: median 8 ms, p90 25 ms); when its best path stops short of the
# transcript's end, a near-zero silence-insertion probability usually gets
# through (42 + 5 of 48 fixture utterances, see benchmarks/bench_align.py).
SEARCHES = [{}, {"silprob": 1e-8}]


class PocketsphinxAligner:
    languages = frozenset({"en"})

    def __init__(self) -> None:
        from importlib.metadata import version

        from pocketsphinx import Decoder

        self.name = f"pocketsphinx-{version('pocketsphinx')}/en-us"
        self._Decoder = Decoder
        self.decoders = [self._new(SEARCHES[0])]
        self.logmath = self.decoders[0].get_logmath()
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

    def align(self, audio: np.ndarray, transcript: str, language: str) -> Alignment:
        toks = precheck(audio, transcript, language, self.languages)
        norm = [normalise_word(t) for t in toks]
        keep = [i for i, n in enumerate(norm) if n]  # punctuation-only tokens are not spoken
        if not keep:
            raise AlignmentFailure("transcript has no speakable words")
        words = [norm[i] for i in keep]
        self._ensure_words(words)
        pcm = (np.clip(audio, -1, 1) * 32767).astype("<i2").tobytes()
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
            # mean acoustic log-likelihood per frame (natural log): higher is a better fit
            conf = float(self.logmath.log_to_ln(s.ascore) / n)
            scores.append(conf)
            out.append(AlignedWord(toks[i], round(s.start_frame * FRAME_S, 4), round((s.end_frame + 1) * FRAME_S, 4), conf))
        return Alignment(words=out, score=float(np.mean(scores)))
