"""Text sources to speech: spoken-form rewriting, then TTS with word timings.

The rewriter is the offline, rule-based writer: it strips what nobody says
aloud (markdown, code, URLs, list markers) and expands numbers and symbols.
Output rows are ordinary speech clips whose ``words`` come from the TTS
engine itself, so they need no alignment.
"""
from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

import soundfile as sf
from num2words import num2words

from ..format import SAMPLE_RATE
from .espeak import TTSError, Voice

WRITER_TAG = "rules-v1"


class SpokenFormError(ValueError):
    pass


_SYMBOLS = {"%": " percent", "&": " and ", "+": " plus ", "=": " equals ", "@": " at ", "#": " number ",
            "°": " degrees", "/": " slash "}


def _number(m: re.Match) -> str:
    raw = m.group(0).replace(",", "")
    try:
        if "." in raw:
            return " " + num2words(float(raw)) + " "
        n = int(raw)
        if 1100 <= n <= 2099 and m.group(0).isdigit() and len(m.group(0)) == 4:
            return " " + num2words(n, to="year") + " "
        return " " + num2words(n) + " "
    except (ValueError, OverflowError):
        return " " + raw + " "


def to_spoken_form(text: str, max_words: int = 60) -> str:
    """Rewrite written text into something a person would say."""
    t = re.sub(r"```.*?```", " ", text, flags=re.S)  # code blocks are not spoken
    t = re.sub(r"`([^`]*)`", r"\1", t)  # inline code: say it
    t = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", t)  # markdown links: keep the anchor text
    t = re.sub(r"https?://\S+|www\.\S+", " a link ", t)
    t = re.sub(r"^\s*(#+|[-*+]|\d+[.)])\s+", " ", t, flags=re.M)  # headings and list markers
    t = re.sub(r"[*_~]{1,3}", "", t)  # emphasis
    t = re.sub(r"\$(\d[\d,]*(?:\.\d+)?)", lambda m: m.group(1) + " dollars", t)
    t = re.sub(r"\d[\d,]*(?:\.\d+)?", lambda m: _number(m) if re.fullmatch(r"\d{1,3}(,\d{3})*(\.\d+)?|\d+(\.\d+)?", m.group(0)) else m.group(0), t)
    for sym, word in _SYMBOLS.items():
        t = t.replace(sym, word)
    t = re.sub(r"[()\[\]{}<>|\\^\"]", " ", t)
    t = re.sub(r"\s+([?.!,;:])", r"\1", t)
    return check_spoken(t, max_words)


def pick_voice(voices: list[Voice], group: str) -> Voice:
    """One voice per source group (a conversation, a speaker), stable across builds."""
    from .tts import pick_for_group

    return pick_for_group(voices, group)


CJK = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af]")


def check_spoken(text: str, max_words: int = 60) -> str:
    """What any writer's spoken form must satisfy before it is synthesized: a letter of some
    script, and not too long (Chinese, Japanese and Korean characters count as half a word)."""
    t = " ".join(text.split())
    if not re.search(r"[^\W\d_]", t):
        raise SpokenFormError("nothing speakable in the spoken form")
    cjk = len(CJK.findall(t))
    n = len(CJK.sub(" ", t).split()) + (cjk + 1) // 2
    if n > max_words:
        raise SpokenFormError(f"too long to speak as one turn ({n} words > {max_words})")
    return t


def speak_row(row: dict, tts, cache_dir: Path, spoken: str | None = None, text_by: str = WRITER_TAG,
              max_words: int = 60) -> dict:
    """A text row -> a speech clip row, audio cached by content hash (engine, voice, text).
    ``tts`` is a backend from streamaudio.speech.tts, or an espeak Voice (fixed voice)."""
    from .tts import EspeakBackend, TTSConfig

    if isinstance(tts, Voice):
        voice = tts
        tts = EspeakBackend(TTSConfig())
        tts.voices = [voice]
    spoken = check_spoken(spoken if spoken is not None else to_spoken_form(row["text"], max_words), max_words)
    group = row["split_group"]
    language = row.get("language") or "en"
    key = hashlib.sha256(repr([tts.cache_id(group, language), SAMPLE_RATE, spoken]).encode()).hexdigest()
    path = cache_dir / key[:2] / f"{key}.flac"
    meta_path = path.with_suffix(".words.tsv")
    if path.exists() and meta_path.exists():
        frames = sf.info(str(path)).frames
        tag, words = _read_words(meta_path)
    else:
        x, raw_words, tag = tts.synthesize(spoken, group, language)
        if len(x) == 0:
            raise TTSError("the engine produced no audio")
        path.parent.mkdir(parents=True, exist_ok=True)
        # temp names unique per process: two workers may speak the same text at once
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        sf.write(str(tmp), x, SAMPLE_RATE, format="FLAC", subtype="PCM_16")
        frames = len(x)
        words = [{"text": w, "start_s": round(a, 4), "end_s": round(min(b, frames / SAMPLE_RATE), 4)} for w, a, b in raw_words]
        meta_tmp = meta_path.with_name(f".{meta_path.name}.{os.getpid()}.tmp")
        meta_tmp.write_text(f"#tag\t{tag}\n" + "".join(f"{w['text']}\t{w['start_s']}\t{w['end_s']}\n" for w in words))
        meta_tmp.replace(meta_path)
        tmp.replace(path)
    has_words = bool(words)
    return {**row, "kind": "speech", "path": str(path), "offset_s": 0.0, "duration_s": frames / SAMPLE_RATE,
            "sample_rate": SAMPLE_RATE, "text": spoken, "speaker": tag, "words": words,
            "words_by": "espeak-ng word events" if has_words else "", "text_by": text_by}


def _read_words(path: Path) -> tuple[str, list[dict]]:
    tag, out = "", []
    for line in path.read_text().splitlines():
        if line.startswith("#tag\t"):
            tag = line.split("\t", 1)[1]
            continue
        w, s, e = line.split("\t")
        out.append({"text": w, "start_s": float(s), "end_s": float(e)})
    return tag, out
