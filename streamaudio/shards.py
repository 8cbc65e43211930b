"""One shard = one unit of distributed work: plan, render, label and write its
episodes, then report a summary. Nothing here depends on which worker runs it
or in what order, which is what makes shards byte-identical across runs."""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from . import __version__
from .format import CHUNK_S, EPISODE_SCHEMA, SAMPLE_RATE, hf_features
from .label import episode_violations, label_turns
from .plan import PlanContext, Pool, episode_seed, load_recipes
from .render import render

ROW_GROUP_EPISODES = 32  # ~tens of MB per row group: readers can stream a shard
# FLAC bytes do not compress; zstd on them only costs time. Everything else is small and compresses well.
COMPRESSION = {name: "zstd" for name in ("id", "ability", "subtask", "split", "language", "system_prompt",
                                          "audio.path", "sample_rate", "duration_s", "chunk_s", "chunk_labels")}


def write_parquet(table: pa.Table, where) -> None:
    compression = {c: COMPRESSION.get(c, "zstd") for c in _leaf_columns(table.schema)}
    compression["audio.bytes"] = "none"
    # a dictionary of whole FLAC files never pays off; the small columns keep theirs
    dictionary = [c for c in compression if c != "audio.bytes"]
    pq.write_table(table, where, compression=compression, use_dictionary=dictionary,
                   row_group_size=ROW_GROUP_EPISODES)


def _leaf_columns(schema: pa.Schema) -> list[str]:
    out = []

    def walk(prefix, t):
        if pa.types.is_struct(t):
            for f in t:
                walk(f"{prefix}.{f.name}", f.type)
        elif pa.types.is_list(t):
            walk(f"{prefix}.list.element", t.value_type)
        else:
            out.append(prefix)

    for f in schema:
        walk(f.name, f.type)
    return out


@dataclass
class ShardTask:
    subtask: str
    split: str
    index: int
    total: int
    episode_ids: list[str]
    out_path: str
    summary_path: str
    pools: dict[str, str]  # recipe pool -> source name
    recipe_dirs: list[str]
    seed: int
    options: dict
    fingerprint: str
    chunk_s: float = CHUNK_S
    tables: dict | None = None  # tables written for this build (LLM); None: the recipe's own files

    @property
    def name(self) -> str:
        return f"{self.subtask}/{Path(self.out_path).name}"


@lru_cache(maxsize=1)
def shard_schema() -> pa.Schema:
    """The episode schema plus the `datasets` feature metadata (so `load_dataset('parquet', ...)`
    sees an Audio column even without the dataset card)."""
    meta = {b"huggingface": json.dumps({"info": {"features": hf_features().to_dict()}}).encode()}
    return EPISODE_SCHEMA.with_metadata(meta)


def plan_episode(task: ShardTask, episode_id: str, pools: dict[str, Pool], recipe, tables) -> tuple[dict, set]:
    seed = episode_seed(task.seed, episode_id)
    ctx = PlanContext(episode_id=episode_id, subtask=task.subtask, split=task.split,
                      rng=np.random.default_rng(seed), pools=pools, tables=tables, options=task.options,
                      chunk_s=task.chunk_s)
    plan = recipe.plan(ctx)
    writer = (tables.get("instructions") or {}).get("writer")
    if writer and plan.system_prompt:  # the system prompt came from an LLM-written pool: say so
        plan.text_writer = f"{plan.text_writer}; instructions:{writer}" if plan.text_writer else f"instructions:{writer}"
    rendered = render(plan, task.chunk_s)
    turns, labels = label_turns(plan.turns, rendered.duration_s, task.chunk_s)
    row = {
        "id": episode_id, "ability": recipe.ability, "subtask": task.subtask, "split": task.split,
        "language": plan.language, "system_prompt": plan.system_prompt,
        "audio": {"bytes": rendered.flac, "path": f"{episode_id}.flac"},
        "sample_rate": SAMPLE_RATE, "duration_s": rendered.duration_s, "chunk_s": task.chunk_s,
        "segments": rendered.segments, "turns": turns, "chunk_labels": labels,
        "provenance": {
            "toolkit_version": __version__, "recipe": task.subtask, "recipe_version": recipe.version,
            "seed": seed, "text_writer": plan.text_writer, "tts": plan.tts, "aligner": plan.aligner,
        },
    }
    return row, {s.clip["id"] for s in plan.segments}


def run_shard(task: ShardTask, pools_by_split: dict[str, dict[str, list[dict]]]) -> dict:
    """Write one shard (temp name, then rename) and its summary; return the summary."""
    recipe = load_recipes(tuple(Path(d) for d in task.recipe_dirs))[task.subtask]
    tables = {**recipe.load_tables(), **(task.tables or {})}
    split_pools = pools_by_split[task.split]
    pools = {p: Pool(f"{src}/{task.split}", split_pools.get(src, [])) for p, src in task.pools.items()}
    rows, rejects, clips = [], [], {}
    hours = 0.0
    for eid in task.episode_ids:
        try:
            row, used = plan_episode(task, eid, pools, recipe, tables)
            problems = episode_violations(row, task.chunk_s)
            if problems:
                rejects.append({"stage": "label", "source": task.subtask, "item": eid, "reason": "; ".join(problems[:3])})
                continue
        except Exception as exc:  # one bad episode never stops the shard; it is accounted for
            stage = {"PlanError": "plan", "RenderError": "render"}.get(type(exc).__name__, "render")
            rejects.append({"stage": stage, "source": task.subtask, "item": eid,
                            "reason": f"{type(exc).__name__}: {' '.join(str(exc).split())[:300]}"})
            continue
        rows.append(row)
        hours += row["duration_s"] / 3600
        for cid in used:
            corpus = cid.split(":", 1)[0]
            clips.setdefault(corpus, set()).add(cid)
    out = Path(task.out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    table = pa.Table.from_pylist(rows, schema=shard_schema())
    write_parquet(table, tmp)
    digest = hashlib.sha256(tmp.read_bytes()).hexdigest()
    tmp.replace(out)
    summary = {
        "task": asdict(task), "shard": str(out), "sha256": digest, "episodes": len(rows),
        "hours": hours, "rejects": rejects, "clips": {k: sorted(v) for k, v in clips.items()},
        "fingerprint": task.fingerprint,
    }
    sp = Path(task.summary_path)
    sp.parent.mkdir(parents=True, exist_ok=True)
    sp.with_suffix(".tmp").write_text(json.dumps(summary))
    sp.with_suffix(".tmp").replace(sp)
    return summary


def finished_summary(task: ShardTask) -> dict | None:
    """The summary of an earlier run of exactly this task, if its shard is intact."""
    sp, out = Path(task.summary_path), Path(task.out_path)
    if not (sp.exists() and out.exists()):
        return None
    try:
        s = json.loads(sp.read_text())
    except json.JSONDecodeError:
        return None
    if s.get("fingerprint") != task.fingerprint or s.get("task", {}).get("episode_ids") != task.episode_ids:
        return None
    if hashlib.sha256(out.read_bytes()).hexdigest() != s.get("sha256"):
        return None
    return s
