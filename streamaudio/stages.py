"""Source stages: everything between a corpus on disk and the clip pools recipes draw
from (scan, spoken form, TTS, alignment, ASR check, ...), behind one interface.

A stage is a class registered with ``@register_stage``. The builder runs every
registered stage, in ``order``, over every source the catalog needs; a stage
decides itself whether it applies (usually: its ``config_key`` is set on the
source in the catalog) and contributes that key's JSON Schema to the catalog
schema. The builder knows none of them by name.

Each stage turns the source's clip table into a new one, adds rejects (with its
name as their stage) and a report (merged into build.json's ``inputs``). Its
output is cached under ``<cache>/stages/<name>/`` by a key chained from the
input's key, the stage's version and its settings, so a rebuild or a resume
reruns nothing that has not changed. A stage that met a transient failure (a
rate limit, a timeout) marks it, and that output is not cached: the next build
tries again.
"""
from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from .registry import Registry
from .text.cache import content_key


class StageError(RuntimeError):
    """A stage cannot run at all (not a per-item failure, which is a reject)."""


@dataclass
class BuildEnv:
    """What stages and table providers may use: shared by one build."""
    cache_dir: Path
    work_dir: Path
    llm: Any = None  # streamaudio.text.llm.LLMClient or None (offline)
    tts_config: Any = None  # streamaudio.speech.tts.TTSConfig
    show_progress: bool = True
    use_ray: bool = True  # False: stages run in this process (tools, tests)
    ray_address: str | None = None
    num_cpus: int | None = None

    def ray(self):
        """Ray, started (or joined) on first use: a build whose sources all come from the
        stage cache never needs it before the shards."""
        from .parallel import init_ray

        return init_ray(self.ray_address, self.num_cpus)


@dataclass
class SourceState:
    """One catalog source on its way through the stages."""
    name: str
    spec: Any  # streamaudio.build.catalog.SourceSpec
    table: pa.Table | None = None
    kind: str = ""
    provides: set[str] = field(default_factory=set)
    key: str = ""
    report: dict = field(default_factory=dict)
    rejects: list[dict] = field(default_factory=list)
    hints: dict = field(default_factory=dict)  # facts one stage leaves for a later one
    transient: int = 0  # failures a rebuild should retry: the output is not cached
    remote_cpu_s: float = 0.0  # CPU seconds a stage's Ray tasks and actors spent (they add it here)

    def reject(self, stage: str, item: str, reason: str) -> None:
        self.rejects.append({"stage": stage, "source": self.name, "item": item,
                             "reason": " ".join(str(reason).split())[:500]})


class SourceStage:
    name: str = ""  # the stage of its rejects, its key in reports
    order: int = 100  # position in the pipeline
    config_key: str | None = None  # catalog source key that turns it on; None: runs for every source
    config_schema: dict | None = None  # JSON Schema of that key's value (merged into the catalog schema)
    version: str = "1"  # bump when its output changes for the same input: cached outputs are rebuilt

    def config(self, spec) -> Any:
        return spec.stage_config(self.config_key) if self.config_key else None

    def applies(self, state: SourceState, env: BuildEnv) -> bool:
        return self.config_key is None or self.config(state.spec) is not None

    def static_effect(self, spec, kind: str, provides: set[str]) -> tuple[str, set[str]]:
        """What the rows will be after this stage, known from the catalog alone (for the
        pool checks made when a catalog loads)."""
        return kind, provides

    def cache_config(self, state: SourceState, env: BuildEnv) -> Any:
        """Everything besides the input table that decides the output."""
        return self.config(state.spec)

    def run(self, state: SourceState, env: BuildEnv) -> None:
        raise NotImplementedError


STAGES: Registry[type[SourceStage]] = Registry(
    "source stage", ("streamaudio.sources", "streamaudio.speech", "streamaudio.align"), "streamaudio.stages")
register_stage = STAGES.register()


def ordered_stages() -> list[SourceStage]:
    return sorted((cls() for _, cls in STAGES.items()), key=lambda s: (s.order, s.name))


def static_kind(spec, adapter) -> tuple[str, set[str]]:
    """(kind, facts) of a source's rows after every stage that its catalog entry turns on."""
    kind, provides = adapter.kind_for(spec.options), set(adapter.provides_for(spec.options))
    for stage in ordered_stages():
        if stage.config_key is None or stage.config(spec) is not None:
            kind, provides = stage.static_effect(spec, kind, provides)
    return kind, provides


# ---------------------------------------------------------------- helpers for stages
def speech_with_text(table: pa.Table) -> pa.Table:
    """The rows a speech model can work on: speech clips with a non-empty transcript."""
    import pyarrow.compute as pc

    return table.filter(pc.and_(pc.equal(table["kind"], "speech"),
                                pc.not_equal(pc.utf8_trim_whitespace(table["text"]), "")))


