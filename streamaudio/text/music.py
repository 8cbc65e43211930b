"""Music facts for replies about music: tempo measured from the audio where the metadata has
none, the genre, instruments and mood phrases of a track, and LLM-written descriptions that
are checked against those facts.

Tempo
    ``estimate_tempo(y, sr)`` is librosa's beat tracker (``librosa.beat.beat_track``: an
    onset-strength envelope, its autocorrelation, a log-normal prior around 120 BPM, the
    best period). Clicks at 90 and 128 BPM come out within 3%.

    ``ClipTempos`` is the build-time step: a table provider over a recipe's music pool that
    measures every clip whose attrs carry no ``tempo`` (FMA tracks outside echonest.csv, all
    of MUSAN music), at most ``max_clips`` of them (in a stable hash order: a capped table
    takes an even sample), on a thread pool. A measured tempo outside its genre's usual range
    (the table's ``bpm_range``) is halved or doubled into it where that lands inside: beat
    trackers lock onto off-beats (hip-hop's hi-hats) and report twice the tempo; the value
    as measured is kept in ``folded``. Each measurement is cached on disk by the
    file's path, size and mtime, the clip's offset and length and the estimator's settings
    (under ``<cache>/tempo`` when the build gives the table env a ``cache_dir``), so a
    rebuild measures nothing; the table's value (clip id -> BPM) is part of the sub-task's
    table hash, so changed tempos re-plan its shards and nothing else.
    Why a table provider and not a source stage: a stage would need a new catalog key on
    every music source (and the conformance suite's fixture pools, made without stages,
    would have no tempos); the provider measures exactly the clips the recipe can draw,
    in any catalog, offline, and its cache makes it a one-off cost like a stage's.

Descriptions
    ``music_facts`` turns a clip (+ its tempo) into phrases from the table
    (manifests/audio/music_description.yaml): genre (FMA's genre_top or a MUSAN genre
    through ``aliases``), tempo band, instruments (known ones: MUSAN's vocals flag,
    instrument genres; otherwise the genre's usual instruments, said as "what sounds like"),
    mood. ``MusicDescriptions`` asks an LLM (when the build has one) for a description per
    clip, given those facts, and keeps an answer only when ``check_description`` passes: it
    names the genre, says the tempo as the same BPM (no other number), names no other genre
    of the table, and is one plain sentence or two. A clip whose answer fails is described
    by the templates (counted in the table's report and note).
"""
from __future__ import annotations

import hashlib
import json
import os
import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from .cache import DiskCache, content_key
from .llm import LLMError
from .tables import ResolvedTable, TableEnv, TableProvider, load_yaml, table_path

SR = 16000
HOP = 256  # onset-envelope hop: 16 ms at 16 kHz


# ---------------------------------------------------------------- tempo
def estimator_name(estimator: str = "librosa") -> str:
    """What ``estimate_tempo`` uses, with its version (part of the tempo cache key)."""
    if estimator not in ("auto", "librosa"):
        raise ValueError(f"tempo estimator {estimator!r} is not librosa")
    import librosa

    return f"librosa-{librosa.__version__}"


def estimate_tempo(y: np.ndarray, sr: int = SR, estimator: str = "librosa", start_bpm: float = 120.0,
                   min_bpm: float = 30.0, max_bpm: float = 320.0) -> float | None:
    """The tempo of a mono signal in BPM, or None when it has no beat to find (silence)."""
    y = np.asarray(y, np.float32)
    if len(y) == 0 or not np.any(np.abs(y) > 1e-6):
        return None
    estimator_name(estimator)
    import librosa

    tempo, _ = librosa.beat.beat_track(y=y, sr=sr, start_bpm=start_bpm, hop_length=HOP)
    bpm = float(np.atleast_1d(tempo)[0])
    return bpm if min_bpm <= bpm <= max_bpm else None


def clip_attrs(clip: dict) -> dict:
    try:
        a = json.loads(clip.get("attrs") or "{}")
    except (TypeError, json.JSONDecodeError):
        return {}
    return a if isinstance(a, dict) else {}


def metadata_tempo(clip: dict) -> float | None:
    """A clip's tempo from its source's metadata (FMA: echonest.csv), if any."""
    t = clip_attrs(clip).get("tempo")
    return float(t) if isinstance(t, (int, float)) and not isinstance(t, bool) and t > 0 else None


