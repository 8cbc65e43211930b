"""GigaSpeech (SpeechColab): 10,000 h of transcribed English from podcasts, YouTube and
audiobooks, as long Opus recordings cut into sentence segments by one JSON metadata file.

Published layout (after the official download; checked against SpeechColab/GigaSpeech's
``utils/download_gigaspeech.sh`` and ``utils/internal/download_gigaspeech_from_tsinghua.sh``,
the ``speechcolab`` package's ``speechcolab/datasets/gigaspeech.py``, lhotse's
``lhotse/recipes/gigaspeech.py`` and the toolkits' ``extract_meta.py``)::

    <dir>/GigaSpeech.json                               the metadata (several GB for the release)
    <dir>/audio/<source>/P<NNNN>/<aid>.opus             e.g. audio/podcast/P0001/POD0000000001.opus
    (<dir>/TERMS_OF_ACCESS, <dir>/files.yaml, and the downloaded *.aes archives, ignored)

The release ships ``GigaSpeech.json.gz.aes`` (older scripts: ``GigaSpeech.json.tgz.aes``) and
one ``audio/<source>/P<NNNN>.tgz.aes`` per folder; the downloaders decrypt them, gunzip the
metadata to ``GigaSpeech.json`` and unpack each archive into ``audio/<source>/P<NNNN>/``. A
decrypted but still gzipped ``GigaSpeech.json.gz`` is read as well (slower: see below); an
``.aes`` file alone is a layout error (it must be decrypted first).

``GigaSpeech.json``: ``{"dataset", "language": "EN", "version", ..., "audios": [{"aid",
"path" (relative to the JSON's folder), "source" (podcast/youtube/audiobook), "url",
"title", "category", "duration", "sample_rate": 16000, "format": "opus", "subsets":
["{XL}", "{L}", ...], "segments": [{"sid": "<aid>_S0000008", "speaker": "N/A",
"begin_time", "end_time", "text_raw", "text_tn", "subsets": ["{XL}", ...]}]}]}``. Subsets
are written in braces ("{XS}", "{S}", "{M}", "{L}", "{XL}", "{DEV}", "{TEST}"); larger
training subsets contain the smaller ones, and an audio's ``subsets`` covers its segments'.

``text_tn`` is upper case with four punctuation tags (<COMMA>, <PERIOD>, <QUESTIONMARK>,
<EXCLAMATIONPOINT>); DEV/TEST label non-speech stretches with a garbage tag (<SIL>,
<MUSIC>, <NOISE>, <OTHER>), which the README says to discard.

Options: ``subset`` (XS, S, M, L, XL, DEV or TEST; default XS: a segment is used when its
``subsets`` holds it; segments of other subsets are not part of the scan and are not
counted), ``include_garbage`` (default false: garbage segments are rejected as
"garbage segment <TAG>"; true: they become rows with empty text and the tag as label).

Rows: one per segment: path = the recording's .opus, offset_s = begin_time, duration_s =
end_time - begin_time, text = text_tn with the punctuation tags restored and sentence
case (lower case, a capital at the start of each sentence and for the pronoun "I"; proper
nouns cannot be recovered from text_tn and stay lower case, so ``text_by`` says these
rules wrote it and ``attrs.text_tn`` keeps the published text), language "en", speaker =
the audio id (GigaSpeech has no speaker labels), split_group "gigaspeech:<aid>" (one
recording stays in one split); attrs: sid, aid, source, category, subsets, text_tn.

Licence: the metadata is Apache-2.0; SpeechColab does not own the audio, which its Terms
of Access (``TERMS_OF_ACCESS``, shown at download) allow for non-commercial research and
education only.

Memory: the metadata is never loaded whole (ijson is not available here). The listing
walks it once with a streaming parser built on ``json.JSONDecoder.raw_decode`` that holds
one audio entry at a time (bytes read as latin-1, so character offsets are byte offsets),
and keeps per recording of the subset only its byte range. Each work unit is one
recording: it reads and parses its own byte range, probes the .opus once and yields its
segments. For ``GigaSpeech.json.gz`` the byte ranges are offsets into the decompressed
stream; a worker keeps its gzip reader open and reads forward, so units in listing order
cost one pass per worker, not one per unit.
"""
from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Iterator

from .base import Adapter, LayoutError, ProbeError, Reject, clip_row, probe_audio, register_adapter

