"""Lhotse manifests, read as JSON Lines (``.jsonl`` or ``.jsonl.gz``) without lhotse installed.

The field names follow lhotse's dataclasses (lhotse-speech/lhotse on GitHub):

- Recording (``lhotse/audio/recording.py``, ``lhotse/audio/source.py``): ``{id, sources: [{type,
  channels, source}], sampling_rate, num_samples, duration, channel_ids?, transforms?}``; a
  source's ``type`` is file, url, command, memory or shar; ``transforms`` are
  ``{name, kwargs}`` (``lhotse/augmentation/transform.py``).
- SupervisionSegment (``lhotse/supervision.py``): ``{id, recording_id, start, duration, channel,
  text?, language?, speaker?, gender?, custom?, alignment?}``, times in seconds from the start
  of the recording (of the cut, inside a cut); ``None`` fields are left out of the JSON.
- Cuts (``lhotse/cut/mono.py``, ``lhotse/cut/data.py``): ``{id, start, duration, channel,
  supervisions, recording, features?, custom?, type: "MonoCut"|"MultiCut"}``; MixedCut and
  PaddingCut (``type`` MixedCut/PaddingCut) have no single audio file. ``lhotse/serialization.py``
  (``deserialize_item``) tells the kinds apart the same way: ``sources`` is a recording, ``type``
  a cut, anything else a supervision.

Recipes name their files ``<corpus>_recordings_<part>.jsonl.gz``,
``<corpus>_supervisions_<part>.jsonl.gz`` and ``<corpus>_cuts_<part>.jsonl.gz``; a part is the
file name with the manifest word taken out, and its recordings and supervisions go together.
"""
from __future__ import annotations

import fnmatch
import gzip
import json
import re
from itertools import islice
from pathlib import Path, PurePosixPath
from typing import Any, Iterator

from .audiofolder import (DEFAULT_LICENSE, AudioFolder, attrs_json, check_option_keys, generic_kind, generic_license, visible_walk)
from .base import bcp47, ANY_KIND, Adapter, AudioInfo, LayoutError, ProbeError, Reject, clip_row, probe_audio, register_adapter

LINES_PER_UNIT = 500
END_TOLERANCE_S = 0.025  # lhotse's default audio duration mismatch tolerance
_WORD = re.compile(r"(?<![A-Za-z])(recordings|supervisions|cuts)(?![A-Za-z])")
_NAME = re.compile(r"\.jsonl(\.gz)?$")
TIMING_ONLY_TRANSFORMS = ("Resample",)  # change nothing a file-reading renderer gets wrong


def _open(path: Path):
    return gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb")


def _parse(raw: bytes) -> dict | str:
    """A JSON object from one manifest line, or the reason there is none."""
    try:
        obj = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        return "manifest line is not valid UTF-8"
    except json.JSONDecodeError as exc:
        return f"manifest line is not JSON ({exc.msg})"
    return obj if isinstance(obj, dict) else "manifest line is not a JSON object"


def _num(v: Any) -> float | None:
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None


