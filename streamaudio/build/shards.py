"""One shard = one unit of distributed work: plan, render, label and write its
episodes, store their plans, then report a summary. Nothing here depends on which
worker runs it or in what order, which is what makes shards byte-identical
across runs.

A shard gets the clip pools of its own sub-task and split (Arrow, zero-copy from
Ray's object store) and its sub-task's resolved tables. Only EpisodeRejected
failures (PlanError, RenderError) and contract violations become rejects; any
other exception is a bug in a recipe and stops the build with its traceback.
"""
from __future__ import annotations

import hashlib
import json
import os
import time
import traceback
from collections import OrderedDict
from dataclasses import asdict, dataclass, field
from functools import lru_cache, partial
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from .. import __version__
from ..format import CHUNK_S, EPISODE_SCHEMA, SAMPLE_RATE, hf_features_data
from ..plan import PlanContext, Pool, PoolData, episode_seed, load_recipes
from ..plan.store import plan_from_dict, plan_json, plan_sha
from ..plan.tracks import TRACK_POOL, NoiseTrackSettings, add_noise_tracks
from ..plan.types import EpisodeRejected
from ..render.label import episode_violations, label_turns
from ..render.mix import render
from ..render.tfjp import DEFAULT_TFJP, TfjpSettings, silence_cut

ROW_GROUP_EPISODES = 32  # ~tens of MB per row group: readers can stream a shard
PLAN_SCHEMA = pa.schema([pa.field("id", pa.string()), pa.field("plan_sha", pa.string()), pa.field("plan", pa.string())])


class RecipeCrash(RuntimeError):
    """A recipe raised something other than EpisodeRejected: a bug, not a bad episode."""


def write_parquet(table: pa.Table, where) -> None:
    # FLAC bytes do not compress: zstd on them only costs time; everything else is small and compresses well
    compression = {c: "zstd" for c in _leaf_columns(table.schema)}
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
    first: int  # episode numbers first .. first + count - 1 of this sub-task's split
    count: int
    out_path: str
    summary_path: str
    plans_path: str
    pools: dict[str, list[str]]  # recipe pool -> the catalog sources it draws from
    pool_keys: dict[str, str]  # recipe pool -> content key of its PoolData (the per-worker cache key)
    recipe_dirs: list[str]
    seed: int
    options: dict
    fingerprint: str
    chunk_s: float = CHUNK_S
    table_writers: dict | None = None  # table name -> who wrote it, for tables whose text reaches episodes
    source_corpus: dict = field(default_factory=dict)  # catalog source -> its corpus (to credit drawn clips)
    # how clips are prepared and joined (EpisodePlan.render): TFJP on unless the catalog says otherwise
    render: dict = field(default_factory=lambda: {"tfjp": dict(DEFAULT_TFJP)})

    @property
    def episode_ids(self) -> list[str]:
        return [f"{self.subtask}-{self.split}-{i:06d}" for i in range(self.first, self.first + self.count)]

    @property
    def name(self) -> str:
        return f"{self.subtask}/{Path(self.out_path).name}"


@lru_cache(maxsize=1)
def shard_schema() -> pa.Schema:
    """The episode schema plus the `datasets` feature metadata (so `load_dataset('parquet', ...)`
    sees an Audio column even without the dataset card)."""
    meta = {b"huggingface": json.dumps({"info": {"features": hf_features_data()["dict"]}}).encode()}
    return EPISODE_SCHEMA.with_metadata(meta)


def episode_row(stored: dict, *, episode_id: str, subtask: str, ability: str, split: str, recipe_version: str,
                seed: int, chunk_s: float) -> dict:
    """A stored plan (plan_to_dict form) -> a format v2 row. Rendering starts from the stored
    form, so `streamaudio rerender` reproduces the same bytes from OUT.work/plans."""
    plan = plan_from_dict(stored)
    rendered = render(plan, chunk_s)
    turns, labels = label_turns(rendered.turns, rendered.duration_s, chunk_s)
    return {
        "id": episode_id, "ability": ability, "subtask": subtask, "split": split,
        "language": plan.language, "system_prompt": plan.system_prompt,
        "audio": {"bytes": rendered.flac, "path": f"{episode_id}.flac"},
        "sample_rate": SAMPLE_RATE, "duration_s": rendered.duration_s, "chunk_s": chunk_s,
        "segments": rendered.segments, "turns": turns, "chunk_labels": labels,
        "provenance": {
            "toolkit_version": __version__, "recipe": subtask, "recipe_version": recipe_version,
            "seed": seed, "text_writer": plan.text_writer, "tts": plan.tts, "aligner": plan.aligner,
            "plan_sha": plan_sha(stored),
        },
    }


