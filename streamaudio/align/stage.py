"""The alignment stage: clip rows in, the same rows plus `words` and
`align_score` out, failures as rejects. `Align` is the build's source stage;
`align_manifest` is `streamaudio align`. Runs as Ray Data actors (one aligner
per actor; GPUs, fractional allowed, for the ctc backend), caches every result
by clip content, and resumes from part files."""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from ..audio import AudioReadError, load_clip
from ..format import WORD_TYPE
from ..parallel import map_rows_with_actors
from ..stages import BuildEnv, SourceStage, SourceState, collect_by_id, register_stage, speech_with_text
from .base import AlignmentFailure

RESULT_SCHEMA = pa.schema([
    pa.field("id", pa.string()),
    pa.field("words", pa.list_(WORD_TYPE)),
    pa.field("align_score", pa.float64()),
    pa.field("reason", pa.string()),  # "" when aligned
    pa.field("aligner", pa.string()),
])
BACKENDS = ("pocketsphinx", "ctc")


def make_aligner(backend: str, model_dir: str | None = None, device: str | None = None):
    if backend == "pocketsphinx":
        from .pocketsphinx_backend import PocketsphinxAligner

        return PocketsphinxAligner()
    if backend == "ctc":
        if not model_dir:
            raise ValueError("the ctc backend needs --model-dir (a local Wav2Vec2ForCTC folder)")
        from .ctc import CTCAligner

        return CTCAligner(model_dir, device=device)
    raise ValueError(f"unknown aligner backend {backend!r}; choose one of {BACKENDS}")


def _file_sha(path: str, memo: dict) -> str:
    if path not in memo:
        h = hashlib.sha256()
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
        memo[path] = h.hexdigest()
    return memo[path]


class AlignWorker:
    """A Ray Data actor: one aligner, reused for every batch it is given."""

    def __init__(self, backend: str, model_dir: str | None, cache_dir: str | None, device: str | None = None):
        self.aligner = make_aligner(backend, model_dir, device)
        self.cache = Path(cache_dir) / "align" if cache_dir else None
        self._sha: dict = {}

    def key(self, row: dict) -> str:
        content = _file_sha(row["path"], self._sha)
        return hashlib.sha256(json.dumps([self.aligner.name, content, row["offset_s"], row["duration_s"],
                                          row["text"], row["language"]]).encode()).hexdigest()

    def __call__(self, batch: pa.Table) -> pa.Table:
        rows = batch.to_pylist()
        out: list[dict | None] = [None] * len(rows)
        todo, audios, keys = [], [], {}
        for i, row in enumerate(rows):
            try:
                keys[i] = self.key(row)
            except OSError as exc:
                out[i] = {**_fail(row, f"cannot read audio: {exc.strerror or exc}"), "aligner": self.aligner.name}
                continue
            hit = self._cached(keys[i])
            if hit is not None:
                out[i] = {"id": row["id"], **hit, "aligner": self.aligner.name}
                continue
            try:
                audios.append(load_clip(row))
                todo.append(i)
            except AudioReadError as exc:
                out[i] = self._store(keys[i], {**_fail(row, str(exc)), "aligner": self.aligner.name})
        if todo:
            texts = [rows[i]["text"] for i in todo]
            langs = [rows[i]["language"] for i in todo]
            if hasattr(self.aligner, "align_batch"):
                results = self.aligner.align_batch(audios, texts, langs)
            else:
                results = []
                for a, t, lang in zip(audios, texts, langs):
                    try:
                        results.append(self.aligner.align(a, t, lang))
                    except AlignmentFailure as exc:
                        results.append(exc)
            for i, res in zip(todo, results):
                row = rows[i]
                if isinstance(res, AlignmentFailure):
                    out[i] = self._store(keys[i], {**_fail(row, str(res)), "aligner": self.aligner.name})
                else:
                    words = [{"text": w.text, "start_s": w.start_s, "end_s": w.end_s} for w in res.words]
                    out[i] = self._store(keys[i], {"id": row["id"], "words": words, "align_score": res.score, "reason": "",
                                                   "aligner": self.aligner.name})
        return pa.Table.from_pylist(out, RESULT_SCHEMA)

    def _cached(self, key: str) -> dict | None:
        if self.cache is None:
            return None
        p = self.cache / key[:2] / f"{key}.json"
        if p.is_file():
            return json.loads(p.read_text())
        return None

    def _store(self, key: str, result: dict) -> dict:
        if self.cache is not None:
            p = self.cache / key[:2] / f"{key}.json"
            p.parent.mkdir(parents=True, exist_ok=True)
            tmp = p.with_name(f".{p.name}.{os.getpid()}.tmp")  # unique per process: workers share the cache
            tmp.write_text(json.dumps({k: v for k, v in result.items() if k not in ("id", "aligner")}))
            tmp.replace(p)
        return result