def measure_clip(clip: dict, settings: dict) -> float | None:
    """A clip's tempo measured on up to ``analysis_s`` seconds from its middle."""
    from ..audio import load_clip

    dur = float(clip["duration_s"])
    span = min(dur, float(settings.get("analysis_s", 30.0)))
    start = max(0.0, (dur - span) / 2)
    y = load_clip(clip, start, span)
    return estimate_tempo(y, SR, settings.get("estimator", "librosa"), float(settings.get("start_bpm", 120.0)),
                          float(settings.get("min_bpm", 30.0)),
                          float(settings.get("max_bpm", 320.0)))


def _file_key(clip: dict, settings: dict, estimator: str) -> str:
    p = Path(clip["path"])
    try:
        st = p.stat()
        stamp = [st.st_size, st.st_mtime_ns]
    except OSError:
        stamp = None
    return content_key("tempo", estimator, {k: settings.get(k) for k in sorted(TEMPO_SETTINGS)}, str(p), stamp,
                       clip.get("offset_s"), clip.get("duration_s"), clip.get("channel"))


TEMPO_SETTINGS = ("analysis_s", "start_bpm", "min_bpm", "max_bpm")
TEMPO_COLUMNS = ("id", "path", "offset_s", "duration_s", "sample_rate", "channel", "attrs", "labels")


def fold_tempo(bpm: float, bpm_range) -> float:
    """A measured tempo halved or doubled into a genre's usual range where that lands inside
    it (a beat tracker that locked onto the off-beats found twice the tempo); else as it is."""
    if not bpm_range:
        return bpm
    lo, hi = float(bpm_range[0]), float(bpm_range[1])
    while bpm > hi and bpm / 2 >= lo:
        bpm /= 2
    while bpm < lo and bpm * 2 <= hi:
        bpm *= 2
    return bpm


class ClipTempos(TableProvider):
    """Tempo (BPM) of every clip of pool ``pool`` whose metadata has none, measured from the
    audio (see the module doc). Settings: the ``tempo`` section of ``settings`` (estimator,
    analysis_s, start_bpm, min_bpm, max_bpm, max_clips). Value:
    ``{"estimator": name, "by_id": {clip id: bpm}, "failed": [clip id, ...]}``; a planner
    reads a clip's tempo with ``tempo_for(clip, value)`` (metadata first)."""

    def __init__(self, settings: str, pool: str = "music"):
        self.settings, self.pool = settings, pool

    def __repr__(self) -> str:
        return f"ClipTempos({self.settings!r}, pool={self.pool!r})"

    def files(self, folder):
        return [table_path(self.settings, folder)]

    def resolve(self, env: TableEnv) -> ResolvedTable:
        table = load_yaml(table_path(self.settings, env.folder))
        settings = dict(table.get("tempo") or {})
        estimator = estimator_name(settings.get("estimator", "auto"))
        rows: dict[str, dict] = {}
        for clips in (env.pools.get(self.pool) or {}).values():
            cols = [c for c in TEMPO_COLUMNS if c in clips.column_names]
            for r in clips.select(cols).to_pylist():
                if r["id"] not in rows and metadata_tempo(r) is None:
                    rows[r["id"]] = r
        cap = int(settings.get("max_clips", 20000))
        todo = sorted(rows.values(), key=lambda r: hashlib.sha256(r["id"].encode()).hexdigest())[:cap]
        cache_dir = env.cache_dir
        cache = DiskCache(cache_dir, "tempo") if cache_dir else None
        failed: dict[str, str] = {}
        hits = 0

        def one(r: dict):
            # the beat tracker's prior is centred in the clip's genre's usual range (the geometric
            # mean of bpm_range): a 5 s rock excerpt at 168 BPM otherwise reads as 84
            genre = genre_key(r, table) if table.get("genres") else None
            rng_ = table["genres"][genre].get("bpm_range") if genre else None
            mine = {**settings, "start_bpm": float(np.sqrt(float(rng_[0]) * float(rng_[1])))} if rng_ else settings
            key = _file_key(r, mine, estimator)
            if cache is not None:
                hit = cache.get_json(key)
                if hit is not None:
                    return r["id"], hit.get("bpm"), hit.get("error"), True
            try:
                bpm = measure_clip(r, mine)
                err = None if bpm is not None else "no beat found"
            except Exception as exc:  # an unreadable clip: no tempo, said in the report (the render rejects it)
                bpm, err = None, f"{type(exc).__name__}: {' '.join(str(exc).split())[:160]}"
            if cache is not None:
                cache.put_json(key, {"bpm": bpm, "error": err})
            return r["id"], bpm, err, False

        by_id: dict[str, float] = {}
        folded: dict[str, float] = {}  # clip id -> the tempo as measured, where it was folded
        workers = max(1, min(8, os.cpu_count() or 1))
        with ThreadPoolExecutor(max_workers=workers) as ex:
            for cid, bpm, err, cached in ex.map(one, todo):
                hits += cached
                if bpm is None:
                    failed[cid] = err or "no tempo"
                    continue
                genre = genre_key(rows[cid], table) if table.get("genres") else None
                final = fold_tempo(float(bpm), table["genres"][genre].get("bpm_range") if genre else None)
                if final != bpm:
                    folded[cid] = round(float(bpm), 2)
                by_id[cid] = round(final, 2)
        value = {"estimator": estimator, "by_id": dict(sorted(by_id.items())), "failed": sorted(failed),
                 "folded": dict(sorted(folded.items()))}
        report = {"without_metadata": len(rows), "measured": len(by_id), "folded": len(folded), "failed": len(failed),
                  "not_measured_cap": max(0, len(rows) - len(todo)), "cache_hits": hits, "estimator": estimator}
        note = (f"tempo:{estimator}: {len(by_id)} of {len(rows)} clip(s) without a metadata tempo measured"
                + (f" ({len(folded)} folded into their genre's range)" if folded else "")
                + (f", {len(failed)} without a beat found (first: {next(iter(failed))}: {next(iter(failed.values()))})"
                   if failed else "")
                + (f", {report['not_measured_cap']} over max_clips left out" if report["not_measured_cap"] else ""))
        return ResolvedTable(value, writer=f"tempo:{estimator}", note=note, report=report)