META = "GigaSpeech.json"
SUBSETS = ("XS", "S", "M", "L", "XL", "DEV", "TEST")
PUNCTUATION = {"<COMMA>": ",", "<PERIOD>": ".", "<QUESTIONMARK>": "?", "<EXCLAMATIONPOINT>": "!"}
GARBAGE_TAGS = ("<SIL>", "<MUSIC>", "<NOISE>", "<OTHER>")
TEXT_BY = "gigaspeech-tn-rules-v1"  # punctuation tags restored, sentence case
END_TOLERANCE_S = 0.1  # a segment may end this much past the decoded end (encoder padding, rounding)
_READ = 1 << 22  # metadata read size (bytes)
_TAIL = 1 << 16  # a parse error this close to the end of what was read may be the read's end
MAX_ENTRY = 1 << 29  # no audio entry is this large: a longer parse error is a broken file


def restore_text(text_tn: str) -> tuple[str, list[str]]:
    """GigaSpeech ``text_tn`` -> running text, and the garbage/other tags it held.

    "I THINK SO <COMMA> DON'T YOU <QUESTIONMARK>" -> "I think so, don't you?"."""
    words: list[str] = []
    tags: list[str] = []
    for tok in text_tn.split():
        if tok in PUNCTUATION:
            if words:
                words[-1] += PUNCTUATION[tok]
            continue
        if tok.startswith("<") and tok.endswith(">"):
            tags.append(tok)
            continue
        words.append(tok.lower())
    out: list[str] = []
    sentence_start = True
    for w in words:
        core = w.rstrip(".,?!")
        if core == "i" or core.startswith("i'"):
            w = "I" + w[1:]
        if sentence_start:
            w = w[:1].upper() + w[1:]
        out.append(w)
        sentence_start = w[-1] in ".?!"
    return " ".join(out), tags


class _StreamingArray:
    """The elements of the top-level "audios" array of a (possibly huge) JSON file, one at a
    time, with their byte offsets. Bytes are decoded as latin-1: one character per byte, so
    positions are byte offsets, and JSON's structure (all ASCII) parses the same; string
    values outside ASCII come out garbled, which is fine for the ids and subset tags used."""

    def __init__(self, f, name: str):
        self.f, self.name = f, name
        self.buf, self.pos, self.base, self.eof = "", 0, 0, False
        self.dec = json.JSONDecoder()

    def _more(self) -> None:
        if self.pos > _READ:  # drop what is parsed
            self.base += self.pos
            self.buf, self.pos = self.buf[self.pos:], 0
        data = self.f.read(max(_READ, len(self.buf) - self.pos))  # pending grows geometrically
        if not data:
            self.eof = True
        self.buf += data.decode("latin-1")

    def _ws(self) -> str:
        """Skip whitespace; the next character ("" at the end of the file)."""
        while True:
            n = len(self.buf)
            while self.pos < n and self.buf[self.pos] in " \t\r\n":
                self.pos += 1
            if self.pos < n or self.eof:
                return self.buf[self.pos] if self.pos < n else ""
            self._more()

    def _expect(self, chars: str) -> str:
        c = self._ws()
        if not c or c not in chars:
            self._fail(f"expected {' or '.join(repr(x) for x in chars)}, found {c!r}" if c else "file ends early")
        self.pos += 1
        return c

    def _value(self):
        self._ws()
        while True:
            try:
                obj, end = self.dec.raw_decode(self.buf, self.pos)
                if end < len(self.buf) or self.eof:
                    self.pos = end
                    return obj
            except json.JSONDecodeError as exc:
                # an error short of the buffer's end is in the file, not where the read stopped
                if self.eof or exc.pos < len(self.buf) - _TAIL or len(self.buf) - self.pos > MAX_ENTRY:
                    self._fail(exc.msg, self.base + exc.pos)
            self._more()

    def _fail(self, msg: str, at: int | None = None):
        at = self.base + self.pos if at is None else at
        raise LayoutError(f"gigaspeech: {self.name} is not valid JSON near byte {at} ({msg}). "
                          f"Expected layout: {GigaSpeech.expected_layout}")

    def __iter__(self) -> Iterator[tuple[int, int, object]]:
        self._ws()
        if self.buf.startswith("\xef\xbb\xbf"):  # a UTF-8 byte order mark
            self.pos = 3
        self._expect("{")
        if self._ws() == "}":
            return
        while True:
            key = self._value()
            self._expect(":")
            if key == "audios":
                self._expect("[")
                if self._ws() == "]":
                    return
                while True:
                    self._ws()
                    start = self.base + self.pos
                    obj = self._value()
                    yield start, self.base + self.pos - start, obj
                    if self._expect(",]") == "]":
                        return
            self._value()  # another key's value (dataset, version, ...): small
            if self._expect(",}") == "}":
                return


