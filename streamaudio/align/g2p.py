"""Grapheme to phoneme for words a pronunciation dictionary lacks: espeak-ng's
own letter-to-sound rules give IPA, a table in manifests/ maps IPA to the
acoustic model's phone set."""
from __future__ import annotations

import ctypes
from functools import lru_cache

import yaml

from ..resources import MANIFESTS_DIR
from ..speech.espeak import _engine


@lru_cache(maxsize=1)
def _table() -> tuple[list[tuple[str, str]], set[str]]:
    raw = yaml.safe_load((MANIFESTS_DIR / "g2p" / "ipa_arpabet.yaml").read_text())
    pairs = sorted(raw["phones"].items(), key=lambda kv: -len(kv[0]))
    return pairs, set(raw["ignore"])


def ipa(word: str, voice: str = "en-us") -> str:
    """espeak-ng's IPA for ``word`` (text-to-phoneme only: no audio, no carried-over state)."""
    eng = _engine()
    lib = eng.lib
    lib.espeak_TextToPhonemes.restype = ctypes.c_char_p
    lib.espeak_TextToPhonemes.argtypes = [ctypes.POINTER(ctypes.c_void_p), ctypes.c_int, ctypes.c_int]
    with eng.lock:
        lib.espeak_SetVoiceByName(voice.encode())
        buf = ctypes.create_string_buffer(word.encode("utf-8"))
        ptr = ctypes.c_void_p(ctypes.addressof(buf))
        out = []
        while ptr.value:
            res = lib.espeak_TextToPhonemes(ctypes.byref(ptr), 1, 2)  # CHARS_UTF8, IPA output
            if res:
                out.append(res.decode("utf-8"))
    return " ".join(out)


def arpabet(word: str) -> list[str]:
    """ARPAbet phones for ``word``; raises ValueError naming an IPA symbol the table lacks."""
    pairs, ignore = _table()
    s = ipa(word)
    phones: list[str] = []
    i = 0
    while i < len(s):
        ch = s[i]
        if ch.isspace() or ch in ignore:
            i += 1
            continue
        for sym, arpa in pairs:
            if s.startswith(sym, i):
                phones.extend(arpa.split())
                i += len(sym)
                break
        else:
            raise ValueError(f"no ARPAbet phone for IPA {ch!r} in {word!r} ({s})")
    if not phones:
        raise ValueError(f"espeak-ng gave no phonemes for {word!r}")
    return phones