def tempo_for(clip: dict, tempos: dict | None) -> tuple[float | None, str]:
    """(BPM, where it came from: "metadata" or "measured:<estimator>") of a clip; (None, "")
    when neither has one."""
    t = metadata_tempo(clip)
    if t is not None:
        return t, "metadata"
    if tempos and clip.get("id") in (tempos.get("by_id") or {}):
        how = "measured+folded" if clip["id"] in (tempos.get("folded") or {}) else "measured"
        return float(tempos["by_id"][clip["id"]]), f"{how}:{tempos.get('estimator', '')}"
    return None, ""


# ---------------------------------------------------------------- facts and phrases
def genre_key(clip: dict, table: dict) -> str | None:
    """The table's genre for a clip: FMA's genre_top, else the first of its labels that the
    table knows (directly or through ``aliases``); None when none is known."""
    genres, aliases = table["genres"], {k.lower(): v for k, v in (table.get("aliases") or {}).items()}
    cands = [clip_attrs(clip).get("genre_top") or ""] + list(clip.get("labels") or [])
    for c in cands:
        if not c:
            continue
        if c in genres:
            return c
        if c.lower() in aliases:
            return aliases[c.lower()]
    return None


def tempo_band(bpm: float, table: dict) -> dict:
    for band in table["tempo_bands"]:
        if bpm < band["below_bpm"]:
            return band
    return table["tempo_bands"][-1]


def _list_phrase(items: list[str]) -> str:
    items = [i for i in items if i]
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


def known_instruments(clip: dict, table: dict) -> list[str]:
    """Instruments the metadata states: MUSAN's vocals flag, FMA genres that name an instrument."""
    out: list[str] = []
    by_genre = table.get("instrument_genres") or {}
    for lab in clip.get("labels") or []:
        inst = by_genre.get(lab) or by_genre.get(str(lab).lower())
        if inst and inst not in out:
            out.append(inst)
    vocals = clip_attrs(clip).get("vocals")
    if vocals is True and "vocals" not in out:
        out.append("vocals")
    return out