def collect_by_id(results: dict, advance):
    """An ``on_batch`` callback for actor stages: result rows by clip id, and progress."""
    def collect(t: pa.Table) -> None:
        for r in t.to_pylist():
            results[r["id"]] = r
        advance(t.num_rows)

    return collect


# ---------------------------------------------------------------- the runner
def _cache_paths(env: BuildEnv, stage: str, key: str) -> tuple[Path, Path]:
    d = env.cache_dir / "stages" / stage / key[:2]
    return d / f"{key}.parquet", d / f"{key}.json"


def _save(env: BuildEnv, stage: SourceStage, key: str, state: SourceState, new_rejects: list[dict]) -> None:
    table_path, meta_path = _cache_paths(env, stage.name, key)
    table_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = table_path.with_name(f".{table_path.name}.{os.getpid()}.tmp")
    pq.write_table(state.table, tmp, compression="zstd")
    tmp.replace(table_path)
    meta = {"rejects": new_rejects, "report": state.report, "kind": state.kind,
            "provides": sorted(state.provides), "hints": state.hints}
    tmp = meta_path.with_name(f".{meta_path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(meta, ensure_ascii=False))
    tmp.replace(meta_path)  # last: a metadata file means the table beside it is complete


def _load(env: BuildEnv, stage: SourceStage, key: str, state: SourceState) -> bool:
    table_path, meta_path = _cache_paths(env, stage.name, key)
    if not (meta_path.is_file() and table_path.is_file()):
        return False
    try:
        meta = json.loads(meta_path.read_text())
        table = pq.read_table(table_path)
    except Exception:  # a damaged cache entry is rebuilt, never trusted
        return False
    state.table = table
    # rejects name the source as this build calls it
    state.rejects += [{**r, "source": state.name} for r in meta["rejects"]]
    state.report = {**meta["report"], **{k: state.report[k] for k in ("root",) if k in state.report}}
    state.kind, state.provides, state.hints = meta["kind"], set(meta["provides"]), meta["hints"]
    return True


def run_source_stages(state: SourceState, env: BuildEnv) -> SourceState:
    """Every applicable stage over one source, each cached by its chained key. The
    accounting holds after every stage: seen = used + rejected, one reject row each."""
    reused = []
    for stage in ordered_stages():
        if not stage.applies(state, env):
            continue
        key = content_key(stage.name, stage.version, stage.cache_config(state, env), state.key)
        if _load(env, stage, key, state):
            reused.append(stage.name)
        else:
            before = len(state.rejects)
            state.transient = 0
            rows_in = state.table.num_rows if state.table is not None else 0
            audio_in = _audio_s(state.table)
            state.remote_cpu_s = 0.0
            c0, w0 = time.process_time(), time.perf_counter()
            stage.run(state, env)
            # what it cost, for `streamaudio estimate`: CPU here and in Ray, per item and audio hour
            state.report.setdefault("stage_costs", {})[stage.name] = {
                "cpu_s": round(time.process_time() - c0 + state.remote_cpu_s, 3),
                "wall_s": round(time.perf_counter() - w0, 3),
                # the scan's input is every item it saw, and their audio what it kept
                "rows_in": rows_in or state.report.get("seen", 0),
                "audio_s_in": round(audio_in or _audio_s(state.table), 2),
                "rows_out": state.table.num_rows if state.table is not None else 0}
            if state.transient:  # an endpoint that failed past its retries: the build says so at the end
                state.report["endpoint_failures"] = state.report.get("endpoint_failures", 0) + state.transient
            if state.table is None:
                raise StageError(f"stage {stage.name!r} left source {state.name!r} without a clip table")
            _account(state)
            if state.transient == 0:
                _save(env, stage, key, state, state.rejects[before:])
        state.key = key
        _account(state)
        seen, used, rejected = state.report["seen"], state.report["used"], state.report["rejected"]
        if sum(1 for r in state.rejects) != rejected or seen != used + rejected:
            raise StageError(f"stage {stage.name!r} lost track of inputs of {state.name!r}: seen {seen}, "
                             f"used {used}, rejected {rejected}, reject rows {len(state.rejects)}")
    state.report["stages_reused"] = reused
    return state


def _audio_s(table: pa.Table | None) -> float:
    if table is None or table.num_rows == 0:
        return 0.0
    import pyarrow.compute as pc

    return float(pc.sum(table["duration_s"]).as_py() or 0.0)


def _account(state: SourceState) -> None:
    state.report["used"] = state.table.num_rows
    state.report["rejected"] = state.report["seen"] - state.table.num_rows