@register_adapter
class Lhotse(Adapter):
    __doc__ = """Lhotse RecordingSet + SupervisionSet manifests, or CutSet manifests, as JSON Lines.

    One clip per supervision: path = the recording's file source, offset_s = the supervision's
    start (plus the cut's start, for cuts), duration_s = its duration, text, speaker, language
    (BCP-47 when it looks like an ISO code or is a common English name: "English" -> "en").
    Clip ids: ``lhotse:<supervision id>`` (``lhotse:<cut id>/<supervision id>`` inside cuts). A
    part with recordings only (MUSAN-style noise) gives one clip per recording, when transcripts
    are not required. Split groups: the speaker when known, else the recording.

    Rejects: a supervision whose recording is not in its part's recordings manifest; recordings
    whose needed audio is not a local file (url, command, memory, shar sources: "audio file
    missing ... not a file source"), or whose channels are spread over several files, or that
    carry transforms other than Resample (speed, volume, reverb: not applied by StreamAudio);
    audio that probe_audio refuses; a supervision outside its recording or cut; MixedCut and
    PaddingCut lines; a missing text or speaker when required; lines that are not JSON.

    Options:

    - ``kind`` (required): speech, sound, music, noise or rir.
    - ``license``: the licence string rows carry (default "unknown: set options.license").
    - ``language``: the BCP-47 tag of supervisions that carry none.
    - ``manifest_type``: ``auto`` (default: per part, supervisions + recordings if there are
      any, else cuts, else recordings), ``supervisions``, ``cuts`` or ``recordings``.
    - ``include``: glob patterns of manifest paths under root to use (e.g. ``["*dev-clean*"]``).
    - ``audio_root``: the folder relative file sources are resolved against (default root;
      the manifest's own folder is tried next). Absolute paths are used as they are.
    - ``require_text``: reject supervisions without text (default true for kind speech);
      the source then provides ``text``.
    - ``require_speaker``: reject supervisions without a speaker (default false); when true the
      source provides ``speaker``.

    Units are blocks of LINES_PER_UNIT manifest lines. The listing reads the recordings manifest
    of each part into memory (recordings are usually far fewer than supervisions) and reads the
    supervisions once to hand each block the recordings it refers to; a unit re-reads its block
    by skipping the (gzip) lines before it.
    """

    corpus = "lhotse"
    kind = ANY_KIND
    license = DEFAULT_LICENSE
    version = "1"
    expected_layout = ("lhotse manifests as JSON Lines: <name>_recordings_<part>.jsonl.gz with "
                       "<name>_supervisions_<part>.jsonl.gz, and/or <name>_cuts_<part>.jsonl.gz (plain .jsonl too)")
    OPTIONS = ("kind", "license", "language", "manifest_type", "include", "audio_root", "require_text",
               "require_speaker")
    KINDS = AudioFolder.KINDS

    # -------------------------------------------------------------- options
    def license_for(self, options: dict) -> str:
        return generic_license(options)

    def kind_for(self, options: dict) -> str:
        return generic_kind(self.corpus, options, self.expected_layout, self.KINDS)

    def _require_text(self, options: dict) -> bool:
        return bool(options.get("require_text", self.kind_for(options) == "speech"))

    def provides_for(self, options: dict) -> frozenset[str]:
        facts = set()
        if self._require_text(options):
            facts.add("text")
        if options.get("require_speaker"):
            facts.add("speaker")
        return frozenset(facts)

    # -------------------------------------------------------------- discovery
    def _parts(self, root: Path, options: dict) -> list[dict]:
        """Per part, in order: {"key", "recordings", "supervisions", "cuts"} (paths relative to root)."""
        include = options.get("include") or []
        if isinstance(include, str):
            include = [include]
        parts: dict[str, dict] = {}
        for d, files in visible_walk(root):
            for name in files:
                m = _WORD.search(name)
                if not m or not _NAME.search(name):
                    continue
                rel = (d / name).relative_to(root).as_posix()
                if include and not any(fnmatch.fnmatch(rel, pat) for pat in include):
                    continue
                key = (d / (name[:m.start()] + "*" + name[m.end():])).relative_to(root).as_posix()
                key = _NAME.sub("", key)
                parts.setdefault(key, {"key": key, "recordings": None, "supervisions": None, "cuts": None})
                parts[key][m.group(1)] = rel
        return [parts[k] for k in sorted(parts)]

    def _plan(self, root: Path, options: dict) -> list[tuple[str, dict]]:
        """(how, part) for every part used: how is supervisions, cuts or recordings."""
        mode = options.get("manifest_type") or "auto"
        if mode not in ("auto", "supervisions", "cuts", "recordings"):
            raise LayoutError(f"lhotse: options.manifest_type must be auto, supervisions, cuts or recordings, "
                              f"got {mode!r}")
        parts = self._parts(root, options)
        out = []
        for p in parts:
            how = mode
            if mode == "auto":
                how = "supervisions" if p["supervisions"] else "cuts" if p["cuts"] else "recordings"
            if not p[how]:
                continue
            if how == "supervisions" and not p["recordings"]:
                same_dir = [q for q in parts if q["recordings"]
                            and PurePosixPath(q["recordings"]).parent == PurePosixPath(p["supervisions"]).parent]
                if len(same_dir) != 1:
                    raise LayoutError(f"lhotse: no recordings manifest for {p['supervisions']} (expected "
                                      f"{p['key']} with 'recordings'). Expected layout: {self.expected_layout}")
                p = {**p, "recordings": same_dir[0]["recordings"]}
            out.append((how, p))
        return out

    def check_layout(self, root: Path, options: dict) -> None:
        options = options or {}
        if not root.is_dir():
            raise LayoutError(f"lhotse: {root} is not a folder. Expected layout: {self.expected_layout}")
        if not self._parts(root, options):
            raise LayoutError(f"lhotse: no *recordings*/*supervisions*/*cuts*.jsonl[.gz] manifests under {root}. "
                              f"Expected layout: {self.expected_layout}")
        check_option_keys(self.corpus, options, self.OPTIONS)
        self.kind_for(options)
        lang = options.get("language")
        if lang is not None and not isinstance(lang, str):
            raise LayoutError(f"lhotse: options.language must be a BCP-47 tag such as 'en', got {lang!r}")
        plan = self._plan(root, options)
        if not plan:
            raise LayoutError(f"lhotse: no {options.get('manifest_type')} manifests under {root}. "
                              f"Expected layout: {self.expected_layout}")
        only_recs = [p["recordings"] for how, p in plan if how == "recordings"]
        if only_recs and self._require_text(options):
            raise LayoutError(f"lhotse: {only_recs} have no supervisions, so no transcripts: leave them out with "
                              f"options.include, or set require_text: false. Expected layout: {self.expected_layout}")

    def listing_roots(self, root: Path, options: dict) -> list[Path]:
        """The manifests (audio may live anywhere; the manifests say where)."""
        files = []
        for how, p in self._plan(root, options):
            files += [root / p[how]] + ([root / p["recordings"]] if how == "supervisions" else [])
        return list(dict.fromkeys(files))

    # -------------------------------------------------------------- units
    def units(self, root: Path, options: dict) -> list[dict]:
        out = []
        for how, p in self._plan(root, options):
            if how != "supervisions":
                n = 0
                with _open(root / p[how]) as f:
                    for n, _ in enumerate(f, 1):
                        pass
                out += [{"how": how, "file": p[how], "start": s, "end": min(n, s + LINES_PER_UNIT)}
                        for s in range(0, n, LINES_PER_UNIT)]
                continue
            recordings, errors = self._recordings(root, p["recordings"])
            with _open(root / p["supervisions"]) as f:
                start, n, needed = 0, 0, {}
                for n, raw in enumerate(f, 1):
                    obj = _parse(raw) if raw.strip() else None
                    if isinstance(obj, dict) and isinstance(obj.get("recording_id"), str):
                        rid = obj["recording_id"]
                        needed[rid] = recordings.get(rid)
                    if n - start == LINES_PER_UNIT:
                        out.append({"how": how, "file": p["supervisions"], "start": start, "end": n,
                                    "recordings_file": p["recordings"], "recordings": needed, "errors": errors})
                        start, needed, errors = n, {}, []
                if n > start or errors:
                    out.append({"how": how, "file": p["supervisions"], "start": start, "end": n,
                                "recordings_file": p["recordings"], "recordings": needed, "errors": errors})
        return out

    def _recordings(self, root: Path, rel: str) -> tuple[dict, list]:
        """Recordings by id (the fields a clip needs), and [item, reason] of unusable lines."""
        recs, errors = {}, []
        with _open(root / rel) as f:
            for lineno, raw in enumerate(f, 1):
                if not raw.strip():
                    continue
                obj = _parse(raw)
                if isinstance(obj, dict) and not isinstance(obj.get("id"), str):
                    obj = "recording has no id"
                elif isinstance(obj, dict) and not isinstance(obj.get("sources"), list):
                    obj = f"recording {obj['id']!r} has no sources"
                if isinstance(obj, str):
                    errors.append([f"lhotse:{rel}:{lineno}", obj])
                    continue
                recs[obj["id"]] = {k: obj.get(k) for k in ("id", "sources", "sampling_rate", "duration",
                                                           "transforms")}
        return recs, errors

    # -------------------------------------------------------------- rows
    def scan_unit(self, root: Path, options: dict, unit: dict) -> Iterator[dict | Reject]:
        ctx = _Context(self, root, options, unit["file"])
        for item, reason in unit.get("errors", []):
            yield Reject(item, reason)
        with _open(root / unit["file"]) as f:
            for lineno, raw in enumerate(islice(f, unit["start"], unit["end"]), unit["start"] + 1):
                if not raw.strip():
                    continue
                obj = _parse(raw)
                where = f"lhotse:{unit['file']}:{lineno}"
                if isinstance(obj, str):
                    yield Reject(where, obj)
                elif unit["how"] == "supervisions":
                    yield self._supervision(ctx, obj, where, unit)
                elif unit["how"] == "cuts":
                    yield from self._cut(ctx, obj, where)
                else:
                    yield self._whole_recording(ctx, obj, where)

    def _supervision(self, ctx: "_Context", sup: dict, where: str, unit: dict) -> dict | Reject:
        sid = sup.get("id")
        if not isinstance(sid, str) or not isinstance(sup.get("recording_id"), str):
            return Reject(where, "supervision has no id or recording_id")
        rid = sup["recording_id"]
        rec = unit["recordings"].get(rid)
        if rec is None:
            return Reject(f"lhotse:{sid}", f"recording {rid!r} missing from {unit['recordings_file']}")
        return ctx.clip(f"lhotse:{sid}", sup, rec, base=0.0, span=None)

    def _cut(self, ctx: "_Context", cut: dict, where: str) -> Iterator[dict | Reject]:
        cut_id = cut.get("id") if isinstance(cut.get("id"), str) else where.removeprefix("lhotse:")
        ctype = cut.get("type")
        if ctype not in ("MonoCut", "MultiCut", "Cut"):
            yield Reject(f"lhotse:{cut_id}", f"{ctype or 'untyped'} cut: not one span of one recording (only "
                                             f"MonoCut and MultiCut are read)")
            return
        rec, start, dur = cut.get("recording"), _num(cut.get("start")), _num(cut.get("duration"))
        if not isinstance(rec, dict) or not isinstance(rec.get("sources"), list):
            yield Reject(f"lhotse:{cut_id}", "cut has no recording (features only?): no audio to read")
            return
        if start is None or dur is None or start < 0 or dur <= 0:
            yield Reject(f"lhotse:{cut_id}", "cut has no valid start/duration")
            return
        sups = cut.get("supervisions") or []
        if not sups:
            whole = {"id": cut_id, "start": 0.0, "duration": dur, "channel": cut.get("channel")}
            yield ctx.clip(f"lhotse:{cut_id}", whole, rec, base=start, span=dur, cut_id=cut_id)
            return
        for sup in sups:
            sid = sup.get("id") if isinstance(sup, dict) else None
            if not isinstance(sid, str):
                yield Reject(f"lhotse:{cut_id}", "cut has a supervision without an id")
                continue
            cid = f"lhotse:{sid}" if sid == cut_id else f"lhotse:{cut_id}/{sid}"
            yield ctx.clip(cid, sup, rec, base=start, span=dur, cut_id=cut_id)

    def _whole_recording(self, ctx: "_Context", rec: dict, where: str) -> dict | Reject:
        rid = rec.get("id")
        if not isinstance(rid, str) or not isinstance(rec.get("sources"), list):
            return Reject(where, "recording has no id or sources")
        return ctx.clip(f"lhotse:{rid}", {"id": rid, "start": 0.0, "duration": None, "channel": None}, rec,
                        base=0.0, span=None)


