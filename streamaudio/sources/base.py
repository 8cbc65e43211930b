"""Clip manifests: the typed rows every corpus adapter produces, and the adapter
interface.

An adapter reads one corpus in its published on-disk layout. It splits the corpus
into independent work units (a LibriSpeech chapter, a batch of AudioSet segments)
with a cheap listing, and turns each unit into clip rows or Rejects; the scan
stage (streamaudio.sources.scan) runs units as Ray tasks and caches the manifest
by the adapter's version and the corpus files' (path, size, mtime).

A new corpus is one module in this folder::

    @register_adapter
    class MyCorpus(Adapter):
        corpus, kind, license = "mycorpus", "speech", "CC-BY-4.0"
        expected_layout = "MyCorpus/<split>/*.wav + transcripts.tsv"
        def check_layout(self, root, options): ...
        def units(self, root, options): ...          # JSON-able work items
        def scan_unit(self, root, options, unit): ...  # yields clip_row(...) or Reject(...)
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import soundfile as sf

from ..format import WORD_TYPE
from ..registry import Registry

CLIP_SCHEMA = pa.schema(
    [
        pa.field("id", pa.string()),
        pa.field("corpus", pa.string()),
        pa.field("kind", pa.string()),  # speech, sound, music, noise, text
        pa.field("path", pa.string()),  # absolute path; "" for text-only sources
        pa.field("offset_s", pa.float64()),
        pa.field("duration_s", pa.float64()),
        pa.field("sample_rate", pa.int32()),
        pa.field("language", pa.string()),
        pa.field("text", pa.string()),
        pa.field("text_by", pa.string()),  # who wrote `text`: "" (the source), a rule set or an LLM
        pa.field("speaker", pa.string()),
        pa.field("labels", pa.list_(pa.string())),
        pa.field("caption", pa.string()),
        pa.field("license", pa.string()),
        pa.field("split_group", pa.string()),
        # clip-time word timings (from TTS or alignment); empty when unknown
        pa.field("words", pa.list_(WORD_TYPE)),
        pa.field("words_by", pa.string()),  # what timed the words: a TTS engine or an aligner; "" if none
        # span of the clip that is above its own noise floor (sound events); -1 when not analysed
        pa.field("active_start_s", pa.float64()),
        pa.field("active_end_s", pa.float64()),
        # the source's own reply for text sources (chat); "" otherwise
        pa.field("response", pa.string()),
        # dialogues (multi-turn text sources): one row per turn, in order; "" / -1 otherwise
        pa.field("dialogue", pa.string()),
        pa.field("turn", pa.int32()),
        # speech translation (CoVoST 2): the text in another language; "" otherwise
        pa.field("translation", pa.string()),
        pa.field("translation_language", pa.string()),
        # the file's channel this clip is (0-based: a multi-channel RIR file, one microphone of a
        # recording); -1: all channels, mixed down
        pa.field("channel", pa.int32()),
        pa.field("attrs", pa.string()),  # JSON object of corpus-specific facts ("{}" if none)
    ]
)
CLIP_KINDS = ("speech", "sound", "music", "noise", "text", "rir")
ANY_KIND = "any"  # a generic adapter (audiofolder, hf, lhotse): the catalog's options say the kind

REJECT_SCHEMA = pa.schema(
    [
        pa.field("stage", pa.string()),  # source, tts, plan, render, label
        pa.field("source", pa.string()),  # corpus or sub-task
        pa.field("item", pa.string()),  # clip id, file path or episode id
        pa.field("reason", pa.string()),
    ]
)


class LayoutError(ValueError):
    """A corpus folder does not look like the corpus' published layout."""


class ProbeError(ValueError):
    """An audio file cannot be used; the message is the reject reason."""


@dataclass
class Reject:
    item: str
    reason: str
    stage: str = "source"