def plan_episode(task: ShardTask, episode_id: str, pools: dict[str, Pool], recipe, tables: dict) -> tuple[dict, int]:
    """(the stored form of the episode's plan, its seed)."""
    seed = episode_seed(task.seed, episode_id)
    track_pools = {p: pools[p] for p in pools if p == TRACK_POOL}
    pools = {p: pool for p, pool in pools.items() if p != TRACK_POOL}
    ctx = PlanContext(episode_id=episode_id, subtask=task.subtask, split=task.split,
                      rng=np.random.default_rng(seed), pools=pools, tables=tables, options=task.options,
                      chunk_s=task.chunk_s)
    plan = recipe.plan(ctx)
    plan.render = dict(task.render)
    tracks = NoiseTrackSettings.from_dict(task.render.get("noise_tracks"))
    if tracks is not None and TRACK_POOL in track_pools:
        # drawn from a generator of their own: the recipe's plan is the same with or without them
        add_noise_tracks(plan, track_pools[TRACK_POOL], np.random.default_rng([seed, 1]), tracks)
    # LLM-written tables whose text reaches the episode: provenance names them
    writers = [f"{name}:{w}" for name, w in sorted((task.table_writers or {}).items())]
    if writers:
        plan.text_writer = "; ".join([plan.text_writer, *writers] if plan.text_writer else writers)
    return json.loads(plan_json(plan)), seed


# per worker process: pools stay built between the shards of one sub-task and split
_POOLS: OrderedDict[str, Pool] = OrderedDict()
_POOLS_KEPT = 8


def _silence_cut_row(row: dict, default: TfjpSettings, by_corpus: dict[str, TfjpSettings]) -> dict:
    tfjp = by_corpus.get(row.get("corpus"), default)
    return silence_cut(row, tfjp.silence_cut_s) if tfjp.enabled else row


def _pool(key: str, name: str, data: PoolData, render: dict | None = None) -> Pool:
    """The worker's Pool over ``data``; with TFJP on, planners see rows as silence_cut leaves them."""
    render = render or {}
    default = TfjpSettings.from_dict(render.get("tfjp", False))
    by_corpus = {c: TfjpSettings.from_dict(d) for c, d in (render.get("tfjp_by_corpus") or {}).items()}
    transform = None
    if default.enabled or any(t.enabled for t in by_corpus.values()):
        key = f"{key}|tfjp={json.dumps([render.get('tfjp'), render.get('tfjp_by_corpus')], sort_keys=True)}"
        transform = partial(_silence_cut_row, default=default, by_corpus=by_corpus)
    p = _POOLS.get(key)
    if p is None:
        p = _POOLS[key] = Pool(name, data, row_transform=transform)
        if len(_POOLS) > _POOLS_KEPT:
            _POOLS.popitem(last=False)
    else:
        _POOLS.move_to_end(key)
    return p


