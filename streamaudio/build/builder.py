"""`streamaudio build`: a short runner of stages.

    sources --(source stages: scan, spoken form, TTS, align, ASR check, ...)--> clip tables
    clip tables --(split by source group)--> pools (Arrow, in Ray's object store)
    recipes' table providers --(resolve, with or without an LLM)--> tables
    shard tasks (plan, render, label, write) on Ray --> shards, plans, summaries
    summaries --> build.json, rejects.parquet, the dataset card

``build --plan-only`` (``Builder.plan``) stops before the shards: it reports per sub-task the
episodes, hours (from a planned sample) and corpora a build would make, with the sources
not on disk listed as missing and the sub-tasks that need them as blocked.

The builder knows no stage, table or recipe by name: stages and adapters come
from their registries, tables from the recipes' providers. Work files
(per-shard summaries and plans) live in ``OUT.work/``, beside the dataset and
never inside it, so OUT is exactly what gets published; stage outputs are cached
by content under the cache folder and shared by builds.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import platform
import re
import shutil
import time
import traceback
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from .. import __version__
from ..format import FORMAT_VERSION, SPLITS, taxonomy
from ..parallel import init_ray, run_shard_task
from ..plan import PoolData, RecipeError, load_recipes
from ..plan.recipes import code_fingerprint
from ..plan.tracks import TRACK_POOL
from ..progress import progress_bar
from ..sources.base import REJECT_SCHEMA, LayoutError, get_adapter
from ..speech.tts import TTSConfig, make_tts
from ..stages import BuildEnv, SourceState, run_source_stages, static_kind
from ..text.cache import content_key
from ..text.llm import LLMClient, LLMConfig, Usage
from ..text.tables import TableEnv
from .card import render_card
from .lock import BuildLock, BuildLocked
from .catalog import Catalog, load_catalog
from .shards import RecipeCrash, ShardTask, finished_summary, plan_episode

log = logging.getLogger("streamaudio")
PLAN_SAMPLE = 16  # episodes planned per sub-task and split by `build --plan-only` (0: all)


class BuildError(RuntimeError):
    """The build cannot start or go on (exit 2): a bad catalog, recipe, layout or setting."""


class RecipeCrashError(BuildError):
    """A recipe raised something other than a reject (exit 4); the message has its traceback."""


class RejectGateError(BuildError):
    """The build finished but a sub-task rejected more episodes than its gate allows (exit 3)."""


class EndpointFallbackError(BuildError):
    """The build finished but an LLM or TTS endpoint failed past its retries, so items were
    rejected or tables fell back to their offline versions (exit 5; --allow-fallback accepts it)."""


def work_dir(out: Path) -> Path:
    return out.with_name(out.name + ".work")


def assign_splits(groups: list[str], fractions: dict[str, float]) -> dict[str, str]:
    """Source group -> split. Groups are ranked by a hash of their name (stable when
    the corpus grows or the seed changes) and cut by cumulative fraction, with at
    least one group per split when there are enough groups, so no speaker, clip or
    conversation ever crosses splits."""
    uniq = sorted(set(groups), key=lambda g: hashlib.sha256(g.encode()).hexdigest())
    splits = [s for s in SPLITS if fractions.get(s, 0) > 0]
    n = len(uniq)
    counts = {s: int(round(fractions[s] * n)) for s in splits}
    if n >= len(splits):
        for s in splits:
            counts[s] = max(1, counts[s])
    while sum(counts.values()) > n:
        counts[max(counts, key=lambda s: counts[s])] -= 1
    while sum(counts.values()) < n:
        counts[splits[0]] += 1
    out, i = {}, 0
    for s in splits:
        for g in uniq[i:i + counts[s]]:
            out[g] = s
        i += counts[s]
    return out


SHARED_GROUP = "*"  # a split group starting with this is in every split (templates: spoken prompts)


def split_table(table: pa.Table, fractions: dict[str, float]) -> dict[str, pa.Table]:
    """A clip table's rows by split, in manifest order (vectorised: one Python step per source
    group, not per row; the table's chunks are kept, so the splits together are one copy).
    Rows whose split group starts with ``*`` carry no content of their own (instruction
    templates) and are in every split. Groups are assigned per language (a group's language is
    its first row's), so each language of a multilingual source (CoVoST 2's directions, Common
    Voice's locales) has train, validation and test groups of its own once it has three."""
    if table.num_rows == 0:
        return {s: table for s in SPLITS}
    groups = table.column("split_group")
    uniq = pc.unique(groups).to_pylist()
    codes = pc.index_in(groups, value_set=pa.array(uniq, groups.type)).to_numpy()
    _, first = np.unique(codes, return_index=True)  # every group's first row (codes cover 0..len(uniq)-1)
    langs = (pc.take(table.column("language"), pa.array(first)).to_pylist() if "language" in table.column_names
             else [""] * len(uniq))
    strata: dict[str, list[str]] = {}
    for g, lang in zip(uniq, langs):
        if not g.startswith(SHARED_GROUP):
            strata.setdefault(lang or "", []).append(g)
    assign: dict[str, str] = {}
    for members in strata.values():
        assign.update(assign_splits(members, fractions))
    code = np.array([SPLITS.index(assign[g]) if g in assign else -1 for g in uniq], dtype=np.int8)
    per_row = code[codes]
    return {s: table.filter(pa.array((per_row == i) | (per_row == -1))) for i, s in enumerate(SPLITS)}


def pool_splits(sources, by_split: dict) -> dict[str, pa.Table]:
    """A pool's clips per split: one source's, or several sources' one after the other."""
    if len(sources) == 1:
        return by_split[sources[0]]
    return {s: pa.concat_tables([by_split[src][s] for src in sources]) for s in SPLITS}


# the shard task lives in parallel.py: a Ray worker imports the module a task is defined in,
# and this one's imports (LLM client, TTS, stages, card, catalog) are the driver's alone
_run_shard_remote = run_shard_task


class Builder:
    def __init__(self, catalog: Catalog, out: Path, ray_address: str | None = None, num_cpus: int | None = None,
                 resume: bool = True, show_progress: bool = True, cache_dir: Path | None = None,
                 llm: dict | None = None, tts: dict | None = None, allow_fallback: bool = False,
                 plan_only: bool = False):
        self.catalog, self.out = catalog, Path(out).resolve()
        self.plan_only = plan_only  # `plan()`: a sub-task that cannot be built is reported, not raised
        self.allow_fallback = allow_fallback
        self.work = work_dir(self.out)
        # shared across builds (content-addressed): a corpus is scanned, spoken and aligned once
        self.cache_dir = Path(cache_dir or catalog.cache_dir or self.out.parent / ".streamaudio-cache").resolve()
        # command-line settings override the catalog's llm: and tts: sections
        llm_cfg = {**(catalog.llm or {}), **{k: v for k, v in (llm or {}).items() if v is not None}}
        tts_cfg = {**(catalog.tts or {}), **{k: v for k, v in (tts or {}).items() if v is not None}}
        self.usage = Usage()
        llm_client = None
        if llm_cfg.get("base_url") or llm_cfg.get("model"):
            if not (llm_cfg.get("base_url") and llm_cfg.get("model")):
                raise BuildError("an LLM needs both a base URL and a model (--llm-base-url, --llm-model)")
            llm_client = LLMClient(LLMConfig(**llm_cfg), cache_dir=self.cache_dir, usage=self.usage)
        try:
            tts_config = TTSConfig(**tts_cfg)
            make_tts(tts_config)  # fail fast on a bad TTS configuration
        except (TypeError, ValueError) as exc:
            raise BuildError(f"TTS configuration: {exc}") from None
        self.env = BuildEnv(cache_dir=self.cache_dir, work_dir=self.work, llm=llm_client, tts_config=tts_config,
                            show_progress=show_progress, use_ray=True, ray_address=ray_address, num_cpus=num_cpus)
        self.ray_address, self.num_cpus = ray_address, num_cpus
        self.resume = resume
        try:
            self.recipes = load_recipes(catalog.recipe_dirs)
        except RecipeError as exc:
            raise BuildError(str(exc)) from None
        if not plan_only:
            self._check_pools()

    @property
    def llm(self):
        return self.env.llm

    def _check_pools(self) -> None:
        """Every recipe pool maps to a source whose rows (after its stages) are the right kind
        and carry the facts the recipe needs; said when the catalog loads, not mid-build."""
        for st in self.catalog.subtasks:
            problem = self._pool_problem(st)
            if problem:
                raise BuildError(problem)

    def _pool_problem(self, st: str) -> str:
        """Why sub-task ``st`` of the catalog cannot be built with its recipe and pools ("" if it can)."""
        cat = self.catalog
        spec = cat.subtasks[st]
        if st not in self.recipes:
            return f"catalog asks for sub-task {st!r} but no recipe defines it; available: {sorted(self.recipes)}"
        want = self.recipes[st].pool_specs()
        missing = {p for p, ps in want.items() if not ps.optional} - set(spec.pools)
        if missing:
            return (f"sub-task {st!r}: recipe needs pools {sorted(missing)}; "
                    f"map them to sources under subtasks/{st}/pools in {cat.path}")
        extra = set(spec.pools) - set(want)
        if extra:
            return f"sub-task {st!r}: the recipe has no pool(s) {sorted(extra)} (it has {sorted(want)})"
        for pool, ps in want.items():
            if pool not in spec.pools:  # an optional pool left out
                continue
            for name in spec.pools[pool]:
                try:
                    self._check_source(st, pool, ps, cat.sources[name])
                except BuildError as exc:
                    return str(exc)
        return ""

    def _check_source(self, st: str, pool: str, ps, src) -> None:
        try:
            kind, facts = static_kind(src, get_adapter(src.corpus))
        except ValueError as exc:
            raise BuildError(str(exc)) from None
        if kind not in ps.kinds:
            raise BuildError(f"sub-task {st!r}: pool {pool!r} needs {'/'.join(ps.kinds)} clips, but source "
                             f"{src.name!r} ({src.corpus}) gives {kind}"
                             + (" (a text source becomes speech with `spoken:`)" if kind == "text" else ""))
        lacking = sorted(set(ps.requires) - facts)
        if lacking:
            hint = " (add `align: {backend: pocketsphinx}` to the source)" if "words" in lacking else ""
            raise BuildError(f"sub-task {st!r}: pool {pool!r} needs {lacking} on its clips, which source "
                             f"{src.name!r} ({src.corpus}) does not give{hint}")

    # ------------------------------------------------------------ the run
    def prepare(self) -> dict:
        """Everything before the shards: source stages, pools by split, tables, shard tasks.
        Sources come from the stage cache when nothing changed (no Ray needed then)."""
        states = self._sources()
        rejects = [r for s in states.values() for r in s.rejects]
        by_split = {}
        for name, s in states.items():
            by_split[name] = split_table(s.table, self.catalog.splits)
            s.table = None  # the splits hold every row; a 5M-clip source is not kept twice
        tables, table_report, table_sha = self._tables(states, by_split, rejects)
        return {"states": states, "rejects": rejects, "by_split": by_split, "tables": tables,
                "table_report": table_report, "tasks": self._tasks(states, table_sha, table_report)}

    def run(self) -> dict:
        for path in (self.out, self.work):
            if path.exists() and not path.is_dir():
                raise BuildError(f"{path} exists and is not a folder: give --out a folder (or a new name)")
        try:
            with BuildLock(self.out):
                return self._run()
        except BuildLocked as exc:
            raise BuildError(str(exc)) from None

    def _run(self) -> dict:
        t0 = time.time()
        init_ray(self.ray_address, self.num_cpus)
        p = self.prepare()
        # OUT and OUT.work appear only now: a bad layout or catalog leaves nothing behind
        self.out.mkdir(parents=True, exist_ok=True)
        self.work.mkdir(parents=True, exist_ok=True)
        states, rejects, by_split, tables, table_report, tasks = (
            p["states"], p["rejects"], p["by_split"], p["tables"], p["table_report"], p["tasks"])
        inputs = {name: dict(s.report) for name, s in states.items()}
        summaries, todo = [], []
        for t in tasks:
            done = finished_summary(t) if self.resume else None
            (summaries.append(done) if done else todo.append(t))
        if todo:
            summaries += self._run_tasks(todo, states, by_split, tables, reused=len(tasks) - len(todo))
        self._remove_stale(tasks)
        build = self._finish(summaries, inputs, rejects, table_report, time.time() - t0, len(tasks) - len(todo))
        crossed = {st: v for st, v in build["subtasks"].items() if v["gate"]["crossed"]}
        gate = []
        for st, v in sorted(crossed.items()):
            gate.append(f"  {st}: {v['rejected']} of {v['planned']} episodes rejected "
                        f"(max_reject_rate {v['gate']['max_reject_rate']:.1%})")
            for sp in v["gate"]["splits_crossed"]:
                x = v["splits"][sp]
                gate.append(f"    {sp}: {x['rejected']} of {x['planned']} rejected, {x['episodes']} written")
        gate_msg = "reject-rate gate crossed (see rejects.parquet):\n" + "\n".join(gate) if gate else ""
        fallbacks = build["endpoint_fallbacks"]
        if fallbacks and not self.allow_fallback:
            # the cause first: a dead endpoint is usually why a gate was crossed too
            raise EndpointFallbackError(
                "an LLM or TTS endpoint failed past its retries (the dataset was written without it; "
                "--allow-fallback accepts this):\n" + "\n".join(f"  {f}" for f in fallbacks)
                + (f"\n{gate_msg}" if gate_msg else ""))
        if gate_msg:
            raise RejectGateError(gate_msg.replace("crossed (", "crossed (the dataset was written; ", 1))
        return build

    # ------------------------------------------------------------ plan only
    def source_problem(self, name: str) -> str:
        """Why a catalog source cannot be read ("" if it can): its root is not on disk, or is
        not laid out as its corpus unpacks."""
        spec = self.catalog.sources[name]
        adapter = get_adapter(spec.corpus)
        if not Path(spec.root).exists():
            return f"{spec.root} does not exist (expected layout: {adapter.expected_layout})"
        try:
            adapter.check_layout(Path(spec.root), spec.options)
        except (LayoutError, OSError) as exc:
            return " ".join(str(exc).split())
        return ""

    def plan(self, sample: int = PLAN_SAMPLE) -> dict:
        """What a build of the catalog would make, without rendering anything (``build
        --plan-only``): per sub-task its episodes per split, the hours they come to, and the
        corpora and clips each pool would draw from. Sources whose roots are not on disk (or
        not in their corpus's layout) are listed as missing and the sub-tasks that draw from
        them as blocked, as are sub-tasks without a recipe or with pools that do not fit it;
        the rest are scanned (every source stage, from the stage cache where it has them),
        their tables resolved and ``sample`` episodes per split planned (0: every episode),
        spread evenly over the split's episode ids. Hours are each split's episode count
        times the mean length of its planned sample; the sample's rejects are reported."""
        cat = self.catalog
        tax = taxonomy().subtasks
        sources: dict[str, dict] = {}
        for name in cat.needed_sources():
            spec = cat.sources[name]
            why = self.source_problem(name)
            sources[name] = {"corpus": spec.corpus, "root": str(spec.root), "status": "missing" if why else "present",
                             **({"reason": why} if why else {})}
        missing = {n: v["reason"] for n, v in sources.items() if v["status"] == "missing"}
        subtasks: dict[str, dict] = {}
        for st, spec in sorted(cat.subtasks.items()):
            recipe = self.recipes.get(st)
            uses = sorted({src for srcs in spec.pools.values() for src in srcs})
            info = {"ability": recipe.ability if recipe else tax.get(st, ""), "episodes": spec.count,
                    "splits": {k: v for k, v in cat.split_counts(spec.count).items() if v},
                    "hours": None, "mean_episode_s": None,
                    "corpora": sorted({cat.sources[src].corpus for src in uses}),
                    "pools": {p: {"sources": list(srcs), "corpora": sorted({cat.sources[x].corpus for x in srcs})}
                              for p, srcs in sorted(spec.pools.items())},
                    "missing_sources": [src for src in uses if src in missing], "problems": []}
            problem = self._pool_problem(st) if recipe else "no recipe defines this sub-task (`streamaudio recipes` lists them)"
            if problem:
                info["problems"].append(problem)
            info["status"] = "blocked" if problem or info["missing_sources"] else "ready"
            subtasks[st] = info
        ready = [st for st, v in subtasks.items() if v["status"] == "ready"]
        states: dict[str, SourceState] = {}
        for name in sorted({src for st in ready for srcs in cat.subtasks[st].pools.values() for src in srcs}):
            states[name] = run_source_stages(SourceState(name=name, spec=cat.sources[name]), self.env)
            rep = states[name].report
            sources[name].update({"seen": rep.get("seen"), "used": rep.get("used"), "rejected": rep.get("rejected"),
                                  "stages_reused": rep.get("stages_reused", [])})
        rejects = [r for st in states.values() for r in st.rejects]
        by_split = {name: split_table(st.table, cat.splits) for name, st in states.items()}
        tables, table_report, _ = self._tables(states, by_split, rejects, subtasks=set(ready))
        for st in ready:
            subtasks[st].update(self._plan_sample(st, by_split, tables[st], sample))
            subtasks[st]["tables"] = {name: r["note"] for name, r in table_report[st].items()}
        abilities: dict[str, dict] = {}
        for st, v in subtasks.items():
            a = abilities.setdefault(v["ability"], {"episodes": 0, "hours": 0.0, "subtasks": 0, "blocked": 0})
            a["episodes"] += v["episodes"]
            a["hours"] += v["hours"] or 0.0
            a["subtasks"] += 1
            a["blocked"] += v["status"] != "ready"
        return {
            "catalog": {"name": cat.name, "path": str(cat.path), "seed": cat.seed, "fingerprint": cat.fingerprint},
            "plan_only": True, "sample_per_split": sample,
            "sources": sources, "missing_sources": missing,
            "subtasks": subtasks, "abilities": dict(sorted(abilities.items())),
            "blocked": sorted(st for st, v in subtasks.items() if v["status"] != "ready"),
            "total": {"episodes": sum(v["episodes"] for v in subtasks.values()),
                      "ready_episodes": sum(v["episodes"] for v in subtasks.values() if v["status"] == "ready"),
                      "hours": sum(v["hours"] or 0.0 for v in subtasks.values())},
        }

    def _plan_sample(self, st: str, by_split: dict, tables: dict, sample: int) -> dict:
        """Plan a sample of a sub-task's episodes (no rendering): per split the episodes planned
        and rejected (with reasons), their mean length, the clips each pool has; the hours."""
        from ..plan import Pool
        from ..plan.store import plan_from_dict
        from ..plan.types import EpisodeRejected
        from .estimate import plan_duration

        cat, spec, recipe = self.catalog, self.catalog.subtasks[st], self.recipes[st]
        splits, hours, lengths, reasons = {}, 0.0, [], {}
        clips = {p: {} for p in spec.pools}
        for split, n in cat.split_counts(spec.count).items():
            if not n:
                continue
            pools = {}
            for p, srcs in spec.pools.items():
                table = pool_splits(srcs, by_split)[split]
                clips[p][split] = table.num_rows
                pools[p] = Pool(f"{'+'.join(srcs)}/{split}", table)
            task = ShardTask(subtask=st, split=split, index=0, total=1, first=0, count=n, out_path="", summary_path="",
                             plans_path="", pools={p: list(v) for p, v in spec.pools.items()}, pool_keys={},
                             recipe_dirs=[str(d) for d in cat.recipe_dirs], seed=cat.seed, options=dict(spec.options),
                             fingerprint="", chunk_s=cat.chunk_s, render=cat.render)
            k = n if sample <= 0 else min(sample, n)
            picks = sorted({int(round(x)) for x in np.linspace(0, n - 1, k)})
            got, rejected = [], 0
            for i in picks:
                eid = f"{st}-{split}-{i:06d}"
                try:
                    stored, _ = plan_episode(task, eid, pools, recipe, tables)
                except EpisodeRejected as exc:
                    rejected += 1
                    why = f"{type(exc).__name__}: {' '.join(str(exc).split())[:200]}"
                    reasons[why] = reasons.get(why, 0) + 1
                    continue
                except Exception as exc:
                    raise RecipeCrashError(f"recipe {st!r} ({recipe.module_path}) failed on episode {eid} with "
                                           f"{type(exc).__name__}: {exc}\n{traceback.format_exc()}") from None
                got.append(plan_duration(plan_from_dict(stored), cat.chunk_s))
            mean = float(np.mean(got)) if got else None
            splits[split] = {"episodes": n, "planned": len(got), "rejected": rejected, "mean_episode_s": mean}
            lengths += got
            if mean is not None:
                hours += n * mean / 3600
        planned = sum(v["planned"] for v in splits.values())
        rejected = sum(v["rejected"] for v in splits.values())
        return {"hours": hours if lengths else None, "mean_episode_s": float(np.mean(lengths)) if lengths else None,
                "sample": {"planned": planned, "rejected": rejected,
                           "reject_rate": rejected / max(1, planned + rejected),
                           "reasons": dict(sorted(reasons.items(), key=lambda kv: -kv[1])[:5]), "splits": splits},
                "pools": {p: {**self._pool_info(st, p), "clips": clips[p]} for p in spec.pools}}

    def _pool_info(self, st: str, pool: str) -> dict:
        srcs = self.catalog.subtasks[st].pools[pool]
        return {"sources": list(srcs), "corpora": sorted({self.catalog.sources[x].corpus for x in srcs})}

    def _sources(self) -> dict[str, SourceState]:
        needed = self.catalog.needed_sources()
        states = {}
        for name in needed:
            state = SourceState(name=name, spec=self.catalog.sources[name])
            states[name] = run_source_stages(state, self.env)
        return states

    def _tables(self, states, by_split, rejects, subtasks=None) -> tuple[dict, dict, dict]:
        """Every recipe's tables (of ``subtasks``, default all), resolved by their providers
        (with the LLM when there is one)."""
        tables, report, sha = {}, {}, {}
        for st, spec in sorted(self.catalog.subtasks.items()):
            if subtasks is not None and st not in subtasks:
                continue
            recipe = self.recipes[st]
            env = TableEnv(llm=self.llm, subtask=st, ability=recipe.ability, description=recipe.description,
                           folder=recipe.folder, seed=self.catalog.seed,
                           pools={p: pool_splits(srcs, by_split) for p, srcs in spec.pools.items()},
                           reject=lambda stage, item, reason, st=st: rejects.append(
                               {"stage": stage, "source": st, "item": item, "reason": reason}),
                           cache_dir=self.cache_dir)
            report[st] = {}
            for name, provider in recipe.providers().items():
                try:
                    res = provider.resolve(env)
                except (OSError, KeyError, ValueError) as exc:
                    raise BuildError(f"sub-task {st!r}: table {name!r} ({provider!r}): {type(exc).__name__}: {exc}") from None
                env.tables[name] = res.value
                report[st][name] = {"provider": repr(provider), "writer": res.writer, "note": res.note,
                                    "text": provider.writes_text, **({"report": res.report} if res.report else {})}
            tables[st] = env.tables
            sha[st] = hashlib.sha256(json.dumps(env.tables, sort_keys=True, default=str).encode()).hexdigest()
        return tables, report, sha

    def _tasks(self, states, table_sha, table_report) -> list[ShardTask]:
        tasks = []
        for st, spec in sorted(self.catalog.subtasks.items()):
            recipe = self.recipes[st]
            fp = content_key(FORMAT_VERSION, recipe.version, code_fingerprint(recipe), table_sha[st],
                             self.catalog.subtask_settings(st),
                             sorted((p, [states[src].key for src in srcs]) for p, srcs in spec.pools.items()))[:16]
            writers = {name: r["writer"] for name, r in table_report[st].items()
                       if r["text"] and r["writer"].startswith("llm:")}
            counts = self.catalog.split_counts(spec.count)
            pools = dict(spec.pools)  # and the noise tracks' sources, as a pool only shared code draws from
            if self.catalog.render.get("noise_tracks"):
                pools[TRACK_POOL] = tuple(self.catalog.render["noise_tracks"]["sources"])
            for split in SPLITS:
                n = counts.get(split, 0)
                if n == 0:
                    continue
                total = -(-n // spec.shard_size)
                for k in range(total):
                    fname = f"{split}-{k:05d}-of-{total:05d}"
                    first = k * spec.shard_size
                    tasks.append(ShardTask(
                        subtask=st, split=split, index=k, total=total, first=first,
                        count=min(spec.shard_size, n - first),
                        out_path=str(self.out / "data" / st / f"{fname}.parquet"),
                        summary_path=str(self.work / "shards" / st / f"{fname}.json"),
                        plans_path=str(self.work / "plans" / st / f"{fname}.parquet"),
                        pools={p: list(srcs) for p, srcs in pools.items()},
                        pool_keys={p: content_key([states[src].key for src in srcs], split)
                                   for p, srcs in pools.items()},
                        render=self.catalog.render,
                        recipe_dirs=[str(d) for d in self.catalog.recipe_dirs], seed=self.catalog.seed,
                        options=dict(spec.options), fingerprint=fp, chunk_s=self.catalog.chunk_s,
                        table_writers=writers or None,
                        source_corpus={src: self.catalog.sources[src].corpus for srcs in pools.values()
                                       for src in srcs},
                    ))
        return tasks

    def _run_tasks(self, todo: list[ShardTask], states, by_split, tables, reused: int) -> list[dict]:
        import ray

        pool_refs: dict[tuple, object] = {}  # (sources, split) -> ref, put once however many shards
        table_refs = {st: ray.put(tables[st]) for st in sorted({t.subtask for t in todo})}
        # system failures (a worker or node lost) are retried; a recipe's exception is not (RecipeCrash)
        remote = ray.remote(num_cpus=1, max_retries=3)(_run_shard_remote)
        for t in todo:
            for p in sorted(t.pools):
                key = (tuple(t.pools[p]), t.split)
                if key not in pool_refs:
                    table = pool_splits(key[0], by_split)[t.split]
                    pool_refs[key] = ray.put(PoolData.build(f"{'+'.join(key[0])}/{t.split}", table))
        by_split.clear()  # the object store holds what the shards need; the driver keeps nothing
        refs = {}
        for t in todo:
            args = [pool_refs[(tuple(t.pools[p]), t.split)] for p in sorted(t.pools)]
            refs[remote.remote(asdict(t), table_refs[t.subtask], *args)] = t
        out = []
        pending = list(refs)
        with progress_bar(f"shards ({reused} reused)", len(todo), self.env.show_progress) as advance:
            while pending:
                done, pending = ray.wait(pending, num_returns=1)
                for ref in done:
                    try:
                        out.append(ray.get(ref))
                    except ray.exceptions.RayTaskError as exc:
                        for p in pending:
                            ray.cancel(p, force=True)
                        cause = getattr(exc, "cause", None)
                        if isinstance(cause, RecipeCrash):
                            raise RecipeCrashError(str(cause)) from None
                        raise BuildError(f"shard {refs[ref].name} failed: {exc}") from None
                    advance()
        return out

    def _remove_stale(self, tasks: list[ShardTask]) -> None:
        """Shards of an earlier, different catalog would be loaded by the card's globs."""
        keep = {Path(t.out_path) for t in tasks} | {Path(t.plans_path) for t in tasks}
        for root in (self.out / "data", self.work / "plans"):
            if not root.exists():
                continue
            for p in root.rglob("*"):
                if p.is_file() and p not in keep:
                    p.unlink()
            for d in sorted((p for p in root.rglob("*") if p.is_dir()), reverse=True):
                if not any(d.iterdir()):
                    d.rmdir()

    def _finish(self, summaries, inputs, rejects, table_report, elapsed, reused) -> dict:
        summaries.sort(key=lambda s: (s["task"]["subtask"], SPLITS.index(s["task"]["split"]), s["task"]["index"]))
        subtasks: dict[str, dict] = {}
        drawn: dict[str, set] = {}
        prov = {"text_writer": set(), "tts": set(), "aligner": set(), "languages": set()}
        for s in summaries:
            st, split = s["task"]["subtask"], s["task"]["split"]
            info = subtasks.setdefault(st, {"ability": self.recipes[st].ability, "recipe_version": self.recipes[st].version,
                                            "planned": 0, "written": 0, "rejected": 0, "bytes": 0, "cpu_s": 0.0,
                                            "splits": {}})
            info["bytes"] += s.get("bytes", 0)  # shard bytes and render CPU: the rates `estimate` scales
            info["cpu_s"] = round(info["cpu_s"] + s.get("cpu_s", 0.0), 3)
            sp = info["splits"].setdefault(split, {"episodes": 0, "planned": 0, "rejected": 0, "hours": 0.0, "shards": 0})
            sp["episodes"] += s["episodes"]
            sp["planned"] += s["task"]["count"]
            sp["rejected"] += len(s["rejects"])
            sp["hours"] += s["hours"]
            sp["shards"] += 1
            info["planned"] += s["task"]["count"]
            info["written"] += s["episodes"]
            info["rejected"] += len(s["rejects"])
            rejects += s["rejects"]
            for source, ids in s["clips"].items():
                drawn.setdefault(source, set()).update(ids)
            for k, vals in s.get("provenance", {}).items():
                prov[k].update(vals)
        for st, info in subtasks.items():
            # render CPU per second of audio, the median over shards: a worker's first shard also pays
            # its one-off set-up, which a small build would otherwise spread over every episode
            rates = sorted(s["cpu_s"] / (s["hours"] * 3600) for s in summaries
                           if s["task"]["subtask"] == st and s.get("cpu_s") and s["hours"])
            info["render_cpu_per_audio_s"] = round(rates[len(rates) // 2], 6) if rates else None
        for st, info in subtasks.items():
            # per split too: one clip that silences a whole split must not hide in a sub-task's average
            gate = self.catalog.subtasks[st].max_reject_rate
            over = sorted(sp for sp, v in info["splits"].items()
                          if v["rejected"] > gate * v["planned"] or (v["planned"] and not v["episodes"]))
            info["gate"] = {"max_reject_rate": gate, "crossed": info["rejected"] > gate * info["planned"] or bool(over),
                            "splits_crossed": over}
        for name, src in inputs.items():
            src["drawn"] = len(drawn.get(name, set()))
        rejects.sort(key=lambda r: (r["stage"], r["source"], r["item"]))
        _atomic(self.out / "rejects.parquet",
                lambda tmp: pq.write_table(pa.Table.from_pylist(rejects, REJECT_SCHEMA), tmp))
        llm = self.llm
        build = {
            "format_version": FORMAT_VERSION, "toolkit_version": __version__,
            "catalog": {"name": self.catalog.name, "path": str(self.catalog.path), "seed": self.catalog.seed,
                        "fingerprint": self.catalog.fingerprint, "splits": self.catalog.splits,
                        "chunk_s": self.catalog.chunk_s},
            "subtasks": subtasks,
            "episodes": {k: sum(v[k] for v in subtasks.values()) for k in ("planned", "written", "rejected")},
            "hours": sum(sp["hours"] for v in subtasks.values() for sp in v["splits"].values()),
            "inputs": inputs,
            "rejects": {"total": len(rejects), "by_stage": _count(r["stage"] for r in rejects)},
            "languages": sorted(prov.pop("languages")),
            **{k: sorted(v) for k, v in prov.items()},
            "llm": {"model": llm.config.model, "base_url": redact_url(llm.config.base_url),
                    "stages": self.usage.as_dict()} if llm else None,
            "tables": {st: {name: r["note"] for name, r in t.items()} for st, t in table_report.items()},
            "table_providers": table_report,
            "tts_backend": {k: redact_url(v) if k == "base_url" else v for k, v in asdict(self.env.tts_config).items()
                            if k in ("backend", "base_url", "model", "voice")},
            "versions": _versions(),
            "run": {"elapsed_s": round(elapsed, 2), "shards": len(summaries), "shards_reused": reused,
                    "shards_by_node": _count(s["node"] for s in summaries if s.get("node"))},
            "endpoint_fallbacks": [
                *(f"source {name}: {src['endpoint_failures']} item(s) rejected because the endpoint did not answer"
                  for name, src in sorted(inputs.items()) if src.get("endpoint_failures")),
                *(f"sub-task {st}: table {name}: {r['note']}" for st, t in sorted(table_report.items())
                  for name, r in t.items() if r["note"].startswith("offline table (LLM failed"))],
            # what `validate` checks every shard file against
            "shards": {str(Path(s["shard"]).relative_to(self.out)): s["sha256"] for s in summaries},
        }
        _atomic(self.out / "build.json", lambda tmp: tmp.write_text(json.dumps(build, indent=2, sort_keys=False) + "\n"))
        _atomic(self.out / "README.md", lambda tmp: tmp.write_text(render_card(build)))
        return build


def _atomic(path: Path, write) -> None:
    """Write ``path`` through a temp name unique to this process, then rename."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    write(tmp)
    tmp.replace(path)


def redact_url(url: str | None) -> str | None:
    """A URL fit to publish: no user:password@ and no secret-looking query values."""
    if not url:
        return url
    from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

    parts = urlsplit(url)
    netloc = parts.netloc.rsplit("@", 1)[1] if "@" in parts.netloc else parts.netloc
    if "@" in parts.netloc:
        netloc = "***@" + netloc
    query = urlencode([(k, "***" if SECRET_KEYS.search(k) else v) for k, v in parse_qsl(parts.query, keep_blank_values=True)])
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


SECRET_KEYS = re.compile(r"key|token|secret|pass|auth|sig|credential", re.I)


def _count(items) -> dict:
    out: dict = {}
    for i in items:
        out[i] = out.get(i, 0) + 1
    return dict(sorted(out.items()))


def _versions() -> dict:
    from importlib.metadata import version  # not imports: `datasets` alone costs a second of CPU

    import soundfile

    return {"python": platform.python_version(), "pyarrow": pa.__version__, "ray": version("ray"),
            "numpy": np.__version__, "datasets": version("datasets"), "polars": version("polars"),
            "soundfile": soundfile.__version__, "libsndfile": soundfile.__libsndfile_version__,
            "espeak-ng": shutil.which("espeak-ng") and "installed" or "missing"}


def build(catalog: str | Path, out: str | Path, variables: dict | None = None, **kw) -> dict:
    return Builder(load_catalog(catalog, variables), Path(out), **kw).run()


def plan_catalog(catalog: str | Path, variables: dict | None = None, sample: int = PLAN_SAMPLE,
                 out: str | Path | None = None, **kw) -> dict:
    """``build --plan-only``: the report of ``Builder.plan`` (nothing is written but the
    stage and tempo caches). ``out`` only places the default cache, as for a build."""
    cat = load_catalog(catalog, variables)
    if out is None:
        out = Path.cwd() / f"{cat.name}-plan"
    return Builder(cat, Path(out), plan_only=True, **kw).plan(sample)