def _fail(row: dict, reason: str) -> dict:
    return {"id": row["id"], "words": [], "align_score": float("nan"), "reason": reason}


def run_alignment(rows: pa.Table, backend: str, *, model_dir: str | None = None, cache_dir: str | None = None,
                  actors: int | None = None, gpus_per_actor: float = 0.0, batch_size: int | None = None,
                  on_batch=None) -> float:
    """Align ``rows`` (needs id, path, offset_s, duration_s, sample_rate, text, language) on Ray;
    ``on_batch(result_table)`` receives results as they complete (in any order)."""
    # similar durations in one batch: the ctc backend pads to the longest item
    rows = rows.sort_by([("duration_s", "ascending"), ("id", "ascending")])
    cols = rows.select(["id", "path", "offset_s", "duration_s", "sample_rate", "text", "language"])
    return map_rows_with_actors(cols, AlignWorker, {"backend": backend, "model_dir": model_dir, "cache_dir": cache_dir},
                         RESULT_SCHEMA, batch_size=batch_size or (64 if backend == "ctc" else 8), actors=actors,
                         gpus_per_actor=gpus_per_actor, on_batch=on_batch)


def merge_results(rows: pa.Table, results: pa.Table) -> tuple[pa.Table, pa.Table]:
    """(aligned rows with words/align_score, failed rows with reason), both in input order."""
    by_id = {r["id"]: r for r in results.to_pylist()}
    ok, bad = [], []
    for row in rows.to_pylist():
        r = by_id.get(row["id"])
        if r is None:
            continue
        if r["reason"]:
            bad.append({**row, "reason": r["reason"]})
        else:
            extra = {"words_by": r["aligner"]} if "words_by" in row else {}
            ok.append({**row, **extra, "words": r["words"], "align_score": r["align_score"]})
    schema = rows.schema
    if "words" in schema.names:
        schema = schema.remove(schema.get_field_index("words"))
    if "align_score" in schema.names:
        schema = schema.remove(schema.get_field_index("align_score"))
    ok_schema = schema.append(pa.field("words", pa.list_(WORD_TYPE))).append(pa.field("align_score", pa.float64()))
    bad_schema = schema.append(pa.field("reason", pa.string()))
    return (pa.Table.from_pylist(ok, ok_schema),
            pa.Table.from_pylist([{k: v for k, v in r.items() if k in bad_schema.names} for r in bad], bad_schema))


def align_manifest(in_path: Path, out_path: Path, backend: str, *, model_dir: str | None = None,
                   cache_dir: str | None = None, actors: int | None = None, gpus_per_actor: float = 0.0,
                   progress=None) -> dict:
    """`streamaudio align`: resumable. Results land in OUT.parts/ as they complete; a rerun
    skips every clip found there; at the end OUT and OUT's .rejects.parquet are written
    in input order and the parts are removed."""
    rows = pq.read_table(in_path)
    need = {"id", "path", "offset_s", "duration_s", "text", "language"}
    missing = need - set(rows.column_names)
    if missing:
        raise ValueError(f"{in_path}: clip manifest lacks columns {sorted(missing)}")
    if "sample_rate" not in rows.column_names:
        import soundfile as sf

        rows = rows.append_column("sample_rate", pa.array([sf.info(p).samplerate for p in rows.column("path").to_pylist()], pa.int32()))
    parts = out_path.with_name(out_path.name + ".parts")
    parts.mkdir(parents=True, exist_ok=True)
    done = pq.read_table(parts, schema=RESULT_SCHEMA) if any(parts.glob("*.parquet")) else RESULT_SCHEMA.empty_table()
    done_ids = set(done.column("id").to_pylist())
    todo = rows.filter(pa.array([i not in done_ids for i in rows.column("id").to_pylist()]))
    n_parts = len(list(parts.glob("*.parquet")))
    counter = {"n": n_parts}

    def write_part(t: pa.Table) -> None:
        p = parts / f"part-{counter['n']:06d}.parquet"
        tmp = parts / f".{p.name}.tmp"  # dot-files are invisible to pq.read_table(parts)
        pq.write_table(t, tmp)
        tmp.replace(p)
        counter["n"] += 1
        if progress:
            progress(t.num_rows)

    if progress and done_ids:
        progress(len(done_ids & set(rows.column("id").to_pylist())))
    run_alignment(todo, backend, model_dir=model_dir, cache_dir=cache_dir, actors=actors,
                  gpus_per_actor=gpus_per_actor, on_batch=write_part)
    results = pq.read_table(parts, schema=RESULT_SCHEMA)
    ok, bad = merge_results(rows, results)
    rejects_path = out_path.with_name(out_path.stem + ".rejects.parquet")
    pq.write_table(ok, out_path)
    pq.write_table(bad, rejects_path)
    for p in parts.glob("*"):
        p.unlink()
    parts.rmdir()
    return {"clips": rows.num_rows, "aligned": ok.num_rows, "rejected": bad.num_rows, "resumed": len(done_ids),
            "out": str(out_path), "rejects": str(rejects_path)}