def music_facts(clip: dict, tempos: dict | None, table: dict, rng: np.random.Generator | None = None) -> dict | None:
    """Everything a reply about a clip says, as phrases; None when the clip has no known
    genre or no tempo. ``rng`` draws the mood and the instrument set (None: the first ones)."""
    genre = genre_key(clip, table)
    bpm, tempo_from = tempo_for(clip, tempos)
    if genre is None or bpm is None:
        return None
    g = table["genres"][genre]
    pick = (lambda xs: xs[int(rng.integers(len(xs)))]) if rng is not None else (lambda xs: xs[0])  # noqa: E731
    band = tempo_band(bpm, table)
    known = known_instruments(clip, table)
    vocals = clip_attrs(clip).get("vocals")
    guessed = [i for i in pick(g["instruments"]) if i not in known and not (i == "vocals" and vocals is False)]
    phr = table["instrument_phrases"]
    if known and not guessed:
        instruments = phr["known"].format(known=_list_phrase(known))
    elif known:
        instruments = phr["known_and_guessed"].format(known=_list_phrase(known), guessed=_list_phrase(guessed))
    else:
        instruments = phr["guessed"].format(guessed=_list_phrase(guessed))
    if vocals is False:
        instruments += phr["no_vocals"]
    moods = [m for m in g["moods"] if m not in band.get("unlike_moods", [])] or g["moods"]
    return {"genre_key": genre, "genre": g["phrase"], "bpm": str(int(round(bpm))), "bpm_value": round(float(bpm), 2),
            "tempo": band["phrase"], "instruments": instruments, "mood": pick(moods), "tempo_from": tempo_from,
            "known_instruments": known}


# ---------------------------------------------------------------- LLM descriptions
NUMBER = re.compile(r"\d+(?:\.\d+)?")
FIELD_LABEL = re.compile(r"^\s*[A-Za-z_ ]{1,24}:")
MIN_CHARS, MAX_CHARS = 24, 320


def genre_names(table: dict, genre: str) -> list[str]:
    g = table["genres"][genre]
    return [n.lower() for n in (g.get("names") or [genre])]


def _has_word(text: str, phrase: str) -> bool:
    return re.search(r"(?<![\w-])" + re.escape(phrase) + r"(?![\w-])", text) is not None


def check_description(text, facts: dict, table: dict, clip: dict | None = None) -> str:
    """'' when an LLM description of a clip keeps its facts, else why not: it must name the
    clip's genre and say its tempo as the same whole BPM, with no other number and no other
    genre of the table (a genre among the clip's own labels is allowed), in one or two plain
    sentences without template braces or a leading field label."""
    if not isinstance(text, str):
        return f"not text ({type(text).__name__})"
    t = " ".join(text.split())
    if not MIN_CHARS <= len(t) <= MAX_CHARS:
        return f"{len(t)} characters, not {MIN_CHARS}-{MAX_CHARS}"
    if "{" in t or "}" in t or FIELD_LABEL.match(t):
        return "not a plain sentence (braces or a field label)"
    if len(re.findall(r"[.!?](\s|$)", t)) > 2:
        return "more than two sentences"
    low = t.lower()
    if not any(_has_word(low, n) for n in genre_names(table, facts["genre_key"])):
        return f"does not name the genre ({facts['genre_key']})"
    numbers = NUMBER.findall(t)
    if facts["bpm"] not in numbers:
        return f"does not say the tempo as {facts['bpm']} BPM"
    if any(n != facts["bpm"] for n in numbers):
        return f"says other numbers ({', '.join(n for n in numbers if n != facts['bpm'])})"
    own = {facts["genre_key"]} | {genre_key({"labels": [lab]}, table) for lab in (clip or {}).get("labels") or []}
    for other in table["genres"]:
        if other in own:
            continue
        said = [n for n in genre_names(table, other) if _has_word(low, n)
                and not any(n in m for m in genre_names(table, facts["genre_key"]))]
        if said:
            return f"names another genre ({said[0]})"
    return ""


DESCRIPTION_SCHEMA = {"type": "object", "additionalProperties": False, "required": ["playing", "ended"],
                      "properties": {"playing": {"type": "string", "minLength": 8, "maxLength": 400},
                                     "ended": {"type": "string", "minLength": 8, "maxLength": 400}}}