# ---------------------------------------------------------------- languages
_ISO639_2 = {"eng": "en", "deu": "de", "ger": "de", "fra": "fr", "fre": "fr", "spa": "es", "ita": "it",
             "por": "pt", "rus": "ru", "zho": "zh", "chi": "zh", "jpn": "ja", "kor": "ko", "ara": "ar",
             "hin": "hi", "nld": "nl", "dut": "nl", "pol": "pl", "tur": "tr", "swe": "sv", "ukr": "uk",
             "ces": "cs", "cze": "cs", "vie": "vi", "tha": "th", "ind": "id", "fas": "fa", "per": "fa",
             "heb": "he", "ell": "el", "gre": "el", "ron": "ro", "rum": "ro", "hun": "hu", "fin": "fi",
             "dan": "da", "nor": "no", "cat": "ca", "ben": "bn", "tam": "ta", "urd": "ur", "msa": "ms",
             "may": "ms", "swa": "sw"}
_LANGUAGE_NAMES = {"english": "en", "german": "de", "french": "fr", "spanish": "es", "italian": "it",
                   "portuguese": "pt", "russian": "ru", "chinese": "zh", "mandarin": "cmn", "cantonese": "yue",
                   "japanese": "ja", "korean": "ko", "arabic": "ar", "hindi": "hi", "dutch": "nl", "polish": "pl",
                   "turkish": "tr", "swedish": "sv", "ukrainian": "uk", "czech": "cs", "vietnamese": "vi",
                   "thai": "th", "indonesian": "id", "persian": "fa", "hebrew": "he", "greek": "el",
                   "romanian": "ro", "hungarian": "hu", "finnish": "fi", "danish": "da", "norwegian": "no",
                   "catalan": "ca", "bengali": "bn", "tamil": "ta", "urdu": "ur", "malay": "ms", "swahili": "sw"}
_TAG = re.compile(r"^[A-Za-z]{2,3}([-_][A-Za-z0-9]{1,8})*$")


def bcp47(value: Any) -> str:
    """A language as BCP-47 when it looks like an ISO code ("en_us" -> "en-US", "eng" -> "en",
    "zh-hans-cn" -> "zh-Hans-CN"), a few common English names mapped ("English" -> "en"),
    anything else as given (stripped); None -> ""."""
    if value is None:
        return ""
    v = str(value).strip()
    if not v:
        return ""
    if v.lower() in _LANGUAGE_NAMES:
        return _LANGUAGE_NAMES[v.lower()]
    if not _TAG.match(v):
        return v
    parts = re.split(r"[-_]", v)
    out = [_ISO639_2.get(parts[0].lower(), parts[0].lower())]
    for p in parts[1:]:
        if len(p) == 2 and p.isalpha():
            out.append(p.upper())  # region
        elif len(p) == 4 and p.isalpha():
            out.append(p.title())  # script
        else:
            out.append(p.lower())  # UN M.49 region, variants, extensions
    return "-".join(out)


def clip_row(**kw) -> dict:
    """A clip row with every column present (defaults for what a corpus lacks)."""
    row = {
        "id": "", "corpus": "", "kind": "", "path": "", "offset_s": 0.0, "duration_s": 0.0,
        "sample_rate": 0, "language": "", "text": "", "text_by": "", "speaker": "", "labels": [], "caption": "",
        "license": "", "split_group": "", "words": [], "words_by": "", "active_start_s": -1.0, "active_end_s": -1.0,
        "response": "", "dialogue": "", "turn": -1, "translation": "", "translation_language": "",
        "channel": -1, "attrs": "{}",
    }
    unknown = set(kw) - set(row)
    if unknown:
        raise KeyError(f"unknown clip columns: {sorted(unknown)}")
    row.update(kw)
    return row


@dataclass
class AudioInfo:
    sample_rate: int
    frames: int
    channels: int

    @property
    def duration_s(self) -> float:
        return self.frames / self.sample_rate


SILENCE_DBFS = -65.0  # a clip whose every probe is below this carries nothing a mix could use
LEVEL_PROBES = 4
PROBE_S = 0.05