_GZ: dict = {}  # this process's open gzip reader: {"key": (path, size, mtime), "f": GzipFile}


def _read_range(meta: Path, at: int, n: int) -> bytes:
    if meta.suffix != ".gz":
        with open(meta, "rb") as f:
            f.seek(at)
            return f.read(n)
    st = meta.stat()
    key = (str(meta), st.st_size, st.st_mtime_ns)
    cur = _GZ.get("f")
    if cur is None or _GZ.get("key") != key or cur.tell() > at:
        if cur is not None:
            cur.close()
        _GZ.update(key=key, f=gzip.open(meta, "rb"))  # noqa: SIM115 (kept open: units read forward)
    f = _GZ["f"]
    f.seek(at)  # forward from where this reader is: decompresses only the gap
    return f.read(n)


def _subset_tag(options: dict) -> str:
    name = str(options.get("subset", "XS")).strip().strip("{}").upper()
    if name not in SUBSETS:
        raise LayoutError(f"gigaspeech: unknown subset {options.get('subset')!r} (one of {', '.join(SUBSETS)}). "
                          f"Expected layout: {GigaSpeech.expected_layout}")
    return "{" + name + "}"


def _number(seg: dict, key: str) -> float | None:
    v = seg.get(key)
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return None
    return float(v)