DESCRIPTION_KEYS = ("playing", "ended")


class MusicDescriptions(TableProvider):
    """LLM-written descriptions of the clips of pool ``pool`` (at most ``llm.max_clips`` of
    the table, in a stable hash order), one while it plays and one after it ended, each kept
    only when ``check_description`` passes. Offline (or for every clip or key that fails) the
    recipe fills the table's templates. Needs the ``tempos`` table (a ClipTempos) resolved
    before it. Value: ``{"by_id": {clip id: {"playing": ..., "ended": ...}}}`` (keys that
    failed are absent)."""
    writes_text = True

    def __init__(self, table: str, pool: str = "music", tempos: str = "tempos"):
        self.table, self.pool, self.tempos = table, pool, tempos

    def __repr__(self) -> str:
        return f"MusicDescriptions({self.table!r}, pool={self.pool!r}, tempos={self.tempos!r})"

    def files(self, folder):
        return [table_path(self.table, folder)]

    def resolve(self, env: TableEnv) -> ResolvedTable:
        table = load_yaml(table_path(self.table, env.folder))
        if env.llm is None:
            return ResolvedTable({"by_id": {}}, writer="table", note="offline templates")
        tempos = env.tables.get(self.tempos)
        clips: dict[str, dict] = {}
        for split_clips in (env.pools.get(self.pool) or {}).values():
            cols = [c for c in ("id", "labels", "attrs", "caption") if c in split_clips.column_names]
            for r in split_clips.select(cols).to_pylist():
                clips.setdefault(r["id"], r)
        items = []
        for cid in sorted(clips, key=lambda c: hashlib.sha256(c.encode()).hexdigest()):
            facts = music_facts(clips[cid], tempos, table)
            if facts is not None:
                items.append((clips[cid], facts))
        items = items[: int((table.get("llm") or {}).get("max_clips", 2000))]
        if not items:
            return ResolvedTable({"by_id": {}}, writer="table", note="offline templates (no clip to describe)")
        p = table["llm"]
        reqs = []
        for clip, f in items:
            user = p["user"].format(genre=f["genre"], bpm=f["bpm"], tempo=f["tempo"], instruments=f["instruments"],
                                    mood=f["mood"], title=(clip.get("caption") or "").strip() or "unknown")
            reqs.append(([{"role": "system", "content": p["system"]}, {"role": "user", "content": user}],
                         DESCRIPTION_SCHEMA))
        results = env.llm.map_json("music_descriptions", reqs)
        by_id: dict[str, dict] = {}
        rejected: dict[str, int] = {}
        failed: dict[str, str] = {}  # the endpoint never answered (rate limits, timeouts): a fallback to report
        for (clip, f), res in zip(items, results):
            if isinstance(res, LLMError):
                if res.transient:
                    failed[clip["id"]] = str(res)
                else:  # answered, but never in the schema: a verdict on the answer
                    rejected["invalid answer"] = rejected.get("invalid answer", 0) + 2
                continue
            kept = {}
            for key in DESCRIPTION_KEYS:
                why = check_description(res.get(key), f, table, clip)
                if why:
                    kind = why.split(" (")[0]
                    rejected[kind] = rejected.get(kind, 0) + 1
                else:
                    kept[key] = " ".join(res[key].split())
            if kept:
                by_id[clip["id"]] = kept
        tag = env.llm.config.tag
        n_kept = sum(len(v) for v in by_id.values())
        report = {"clips": len(items), "descriptions_kept": n_kept, "descriptions_rejected": sum(rejected.values()),
                  "rejected_by_reason": dict(sorted(rejected.items())), "clips_failed": len(failed)}
        summary = (f"{tag}: {n_kept} of {2 * len(items)} description(s) kept for {len(items)} clip(s), "
                   f"{sum(rejected.values())} rejected by the fact check (templates used instead)")
        if failed:
            first = next(iter(failed))
            note = f"offline table (LLM failed: {len(failed)} clip(s), first {first!r}: {failed[first]}); {summary}"
        else:
            note = summary
        return ResolvedTable({"by_id": by_id}, writer=tag if by_id else "table", note=note, report=report)