def probe_audio(path: Path, tail_s: float = 0.1, check_level: bool = True) -> AudioInfo:
    """Header check, a read of the file's last ``tail_s`` and (``check_level``) of a few short
    blocks spread over it: catches empty, garbage, truncated and silent files without decoding
    the whole file (a 2-hour file costs what a 10-second one does). Only a file that sounds
    silent everywhere it was probed is read whole, to be sure before it is rejected."""
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise ProbeError("audio file missing") from None
    if size == 0:
        raise ProbeError("empty audio file (0 bytes)")
    try:
        f = sf.SoundFile(str(path))  # opened once: setting up a decoder (Vorbis, Opus) is the cost
    except Exception as exc:  # libsndfile raises several types
        raise ProbeError(f"corrupt audio: cannot read header ({_short(exc)})") from None
    short = wav_shortfall(path) if f.format in ("WAV", "WAVEX") else None
    if short:
        f.close()
        raise ProbeError(f"truncated audio: the WAV header declares {short[0]} bytes of samples, "
                         f"the file holds {short[1]}")
    info = AudioInfo(f.samplerate, f.frames, f.channels)
    if info.frames <= 0:
        f.close()
        raise ProbeError("audio has no samples")
    want = min(info.frames, max(1, int(tail_s * info.sample_rate)))
    try:
        with f:
            f.seek(info.frames - want)
            got = _read_frames(f, want)
            loudest = _mean_square(got)
            if check_level and loudest < _SILENT_MS:
                n = max(1, int(PROBE_S * info.sample_rate))
                for k in range(1, LEVEL_PROBES + 1):
                    f.seek(max(0, int((info.frames - n) * k / (LEVEL_PROBES + 1))))
                    loudest = max(loudest, _mean_square(_read_frames(f, n)))
                    if loudest >= _SILENT_MS:
                        break
    except Exception as exc:
        raise ProbeError(f"corrupt audio: cannot decode the end of the file ({_short(exc)})") from None
    if len(got) != want:
        raise ProbeError(f"truncated audio: header says {info.frames} frames, file ends early")
    if check_level and loudest < _SILENT_MS:
        whole = _loudest_block_ms(path)  # rare: confirm before rejecting a sparse clip
        if whole < _SILENT_MS:
            db = 10 * np.log10(whole + 1e-20)
            what = "digital silence" if whole == 0 else f"near-silent: loudest 0.25 s at {db:.0f} dBFS"
            raise ProbeError(f"silent audio ({what}, under {SILENCE_DBFS:.0f} dBFS throughout)")
    return info


def wav_shortfall(path: Path) -> tuple[int, int] | None:
    """(bytes the RIFF header declares for the samples, bytes the file holds) when a WAV file
    ends before its data chunk does, else None. libsndfile silently reads a truncated WAV as a
    shorter one, so an interrupted unpack would otherwise pass as a clip that no longer matches
    its transcript."""
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(12)
        if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
            return None  # not RIFF/WAVE: probe_audio judges it
        pos = 12
        while True:
            f.seek(pos)
            ch = f.read(8)
            if len(ch) < 8:
                return None
            n = int.from_bytes(ch[4:], "little")
            if ch[:4] == b"data":
                have = size - pos - 8
                return (n, have) if n != 0xFFFFFFFF and have < n else None
            pos += 8 + n + (n & 1)


_SILENT_MS = 10 ** (SILENCE_DBFS / 10)  # mean square at SILENCE_DBFS


