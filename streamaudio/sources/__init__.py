"""Corpus adapters: one per corpus, each reading the corpus' published layout."""
from .audioset import AudioSet
from .base import CLIP_SCHEMA, REJECT_SCHEMA, LayoutError, ManifestResult, ProbeError, Reject, write_manifest
from .librispeech import LibriSpeech
from .musan import MusanNoise
from .ultrachat import UltraChat

ADAPTERS = {a.corpus: a for a in (LibriSpeech, AudioSet, MusanNoise, UltraChat)}


def get_adapter(corpus: str):
    try:
        return ADAPTERS[corpus]()
    except KeyError:
        raise ValueError(f"unknown corpus {corpus!r}; known: {sorted(ADAPTERS)}") from None


__all__ = ["ADAPTERS", "CLIP_SCHEMA", "REJECT_SCHEMA", "LayoutError", "ManifestResult", "ProbeError",
           "Reject", "get_adapter", "write_manifest"]