@register_adapter
class GigaSpeech(Adapter):
    corpus = "gigaspeech"
    kind = "speech"
    license = ("Apache-2.0 (metadata); audio under the GigaSpeech Terms of Access: "
               "non-commercial research and education only")
    provides = frozenset({"text", "speaker"})
    expected_layout = ("GigaSpeech.json (SpeechColab metadata: {\"audios\": [{aid, path, source, subsets, segments: "
                       "[{sid, begin_time, end_time, text_tn, subsets}]}]}, or GigaSpeech.json.gz) with "
                       "audio/<source>/P<NNNN>/<aid>.opus beside it, in the folder given or in its GigaSpeech/")

    def _base(self, root: Path) -> Path:
        for cand in (root, root / "GigaSpeech"):
            if (cand / META).is_file() or (cand / f"{META}.gz").is_file():
                return cand
        return root

    def _meta(self, root: Path) -> Path:
        base = self._base(root)
        for name in (META, f"{META}.gz"):
            if (base / name).is_file():
                return base / name
        if list(base.glob("GigaSpeech.json*.aes")):
            raise LayoutError(f"gigaspeech: {base} holds the encrypted metadata only: decrypt and gunzip "
                              f"GigaSpeech.json.gz.aes (the SpeechColab downloader does). "
                              f"Expected layout: {self.expected_layout}")
        raise LayoutError(f"gigaspeech: no {META} under {root}. Expected layout: {self.expected_layout}")

    def check_layout(self, root: Path, options: dict) -> None:
        meta = self._meta(root)
        _subset_tag(options)
        if not (meta.parent / "audio").is_dir():
            raise LayoutError(f"gigaspeech: no audio/ folder beside {meta.name} in {meta.parent}. "
                              f"Expected layout: {self.expected_layout}")
        opener = gzip.open if meta.suffix == ".gz" else open
        try:
            with opener(meta, "rb") as f:
                head = f.read(4096).removeprefix(b"\xef\xbb\xbf").lstrip()
        except OSError as exc:
            raise LayoutError(f"gigaspeech: cannot read {meta.name} ({exc}). Expected layout: {self.expected_layout}")
        if not head.startswith(b"{"):
            raise LayoutError(f"gigaspeech: {meta.name} is not a JSON object. Expected layout: {self.expected_layout}")

    def listing_roots(self, root: Path, options: dict) -> list[Path]:
        meta = self._meta(root)
        return [meta, meta.parent / "audio"]

    def units(self, root: Path, options: dict) -> list[dict]:
        """One unit per recording of the subset: its byte range in the metadata."""
        meta = self._meta(root)
        tag = _subset_tag(options)
        out = []
        opener = gzip.open if meta.suffix == ".gz" else open
        with opener(meta, "rb") as f:
            for at, n, audio in _StreamingArray(f, meta.name):
                subs = audio.get("subsets") if isinstance(audio, dict) else None
                if isinstance(subs, list) and tag not in subs:
                    continue
                aid = audio.get("aid") if isinstance(audio, dict) else None
                out.append({"at": at, "n": n, "aid": aid if isinstance(aid, str) else ""})
        return out

    def scan_unit(self, root: Path, options: dict, unit: dict) -> Iterator[dict | Reject]:
        meta = self._meta(root)
        tag = _subset_tag(options)
        keep_garbage = bool(options.get("include_garbage", False))
        where = f"{meta.name}@{unit['at']}"
        try:
            audio = json.loads(_read_range(meta, unit["at"], unit["n"]).decode("utf-8"))
        except UnicodeDecodeError:
            yield Reject(f"gigaspeech:{unit['aid'] or where}", f"malformed audio entry: not UTF-8 ({where})")
            return
        except json.JSONDecodeError as exc:  # the file changed since the listing
            yield Reject(f"gigaspeech:{unit['aid'] or where}", f"malformed audio entry ({exc.msg}; {where})")
            return
        aid = audio.get("aid") if isinstance(audio, dict) else None
        if not isinstance(aid, str) or not aid:
            yield Reject(f"gigaspeech:{where}", "malformed audio entry: no aid")
            return
        segments = audio.get("segments")
        if not isinstance(segments, list):
            yield Reject(f"gigaspeech:{aid}", "malformed audio entry: no segments list")
            return
        rel = audio.get("path")
        path = (meta.parent / rel).resolve() if isinstance(rel, str) and rel else None
        source = audio.get("source") if isinstance(audio.get("source"), str) else ""
        info: object = None  # probed once, on the first segment that needs it
        for i, seg in enumerate(segments):
            if not isinstance(seg, dict):
                yield Reject(f"gigaspeech:{aid}#{i}", "malformed segment: not a JSON object")
                continue
            subs = seg.get("subsets")
            if isinstance(subs, list) and tag not in subs:
                continue  # another subset's segment
            sid = seg.get("sid")
            cid = f"gigaspeech:{sid}" if isinstance(sid, str) and sid else f"gigaspeech:{aid}#{i}"
            begin, end, text_tn = _number(seg, "begin_time"), _number(seg, "end_time"), seg.get("text_tn")
            problems = [k for k, ok in (("sid", isinstance(sid, str) and sid), ("begin_time", begin is not None),
                                        ("end_time", end is not None), ("text_tn", isinstance(text_tn, str)),
                                        ("subsets", isinstance(subs, list))) if not ok]
            if problems:
                yield Reject(cid, f"malformed segment: {', '.join(problems)} missing or not valid")
                continue
            if begin < 0 or end <= begin:
                yield Reject(cid, f"malformed segment: begin_time {begin} and end_time {end} do not make a span")
                continue
            text, tags = restore_text(text_tn)
            garbage = [t for t in tags if t in GARBAGE_TAGS]
            if not text and garbage and not keep_garbage:
                yield Reject(cid, f"garbage segment {' '.join(garbage)}")
                continue
            if not text and not garbage:
                yield Reject(cid, "empty transcript" + (f" (only {' '.join(tags)})" if tags else ""))
                continue
            if path is None:
                yield Reject(cid, "malformed audio entry: no path")
                continue
            if info is None:
                try:
                    info = probe_audio(path)
                except ProbeError as exc:
                    info = exc
            if isinstance(info, ProbeError):
                yield Reject(cid, str(info))
                continue
            file_s = info.duration_s
            if end > file_s + END_TOLERANCE_S:
                yield Reject(cid, f"segment beyond the end of {path.name}: it ends at {end:.2f} s, "
                                  f"the audio at {file_s:.2f} s")
                continue
            end = min(end, file_s)
            attrs = {"sid": sid, "aid": aid, "source": source, "subsets": subs, "text_tn": text_tn}
            if isinstance(audio.get("category"), str):
                attrs["category"] = audio["category"]
            if garbage:
                attrs["garbage"] = garbage
            yield clip_row(
                id=cid, corpus=self.corpus, kind="speech", path=str(path), offset_s=begin,
                duration_s=round(end - begin, 6), sample_rate=info.sample_rate, language="en", text=text,
                text_by=TEXT_BY if text else "", speaker=aid, license=self.license,
                split_group=f"gigaspeech:{aid}", labels=[t.strip("<>").lower() for t in garbage] if not text else [],
                attrs=json.dumps(attrs, ensure_ascii=False, sort_keys=True),
            )