def _read_frames(f: sf.SoundFile, n: int) -> np.ndarray:
    """Up to ``n`` frames from the current position, as float32 (frames, channels).
    SoundFile.read seeks to where each read ended, and libsndfile's FLAC and Vorbis seeks
    restart the decoder even when the position does not change: a third of a FLAC probe's time.
    So read through libsndfile directly, falling back on SoundFile.read where its internals
    differ (another soundfile version)."""
    try:
        ffi, lib, handle = sf._ffi, sf._snd, f._file
    except AttributeError:
        return f.read(n, dtype="float32", always_2d=True)
    out = np.empty((n, f.channels), np.float32)
    got = lib.sf_readf_float(handle, ffi.cast("float *", out.ctypes.data), n)
    err = lib.sf_error(handle)
    if err:
        raise RuntimeError(ffi.string(lib.sf_error_number(err)).decode("utf-8", "replace"))
    return out[:got]


def _mean_square(block: np.ndarray) -> float:
    return float(np.mean(block.astype(np.float64) ** 2)) if len(block) else 0.0


def _loudest_block_ms(path: Path, block_s: float = 0.25) -> float:
    """The mean square of the loudest ``block_s`` of the whole file, read in bounded blocks."""
    loudest = 0.0
    with sf.SoundFile(str(path)) as f:
        n = max(1, int(block_s * f.samplerate))
        for block in f.blocks(blocksize=n, dtype="float32", always_2d=True):
            loudest = max(loudest, _mean_square(block))
    return loudest


def _short(exc: Exception) -> str:
    return " ".join(str(exc).split())[:160]