# ---------------------------------------------------------------- the build's source stage
ALIGN_SCHEMA = {
    "type": "object", "additionalProperties": False, "required": ["backend"],
    "description": "time the words of speech clips that have none",
    "properties": {
        "backend": {"type": "string", "enum": list(BACKENDS)},
        "model_dir": {"type": "string", "description": "ctc: a local Wav2Vec2ForCTC folder, relative to the catalog"},
        "actors": {"type": "integer", "minimum": 1},
        "gpus_per_actor": {"type": "number", "minimum": 0},
        "reject_failures": {"type": "boolean", "description": "default true: a clip that cannot be aligned is rejected"},
    },
}


def _backend_version(cfg: dict) -> list:
    from importlib.metadata import PackageNotFoundError, version

    if cfg["backend"] == "pocketsphinx":
        return ["pocketsphinx", version("pocketsphinx")]
    model = Path(cfg.get("model_dir") or "")
    files = sorted(model.glob("*")) if model.is_dir() else []
    try:
        tv = version("transformers")
    except PackageNotFoundError:
        tv = ""
    return ["ctc", tv, [(p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in files if p.is_file()]]


@register_stage
class Align(SourceStage):
    """Word timings for speech clips that have none (cached per clip by content)."""
    name = "align"
    order = 30
    config_key = "align"
    config_schema = ALIGN_SCHEMA
    version = "2"

    def _cfg(self, state: SourceState) -> dict | None:
        return self.config(state.spec) or state.hints.get("align_default")

    def applies(self, state: SourceState, env: BuildEnv) -> bool:
        return self._cfg(state) is not None

    def static_effect(self, spec, kind, provides):
        return kind, provides | {"words"}

    def cache_config(self, state: SourceState, env: BuildEnv):
        cfg = self._cfg(state)
        return [{k: v for k, v in cfg.items() if k not in ("actors", "gpus_per_actor")}, _backend_version(cfg)]

    def run(self, state: SourceState, env: BuildEnv) -> None:
        import pyarrow.compute as pc

        from ..progress import progress_bar

        cfg = self._cfg(state)
        env.ray()  # aligners run as Ray Data actors
        table = state.table
        speech = speech_with_text(table)
        need = speech.filter(pc.equal(pc.list_value_length(speech["words"]), 0))
        results: dict[str, dict] = {}
        with progress_bar(f"align {state.name}", need.num_rows, env.show_progress) as advance:
            state.remote_cpu_s += run_alignment(need, cfg["backend"], model_dir=cfg.get("model_dir"), cache_dir=str(env.cache_dir),
                          actors=cfg.get("actors"), gpus_per_actor=cfg.get("gpus_per_actor", 0.0),
                          on_batch=collect_by_id(results, advance))
        rows = []
        for r in table.to_pylist():
            res = results.get(r["id"])
            if res is not None and res["reason"]:
                if cfg.get("reject_failures", True):
                    state.reject(self.name, r["id"], res["reason"])
                    continue
            elif res is not None:
                r = {**r, "words": res["words"], "words_by": res["aligner"]}
            rows.append(r)
        state.table = pa.Table.from_pylist(rows, table.schema)
        state.provides.add("words")
        state.report.update({"aligned": sum(1 for r in results.values() if not r["reason"]),
                             "align_failed": sum(1 for r in results.values() if r["reason"]),
                             "aligner": next((r["aligner"] for r in results.values()), "")})
