"""Text to speech. The default backend drives libespeak-ng through ctypes.

Why ctypes and not the `espeak-ng` command: the library reports a WORD event
with the exact sample index at which each word starts, so synthesized speech
comes with real word timings and never needs a separate alignment pass.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import os
import pickle
import threading
from dataclasses import dataclass

import numpy as np

ESPEAK_VERSION_TAG = "espeak-ng"

# espeak_AUDIO_OUTPUT / espeak_PARAMETER / espeak_EVENT_TYPE values (speak_lib.h)
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_RATE, _VOLUME, _PITCH, _RANGE = 1, 2, 3, 4
_POS_CHARACTER = 1
_CHARS_UTF8 = 1
_EV_LIST_TERMINATED, _EV_WORD, _EV_END = 0, 1, 5


class _Event(ctypes.Structure):
    _fields_ = [
        ("type", ctypes.c_int),
        ("unique_identifier", ctypes.c_uint),
        ("text_position", ctypes.c_int),
        ("length", ctypes.c_int),
        ("audio_position", ctypes.c_int),
        ("sample", ctypes.c_int),
        ("user_data", ctypes.c_void_p),
        ("id", ctypes.c_char * 8),
    ]


_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.POINTER(_Event))


class TTSError(RuntimeError):
    """Synthesis failed or the engine is not available."""


@dataclass(frozen=True)
class Voice:
    """An espeak-ng speaker: voice name (language[+variant]), words per minute, pitch 0-99."""

    name: str = "en-us"
    rate: int = 160
    pitch: int = 50

    @property
    def tag(self) -> str:
        return f"{self.name}@{self.rate}wpm/p{self.pitch}"


def load_voices(language: str = "en") -> list["Voice"]:
    """The espeak-ng speakers of manifests/voices.yaml for a language (BCP-47; its base
    subtag decides: "zh-CN" -> zh); TTSError when the table has none for it."""
    import yaml

    from ..resources import MANIFESTS_DIR

    raw = yaml.safe_load((MANIFESTS_DIR / "voices.yaml").read_text())
    base = (language or "en").split("-")[0].lower()
    if base == "en":
        return [Voice(**v) for v in raw["espeak"]]
    voices = (raw.get("espeak_languages") or {}).get(base)
    if not voices:
        raise TTSError(f"no espeak-ng voice for language {language!r} in manifests/voices.yaml")
    return [Voice(**v) for v in voices]


@dataclass
class Speech:
    samples: np.ndarray  # float32 mono
    sample_rate: int
    words: list[tuple[str, float, float]]  # (token(s), start_s, end_s), clip time


class _Espeak:
    """One libespeak-ng per process; the library is not re-entrant, hence the lock."""

    def __init__(self) -> None:
        path = ctypes.util.find_library("espeak-ng") or "libespeak-ng.so.1"
        try:
            self.lib = ctypes.CDLL(path)
        except OSError as exc:  # pragma: no cover - depends on the machine
            raise TTSError(
                "libespeak-ng is not installed; run `make setup` (apt-get install espeak-ng)"
            ) from exc
        self.lock = threading.Lock()
        self.libc = ctypes.CDLL(None)
        self.sample_rate = self.lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 0, None, 0)
        if self.sample_rate <= 0:
            raise TTSError("espeak_Initialize failed")
        self._pcm: list[bytes] = []
        self._events: list[tuple[int, int, int]] = []
        self._cb = _CALLBACK(self._on_audio)  # keep a reference: ctypes does not
        self.lib.espeak_SetSynthCallback(self._cb)
        self.lib.espeak_Synth.argtypes = [
            ctypes.c_void_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int, ctypes.c_uint,
            ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p,
        ]
        self.lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]

    def _on_audio(self, wav, n, events) -> int:
        if n > 0 and wav:
            self._pcm.append(ctypes.string_at(wav, n * 2))
        i = 0
        while True:
            ev = events[i]
            if ev.type == _EV_LIST_TERMINATED:
                break
            if ev.type == _EV_WORD:
                self._events.append((ev.text_position, ev.length, ev.sample))
            i += 1
        return 0

    def _synth_here(self, text: str, voice: Voice) -> tuple[bytes, list[tuple[int, int, int]]]:
        self._pcm, self._events = [], []
        if self.lib.espeak_SetVoiceByName(voice.name.encode()) != 0:
            raise TTSError(f"espeak-ng has no voice {voice.name!r}")
        self.lib.espeak_SetParameter(_RATE, int(voice.rate), 0)
        self.lib.espeak_SetParameter(_PITCH, int(voice.pitch), 0)
        data = text.encode("utf-8")
        buf = ctypes.create_string_buffer(data)
        rc = self.lib.espeak_Synth(buf, len(data) + 1, 0, _POS_CHARACTER, 0, _CHARS_UTF8, None, None)
        if rc != 0:
            raise TTSError(f"espeak_Synth returned {rc}")
        self.lib.espeak_Synchronize()
        return b"".join(self._pcm), list(self._events)

    def synth(self, text: str, voice: Voice) -> tuple[np.ndarray, list[tuple[int, int, int]]]:
        """Synthesize in a forked child of a never-used engine.

        libespeak-ng keeps synthesis state between calls (pitch flutter position,
        filter memories, libc rand()), so the same text and voice sound slightly
        different depending on what was spoken before. A build must be identical
        on any number of workers, so every utterance starts from the same
        pristine state: this process initialises the engine but never speaks;
        each utterance is spoken by a fork of it, which exits afterwards.
        """
        with self.lock:
            r, w = os.pipe()
            pid = os.fork()
            if pid == 0:  # child: speak once, send the result, leave without cleanup handlers
                code = 0
                try:
                    os.close(r)
                    self.libc.srand(0x5EED)
                    try:
                        result = ("ok", self._synth_here(text, voice))
                    except TTSError as exc:
                        result = ("error", str(exc))
                    payload = pickle.dumps(result)
                    with os.fdopen(w, "wb") as f:
                        f.write(payload)
                except BaseException:
                    code = 1
                finally:
                    os._exit(code)
            os.close(w)
            with os.fdopen(r, "rb") as f:
                payload = f.read()
            _, status = os.waitpid(pid, 0)
        if not payload:
            raise TTSError(f"espeak-ng child process failed (status {status})")
        kind, value = pickle.loads(payload)
        if kind == "error":
            raise TTSError(value)
        pcm, events = value
        return np.frombuffer(pcm, dtype="<i2").astype(np.float32) / 32768.0, events


_ENGINE: _Espeak | None = None
_ENGINE_LOCK = threading.Lock()


def _engine() -> _Espeak:
    """The process's one engine. Created under a lock: threads that asked at once (a server's
    first burst of requests) once each initialised libespeak-ng, which corrupted its heap."""
    global _ENGINE
    if _ENGINE is None:
        with _ENGINE_LOCK:
            if _ENGINE is None:
                _ENGINE = _Espeak()
    return _ENGINE


def _tokens(text: str) -> list[tuple[int, str]]:
    """Whitespace tokens with their 1-based character position (espeak's text_position)."""
    out, pos = [], 0
    for tok in text.split():
        pos = text.index(tok, pos)
        out.append((pos + 1, tok))
        pos += len(tok)
    return out


def _active_end(samples: np.ndarray, lo: int, hi: int, sr: int, floor_db: float = -45.0) -> int:
    """Last sample in [lo, hi) of a 10 ms frame louder than floor_db (trailing pause trimmed)."""
    hop = sr // 100
    seg = samples[lo:hi]
    n = len(seg) // hop
    if n == 0:
        return hi
    frames = seg[: n * hop].reshape(n, hop)
    rms_db = 10 * np.log10(np.mean(frames.astype(np.float64) ** 2, axis=1) + 1e-12)
    loud = np.nonzero(rms_db > floor_db)[0]
    if len(loud) == 0:
        return min(hi, lo + hop)
    return lo + int(loud[-1] + 1) * hop


def synthesize(text: str, voice: Voice = Voice()) -> Speech:
    """Speak ``text``; return audio and one (token, start_s, end_s) per whitespace token.

    espeak-ng emits WORD events at the sample where each word begins; a token
    that expands to several spoken words ("42") gets several events and starts
    at the first; tokens spoken as one with the word before them share its
    entry ("on the"). A word ends where its audio falls silent before the next
    word starts.
    """
    text = " ".join(text.split())
    if not text:
        raise TTSError("empty text")
    eng = _engine()
    pcm, events = eng.synth(text, voice)
    sr = eng.sample_rate
    if len(pcm) == 0:
        raise TTSError("espeak-ng produced no audio")
    toks = _tokens(text)
    starts: dict[int, int] = {}
    for text_pos, _length, sample in events:
        # the token that contains this character position
        owner = None
        for i, (p, tok) in enumerate(toks):
            if p <= text_pos < p + len(tok):
                owner = i
                break
        if owner is not None and owner not in starts:
            starts[owner] = sample
    # espeak-ng speaks some unstressed words together with their neighbour ("on the")
    # and reports one WORD event for both; such tokens join the word before them, so
    # the text stays complete and no boundary is invented inside the pair
    groups: list[tuple[list[str], int]] = []  # (tokens, start sample)
    pending: list[str] = []
    for i, (_, tok) in enumerate(toks):
        if i in starts:
            groups.append((pending + [tok], starts[i]))
            pending = []
        elif groups:
            groups[-1][0].append(tok)
        else:
            pending.append(tok)
    if pending and groups:
        groups[-1][0].extend(pending)
    words: list[tuple[str, float, float]] = []
    for j, (group, lo) in enumerate(groups):
        hi = groups[j + 1][1] if j + 1 < len(groups) else len(pcm)
        hi = max(hi, lo + 1)
        end = _active_end(pcm, lo, hi, sr)
        words.append((" ".join(group), lo / sr, end / sr))
    return Speech(samples=pcm, sample_rate=sr, words=words)
