"""TTS backends behind one small interface: text + a source group -> 16 kHz audio,
word timings when the engine reports them, and a tag for provenance.

- ``espeak``: libespeak-ng, voice/rate/pitch varied per group (manifests/voices.yaml),
  word timings from the engine's WORD events;
- ``openai``: ``client.audio.speech.create`` against any OpenAI-compatible speech
  endpoint (OpenAI, a CosyVoice server, ...); no word timings, so the build sends
  its output through the alignment stage.
"""
from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass

import numpy as np
import soundfile as sf
import soxr

from ..format import SAMPLE_RATE


@dataclass(frozen=True)
class TTSConfig:
    backend: str = "espeak"
    base_url: str | None = None
    model: str | None = None
    voice: str | None = None  # openai: one voice or a comma-separated list picked per source group
    timeout_s: float = 60.0
    max_retries: int = 5

    @property
    def has_word_timings(self) -> bool:
        return self.backend == "espeak"


VOICE_SLOT = "#voice="


def pick_for_group(options: list, group: str):
    """One option per source group (a speaker, a conversation), stable across builds. A group
    that names a voice slot (``...#voice=<k>``, the spoken prompts) gets option k: so every
    voice speaks each prompt, and a recipe can match a prompt to its episode's user voice."""
    if VOICE_SLOT in group:
        k = group.rsplit(VOICE_SLOT, 1)[1]
        if k.isdigit():
            return options[int(k) % len(options)]
    h = int.from_bytes(hashlib.sha256(group.encode()).digest()[:4], "little")
    return options[h % len(options)]


class EspeakBackend:
    """Voices of the text's own language (manifests/voices.yaml), one per source group."""

    def __init__(self, config: TTSConfig):
        self.voices: list | None = None  # set: one fixed list whatever the language (tests, tools)
        self._by_language: dict[str, list] = {}

    def _voices(self, language: str) -> list:
        if self.voices is not None:
            return self.voices
        if language not in self._by_language:
            from .espeak import load_voices

            self._by_language[language] = load_voices(language)
        return self._by_language[language]

    def cache_id(self, group: str, language: str = "en") -> list:
        v = pick_for_group(self._voices(language), group)
        return ["espeak-ng", v.tag]

    def synthesize(self, text: str, group: str, language: str = "en") -> tuple[np.ndarray, list[tuple[str, float, float]], str]:
        from .espeak import synthesize

        v = pick_for_group(self._voices(language), group)
        speech = synthesize(text, v)
        x = soxr.resample(speech.samples, speech.sample_rate, SAMPLE_RATE).astype(np.float32)
        return x, speech.words, f"espeak-ng/{v.tag}"


class OpenAISpeechBackend:
    def __init__(self, config: TTSConfig):
        from openai import OpenAI
        import os

        if not (config.base_url and config.model):
            raise ValueError("--tts openai needs --tts-base-url and --tts-model")
        self.config = config
        self.voices = [v.strip() for v in (config.voice or "alloy").split(",") if v.strip()]
        key = os.environ.get("OPENAI_API_KEY") or "local"
        self.client = OpenAI(base_url=config.base_url, api_key=key, max_retries=0, timeout=config.timeout_s)

    def cache_id(self, group: str, language: str = "en") -> list:
        # the model speaks what it is given; the language is in the text
        return ["openai-speech", self.config.base_url.rstrip("/"), self.config.model, pick_for_group(self.voices, group)]

    def synthesize(self, text: str, group: str, language: str = "en"):
        import threading

        from ..text.llm import LLMConfig, StageStats, call_with_retries

        voice = pick_for_group(self.voices, group)
        cfg = LLMConfig(base_url=self.config.base_url, model=self.config.model, timeout_s=self.config.timeout_s,
                        max_retries=self.config.max_retries)

        def request():
            resp = self.client.audio.speech.create(model=self.config.model, voice=voice, input=text,
                                                   response_format="wav")
            return resp.content if hasattr(resp, "content") else resp.read()

        data = call_with_retries(request, "tts", StageStats(), threading.Lock(), cfg)
        try:
            x, sr = sf.read(io.BytesIO(data), dtype="float32", always_2d=True)
        except Exception as exc:
            raise ValueError(f"speech endpoint returned audio soundfile cannot read ({exc})") from None
        x = x.mean(axis=1)
        if sr != SAMPLE_RATE:
            x = soxr.resample(x, sr, SAMPLE_RATE).astype(np.float32)
        return x, [], f"openai-tts:{self.config.model}/{voice}"


def make_tts(config: TTSConfig):
    if config.backend == "espeak":
        return EspeakBackend(config)
    if config.backend == "openai":
        return OpenAISpeechBackend(config)
    raise ValueError(f"unknown TTS backend {config.backend!r}; choose espeak or openai")
