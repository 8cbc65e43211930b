"""DNS Challenge noise clips (microsoft/DNS-Challenge): the wideband releases'
``datasets/noise/*.wav`` (16 kHz; INTERSPEECH 2020, ICASSP 2021) or the fullband releases'
``datasets_fullband/noise_fullband/*.wav`` (48 kHz; INTERSPEECH 2021, ICASSP 2022/DNS4 and
DNS5, unpacked from ``datasets_fullband.noise_fullband.{audioset,freesound}_NNN.tar.bz2``).
Checked against the repo's ``datasets/noise/`` listing (AudioSet clips named by their
YouTube id, e.g. ``--9VR_F7CtY.wav``), its README (sources and licences), the DNS5 download
script's archive names, and ``noisyspeech_synthesizer_singleprocess.py`` (noise_dir/*.wav, or
one sub-folder per noise type).

Clip names and what rows carry:

* ``<class>_Freesound_validated_<freesound id>_<chunk>.wav`` (e.g. ``door_Freesound_validated_
  349356_0``): labels [class], licence CC0-1.0 (only CC0 Freesound files were selected),
  split_group ``dns_noise:freesound:<freesound id>`` (the chunks of one Freesound recording);
* an 11-character YouTube id (AudioSet): no labels (the release ships no AudioSet labels),
  licence CC-BY-4.0, split_group ``dns_noise:audioset:<id>``;
* ``<class>_<number>.wav``: labels [class]; a file in a sub-folder (one folder per noise
  type): labels [folder]; anything else: no labels. These carry the DNS terms as licence
  (AudioSet CC BY 4.0, Freesound CC0, DEMAND CC BY-SA 3.0) and are their own split group.

attrs: source (audioset, freesound or ""), channels. Labels are raw class tokens from the
names and only some clips have one, so "labels" is not in provides. The first layout found
under the root is used (a wideband and a fullband copy hold the same names). Work units are
batches of files.
"""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Iterator

from .base import Adapter, LayoutError, ProbeError, Reject, clip_row, probe_audio, register_adapter

LAYOUTS = (("datasets", "noise"), ("datasets_fullband", "noise_fullband"))
FILES_PER_UNIT = 64
FREESOUND = re.compile(r"^(?P<cls>.+?)_Freesound_validated_(?P<fsid>\d+)_(?P<chunk>\d+)$")
YTID = re.compile(r"^[A-Za-z0-9_-]{11}$")
CLASS_NUM = re.compile(r"^(?P<cls>[A-Za-z][A-Za-z_]*?)_\d+$")
DNS_TERMS = "per DNS Challenge terms: AudioSet CC-BY-4.0, Freesound CC0-1.0, DEMAND CC-BY-SA-3.0"


def describe(rel: str) -> dict:
    """Source, labels, licence and group key of a noise clip, from its path under the noise folder."""
    p = Path(rel)
    stem = p.stem
    m = FREESOUND.match(stem)
    if m:
        return {"source": "freesound", "labels": [m["cls"]], "license": "CC0-1.0", "group": f"freesound:{m['fsid']}"}
    if YTID.match(stem) and len(p.parts) == 1:
        return {"source": "audioset", "labels": [], "license": "CC-BY-4.0", "group": f"audioset:{stem}"}
    m = CLASS_NUM.match(stem)
    labels = [p.parts[0]] if len(p.parts) > 1 else ([m["cls"]] if m else [])
    return {"source": "", "labels": labels, "license": DNS_TERMS, "group": p.with_suffix("").as_posix()}


@register_adapter
class DnsNoise(Adapter):
    corpus = "dns_noise"
    kind = "noise"
    license = DNS_TERMS
    version = "1"
    provides = frozenset()
    expected_layout = "datasets/noise/*.wav (wideband) or datasets_fullband/noise_fullband/*.wav (fullband)"

    def _noise(self, root: Path) -> Path:
        cands = [root / a / b for a, b in LAYOUTS] + [root / b for _, b in LAYOUTS]
        if root.name in {b for _, b in LAYOUTS}:
            cands.append(root)
        for cand in cands:
            if cand.is_dir() and next(cand.rglob("*.wav"), None) is not None:
                return cand
        raise LayoutError(f"dns_noise: no datasets/noise or datasets_fullband/noise_fullband folder with .wav "
                          f"files under {root}. Expected layout: {self.expected_layout}")

    def check_layout(self, root: Path, options: dict) -> None:
        self._noise(root)

    def listing_roots(self, root: Path, options: dict) -> list[Path]:
        return [self._noise(root)]

    def units(self, root: Path, options: dict) -> list[list[str]]:
        noise = self._noise(root)
        files = sorted(p.relative_to(noise).as_posix() for p in noise.rglob("*.wav"))
        return [files[i:i + FILES_PER_UNIT] for i in range(0, len(files), FILES_PER_UNIT)]

    def scan_unit(self, root: Path, options: dict, unit: list[str]) -> Iterator[dict | Reject]:
        noise = self._noise(root)
        for rel in unit:
            path = noise / rel
            cid = f"{self.corpus}:{rel.removesuffix('.wav')}"
            try:
                info = probe_audio(path)
            except ProbeError as exc:
                yield Reject(cid, str(exc))
                continue
            d = describe(rel)
            yield clip_row(
                id=cid, corpus=self.corpus, kind="noise", path=str(path.resolve()),
                duration_s=info.duration_s, sample_rate=info.sample_rate, labels=d["labels"],
                license=d["license"], split_group=f"{self.corpus}:{d['group']}",
                attrs=json.dumps({"source": d["source"], "channels": info.channels}, sort_keys=True),
            )