class _Context:
    """What one unit's clips share: options, and each audio file probed once."""

    def __init__(self, adapter: Lhotse, root: Path, options: dict, manifest: str):
        self.adapter, self.root, self.manifest = adapter, root, manifest
        self.kind = adapter.kind_for(options)
        self.license = generic_license(options)
        self.language = bcp47(options.get("language"))
        self.require_text = adapter._require_text(options)
        self.require_speaker = bool(options.get("require_speaker"))
        audio_root = Path(options.get("audio_root") or root)
        self.audio_roots = [audio_root if audio_root.is_absolute() else root / audio_root,
                            (root / manifest).parent]
        self.probed: dict[str, AudioInfo | str] = {}

    def _file(self, rec: dict, channel: Any) -> tuple[Path, list[int]] | str:
        """The audio file holding ``channel`` (None: all) of ``rec``, or why there is none."""
        rid = rec.get("id")
        sources = [s for s in rec["sources"] if isinstance(s, dict)]
        wanted = None if channel is None else set(channel if isinstance(channel, list) else [channel])
        if not sources:
            return f"recording {rid!r} has no audio sources"
        used = [s for s in sources if wanted is None or wanted & set(s.get("channels") or [])]
        if not used:
            return f"recording {rid!r} has no channel {sorted(wanted)}"
        bad = [s.get("type") for s in used if s.get("type") != "file"]
        if bad:
            return (f"audio file missing: recording {rid!r} has a {bad[0]!r} source, not a file source "
                    f"(StreamAudio reads local files; download it and write a 'file' source)")
        if len(used) > 1:
            return (f"recording {rid!r}: channels {sorted(wanted) if wanted else 'all'} are spread over "
                    f"{len(used)} files; a clip is read from one file")
        transforms = [t.get("name") if isinstance(t, dict) else str(t) for t in rec.get("transforms") or []]
        odd = [t for t in transforms if t not in TIMING_ONLY_TRANSFORMS]
        if odd:
            return f"recording {rid!r} has lhotse transforms {odd}, which StreamAudio does not apply"
        src = used[0].get("source")
        if not isinstance(src, str) or not src:
            return f"recording {rid!r} has an empty file source"
        p = Path(src)
        if not p.is_absolute():
            p = next((b / src for b in self.audio_roots if (b / src).exists()), self.audio_roots[0] / src)
        return p, list(used[0].get("channels") or [])

    def _probe(self, path: Path) -> AudioInfo | str:
        key = str(path)
        if key not in self.probed:
            try:
                self.probed[key] = probe_audio(path)
            except ProbeError as exc:
                self.probed[key] = str(exc)
        return self.probed[key]

    def clip(self, cid: str, sup: dict, rec: dict, base: float, span: float | None,
             cut_id: str | None = None) -> dict | Reject:
        """One clip: supervision ``sup`` (times relative to ``base`` seconds into recording ``rec``;
        ``span``: the cut's duration, None outside cuts; a None duration: to the end of the file)."""
        start, dur = _num(sup.get("start")), _num(sup.get("duration"))
        if start is None or (dur is None and sup.get("duration") is not None):
            return Reject(cid, "supervision has no numeric start/duration")
        if dur is not None and dur <= 0:
            return Reject(cid, f"supervision has duration {dur} (empty)")
        text = sup.get("text")
        text = text.strip() if isinstance(text, str) else ""
        if self.require_text and not text:
            return Reject(cid, "no transcript: supervision has no text" if sup.get("text") is None
                          else "empty transcript")
        speaker = str(sup.get("speaker") or "").strip()
        if self.require_speaker and not speaker:
            return Reject(cid, "supervision has no speaker (require_speaker)")
        if span is not None and (start < -1e-3 or (dur is not None and start + dur > span + END_TOLERANCE_S)):
            return Reject(cid, f"supervision [{start:.3f}, {start + (dur or 0):.3f}] s lies partly outside its "
                               f"cut (0-{span:.3f} s): its text may not be all in the audio")
        got = self._file(rec, sup.get("channel"))
        if isinstance(got, str):
            return Reject(cid, got)
        path, _channels = got
        info = self._probe(path)
        if isinstance(info, str):
            return Reject(cid, info)
        offset = base + max(0.0, start)
        if dur is None:
            dur = info.duration_s - offset
        end = offset + dur
        if start < -1e-3 or end > info.duration_s + END_TOLERANCE_S:
            return Reject(cid, f"supervision [{offset:.3f}, {end:.3f}] s lies outside the audio file "
                               f"({info.duration_s:.3f} s): truncated audio or a wrong recording")
        dur = min(dur, info.duration_s - offset)
        rid = rec.get("id") or ""
        attrs = {"recording_id": rid, "gender": sup.get("gender"), "custom": sup.get("custom"),
                 "cut_id": cut_id, "manifest": self.manifest}
        channel = -1  # the whole file, mixed, unless the supervision is one channel of a multi-channel file
        if isinstance(sup.get("channel"), int) and info.channels > 1 and sup["channel"] in _channels:
            attrs["channel"] = sup["channel"]
            channel = _channels.index(sup["channel"])  # lhotse numbers a recording's channels; this is the file's
        group = f"lhotse:speaker:{speaker}" if speaker else f"lhotse:recording:{rid}"
        return clip_row(
            id=cid, corpus="lhotse", kind=self.kind, path=str(path.resolve()), offset_s=round(offset, 6),
            duration_s=round(dur, 6), sample_rate=info.sample_rate, language=bcp47(sup.get("language")) or self.language,
            text=text, speaker=speaker, license=self.license, split_group=group, channel=channel,
            attrs=attrs_json(attrs),
        )