def active_span(path: Path, floor_margin_db: float = 12.0, hop_s: float = 0.01, min_run: int = 3,
                block_s: float = 30.0) -> tuple[float, float]:
    """Start and end (s) of the part of a clip louder than its noise floor + margin.

    The floor is the 10th percentile of 10 ms frame energies: sound-event clips
    are mostly background, so this estimates the bed, and the event is what
    stands above it. Returns (-1, -1) when nothing does. The file is read in
    blocks of ``block_s``, so memory stays bounded however long the clip is (only
    one energy per 10 ms frame is kept: 2.9 MB for two hours).
    """
    with sf.SoundFile(str(path)) as f:
        sr = f.samplerate
        hop = max(1, int(hop_s * sr))
        block = max(hop, int(block_s * sr) // hop * hop)  # whole frames per block
        energies = []
        rest = np.zeros(0, dtype=np.float64)
        for x in f.blocks(blocksize=block, dtype="float32", always_2d=True):
            mono = np.concatenate([rest, x.mean(axis=1, dtype=np.float64)])
            n = len(mono) // hop
            energies.append(np.mean(mono[: n * hop].reshape(n, hop) ** 2, axis=1))
            rest = mono[n * hop:]
    e = np.concatenate(energies) if energies else np.zeros(0)
    if len(e) < 3:
        return -1.0, -1.0
    e = 10 * np.log10(e + 1e-12)
    floor = np.percentile(e, 10)
    loud = (e > floor + floor_margin_db).astype(np.int8)
    # runs of loud frames; a lone loud frame in a noise bed is a fluctuation, not an event,
    # unless it stands far above the floor: a key click or a footstep is one or two frames long
    edges = np.diff(np.concatenate([[0], loud, [0]]))
    starts, ends = np.nonzero(edges == 1)[0], np.nonzero(edges == -1)[0]
    peaks = np.maximum.reduceat(e, starts) if len(starts) else np.zeros(0)
    keep = ((ends - starts) >= min_run) | (peaks > floor + 2 * floor_margin_db)
    if not keep.any():
        return -1.0, -1.0
    return round(starts[keep][0] * hop / sr, 4), round(ends[keep][-1] * hop / sr, 4)


class Adapter:
    """One corpus in its published layout. Subclasses set the class attributes and
    implement ``check_layout``, ``units`` and ``scan_unit``."""

    corpus: str = ""  # the name catalogs use (``corpus: librispeech``)
    kind: str = ""  # what its rows are: one of CLIP_KINDS (speech, sound, music, noise, text, rir)
    license: str = ""
    expected_layout: str = ""  # shown in every layout error
    version: str = "1"  # bump when the rows an adapter writes change: cached manifests are rebuilt
    provides: frozenset[str] = frozenset()  # row facts recipes may require: text, words, labels, response, ...

    def kind_for(self, options: dict) -> str:
        """The kind of rows with these catalog options (generic adapters: from an option)."""
        return self.kind

    def provides_for(self, options: dict) -> frozenset[str]:
        return self.provides

    def license_for(self, options: dict) -> str:
        """The licence the build reports for this source (generic adapters: the catalog says)."""
        return self.license

    def check_layout(self, root: Path, options: dict) -> None:
        """Raise LayoutError (naming expected_layout) when ``root`` is not this corpus."""
        raise NotImplementedError

    def listing_roots(self, root: Path, options: dict) -> list[Path]:
        """The folders or files whose contents decide the manifest (for its cache key)."""
        return [root]

    def units(self, root: Path, options: dict) -> list[Any]:
        """Independent, JSON-able work items, in manifest order; cheap (a listing, no audio)."""
        return [None]

    def scan_unit(self, root: Path, options: dict, unit: Any) -> Iterator[dict | Reject]:
        raise NotImplementedError

    def scan(self, root: Path, options: dict) -> Iterator[dict | Reject]:
        """Every unit in order, in this process."""
        for unit in self.units(root, options):
            yield from self.scan_unit(root, options, unit)


ADAPTERS: Registry[type[Adapter]] = Registry("corpus adapter", "streamaudio.sources", "streamaudio.adapters")
register_adapter = ADAPTERS.register()


def get_adapter(corpus: str) -> Adapter:
    return ADAPTERS.get(corpus)()


def listing_key(adapter: Adapter, root: Path, options: dict) -> list:
    """(relative path, size, mtime) of every file under the adapter's listing roots: a
    manifest is rescanned only when one of these changes."""
    out = []
    for base in adapter.listing_roots(root, options):
        base = Path(base)
        if base.is_file():
            st = base.stat()
            out.append([str(base), st.st_size, st.st_mtime_ns])
            continue
        for dirpath, dirnames, filenames in os.walk(base):
            dirnames.sort()
            for f in sorted(filenames):
                p = os.path.join(dirpath, f)
                try:
                    st = os.stat(p)
                except OSError:
                    continue
                out.append([os.path.relpath(p, root), st.st_size, st.st_mtime_ns])
    return out


@dataclass
class ManifestResult:
    corpus: str
    path: Path
    rejects: list[dict] = field(default_factory=list)
    used: int = 0

    @property
    def rejected(self) -> int:
        return len(self.rejects)

    @property
    def seen(self) -> int:
        return self.used + self.rejected


def write_manifest(adapter: Adapter, root: Path, out: Path, options: dict | None = None,
                   batch: int = 512, progress=None, source_name: str | None = None) -> ManifestResult:
    """Stream an adapter's rows into a Parquet clip manifest in this process (temp name,
    then rename). The build runs the same units as Ray tasks (streamaudio.sources.scan)."""
    root = Path(root)
    options = options or {}
    if not root.exists():
        raise LayoutError(f"{adapter.corpus}: {root} does not exist. Expected layout: {adapter.expected_layout}")
    adapter.check_layout(root, options)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    res = ManifestResult(corpus=adapter.corpus, path=out)
    buf: list[dict] = []
    name = source_name or adapter.corpus
    with pq.ParquetWriter(tmp, CLIP_SCHEMA, compression="zstd") as w:
        for item in adapter.scan(root, options):
            if isinstance(item, Reject):
                res.rejects.append({"stage": item.stage, "source": name, "item": item.item, "reason": item.reason})
            else:
                buf.append(item)
                res.used += 1
                if len(buf) >= batch:
                    w.write_table(pa.Table.from_pylist(buf, CLIP_SCHEMA))
                    buf = []
            if progress is not None:
                progress()
        if buf:
            w.write_table(pa.Table.from_pylist(buf, CLIP_SCHEMA))
    tmp.replace(out)
    return res