def run_shard(task: ShardTask, tables: dict, pool_data: dict[str, PoolData]) -> dict:
    """Write one shard and its plans (temp names, then rename) and its summary; return the summary."""
    recipe = load_recipes(tuple(Path(d) for d in task.recipe_dirs))[task.subtask]
    pools = {p: _pool(task.pool_keys[p], f"{'+'.join(task.pools[p])}/{task.split}", d, task.render)
             for p, d in pool_data.items()}
    for pool in pools.values():
        pool.handed.clear()
    c0 = time.process_time()  # the episodes' cost, not the process's one-off set-up
    rows, plans, rejects, clips = [], [], [], {}
    prov: dict[str, set] = {"text_writer": set(), "tts": set(), "aligner": set(), "languages": set()}
    hours = 0.0
    for eid in task.episode_ids:
        try:
            stored, seed = plan_episode(task, eid, pools, recipe, tables)
            row = episode_row(stored, episode_id=eid, subtask=task.subtask, ability=recipe.ability, split=task.split,
                              recipe_version=recipe.version, seed=seed, chunk_s=task.chunk_s)
        except EpisodeRejected as exc:  # one bad episode never stops the shard; it is accounted for
            rejects.append({"stage": exc.stage, "source": task.subtask, "item": eid,
                            "reason": f"{type(exc).__name__}: {' '.join(str(exc).split())[:300]}"})
            continue
        except Exception as exc:
            raise RecipeCrash(f"recipe {task.subtask!r} ({recipe.module_path}) failed on episode {eid} with "
                              f"{type(exc).__name__}: {exc}\n{traceback.format_exc()}") from None
        problems = episode_violations(row, task.chunk_s)
        if problems:
            rejects.append({"stage": "label", "source": task.subtask, "item": eid, "reason": "; ".join(problems[:3])})
            continue
        rows.append(row)
        plans.append({"id": eid, "plan_sha": row["provenance"]["plan_sha"],
                      "plan": json.dumps(stored, sort_keys=True, separators=(",", ":"), ensure_ascii=False)})
        hours += row["duration_s"] / 3600
        for k in ("text_writer", "tts", "aligner"):
            if row["provenance"][k]:
                prov[k].add(row["provenance"][k].split("/")[0])
        prov["languages"].add(row["language"])
        # drawn clips (and rooms), by the catalog source whose pool handed them out
        for clip in [c for seg in stored["segments"] for c in (seg["clip"], seg.get("rir")) if c]:
            cid, corpus = clip["id"], clip["corpus"]
            srcs = next((task.pools[p] for p, pool in pools.items() if cid in pool.handed), [corpus])
            clips.setdefault(next((s for s in srcs if task.source_corpus.get(s) == corpus), srcs[0]), set()).add(cid)
    out = Path(task.out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    write_parquet(pa.Table.from_pylist(rows, schema=shard_schema()), tmp)
    digest = hashlib.sha256(tmp.read_bytes()).hexdigest()
    plans_out = Path(task.plans_path)
    plans_out.parent.mkdir(parents=True, exist_ok=True)
    ptmp = plans_out.with_name(f".{plans_out.name}.{os.getpid()}.tmp")
    pq.write_table(pa.Table.from_pylist(plans, PLAN_SCHEMA), ptmp, compression="zstd")
    ptmp.replace(plans_out)
    tmp.replace(out)
    summary = {
        "task": asdict(task), "shard": str(out), "sha256": digest, "episodes": len(rows),
        "hours": hours, "rejects": rejects, "clips": {k: sorted(v) for k, v in clips.items()},
        "fingerprint": task.fingerprint, "provenance": {k: sorted(v) for k, v in prov.items()},
        "bytes": out.stat().st_size, "cpu_s": round(time.process_time() - c0, 3),
    }
    sp = Path(task.summary_path)
    sp.parent.mkdir(parents=True, exist_ok=True)
    stmp = sp.with_name(f".{sp.name}.{os.getpid()}.tmp")
    stmp.write_text(json.dumps(summary))
    stmp.replace(sp)
    return summary


def finished_summary(task: ShardTask) -> dict | None:
    """The summary of an earlier run of exactly this task, if its shard is intact."""
    sp, out = Path(task.summary_path), Path(task.out_path)
    if not (sp.exists() and out.exists() and Path(task.plans_path).exists()):
        return None
    try:
        s = json.loads(sp.read_text())
    except json.JSONDecodeError:
        return None
    if s.get("fingerprint") != task.fingerprint or s.get("task", {}).get("first") != task.first \
            or s.get("task", {}).get("count") != task.count:
        return None
    if hashlib.sha256(out.read_bytes()).hexdigest() != s.get("sha256"):
        return None
    # an OUT that was moved (or copied) keeps its shards: the summary follows the files
    return {**s, "shard": task.out_path, "task": asdict(task)}
