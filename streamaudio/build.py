"""`streamaudio build`: catalog -> clip manifests -> spoken pools -> splits ->
sharded episodes on Ray -> build.json, rejects.parquet and the dataset card.

Work files (manifests, TTS cache, per-shard summaries) live in ``OUT.work/``,
beside the dataset and never inside it, so OUT is exactly what gets published.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import platform
import shutil
import time
from dataclasses import asdict
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import yaml

from . import __version__
from .card import render_card
from .catalog import Catalog, load_catalog
from .format import FORMAT_VERSION, MANIFESTS_DIR, SPLITS
from .llm import LLMClient, LLMConfig, Usage
from .spoken import WRITER_TAG
from .tts_backends import TTSConfig, make_tts
from .plan import RecipeError, load_recipes
from .progress import progress_bar
from .shards import ShardTask, finished_summary, run_shard
from .sources import REJECT_SCHEMA, get_adapter, write_manifest
from .sources.base import CLIP_SCHEMA

log = logging.getLogger("streamaudio")


class BuildError(RuntimeError):
    pass


def work_dir(out: Path) -> Path:
    return out.with_name(out.name + ".work")


def _sha_file(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


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


def _init_ray(address: str | None, num_cpus: int | None):
    import ray
    from ray.data import DataContext

    if not ray.is_initialized():
        kw = dict(include_dashboard=False, log_to_driver=False, logging_level=logging.WARNING,
                  configure_logging=True)
        if address and address != "local":
            ray.init(address=address, **kw)
        else:
            os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
            ray.init(num_cpus=num_cpus, **kw)
    logging.getLogger("ray.data").setLevel(logging.WARNING)  # per-dataset INFO lines; our bar reports shards
    ctx = DataContext.get_current()
    ctx.enable_progress_bars = False  # our own bar reports shards; Ray's per-operator bars are noise here
    ctx.print_on_execution_start = False
    return ray


def _speak_batch(rows: list[dict], tts_config, cache_dir: str, max_words: int) -> list[dict]:
    from .spoken import speak_row
    from .tts_backends import make_tts

    tts = make_tts(tts_config)
    out = []
    for row in rows:
        try:
            out.append({"row": speak_row(row, tts, Path(cache_dir), row["spoken"], row["text_by"], max_words)})
        except Exception as exc:
            out.append({"reject": {"stage": "tts", "source": row["corpus"], "item": row["id"],
                                   "reason": f"{type(exc).__name__}: {' '.join(str(exc).split())[:200]}"}})
    return out


class Builder:
    def __init__(self, catalog: Catalog, out: Path, ray_address: str | None = None, num_cpus: int | None = None,
                 resume: bool = True, show_progress: bool = True, cache_dir: Path | None = None,
                 llm: dict | None = None, tts: dict | None = None):
        self.catalog, self.out = catalog, Path(out).resolve()
        self.work = work_dir(self.out)
        # shared across builds (content-addressed): aligning a corpus happens once
        self.cache_dir = Path(cache_dir or catalog.cache_dir or self.out.parent / ".streamaudio-cache").resolve()
        # command-line settings override the catalog's llm: and tts: sections
        llm_cfg = {**(catalog.llm or {}), **{k: v for k, v in (llm or {}).items() if v is not None}}
        tts_cfg = {**(catalog.tts or {}), **{k: v for k, v in (tts or {}).items() if v is not None}}
        self.usage = Usage()
        self.llm = None
        if llm_cfg.get("base_url") or llm_cfg.get("model"):
            if not (llm_cfg.get("base_url") and llm_cfg.get("model")):
                raise BuildError("an LLM needs both a base URL and a model (--llm-base-url, --llm-model)")
            self.llm = LLMClient(LLMConfig(**llm_cfg), cache_dir=self.cache_dir, usage=self.usage)
        try:
            self.tts_config = TTSConfig(**tts_cfg)
            make_tts(self.tts_config)  # fail fast on a bad TTS configuration
        except (TypeError, ValueError) as exc:
            raise BuildError(f"TTS configuration: {exc}") from None
        self.implicit_align: set[str] = set()
        self.ray_address, self.num_cpus = ray_address, num_cpus
        self.resume, self.show_progress = resume, show_progress
        try:
            self.recipes = load_recipes(catalog.recipe_dirs)
        except RecipeError as exc:
            raise BuildError(str(exc)) from None
        for st, spec in catalog.subtasks.items():
            if st not in self.recipes:
                raise BuildError(f"catalog asks for sub-task {st!r} but no recipe defines it; "
                                 f"available: {sorted(self.recipes)}")
            missing = set(self.recipes[st].pools) - set(spec.pools)
            if missing:
                raise BuildError(f"sub-task {st!r}: recipe needs pools {sorted(missing)}; "
                                 f"map them to sources under subtasks/{st}/pools in {catalog.path}")

    # ------------------------------------------------------------ stage 1: manifests
    def manifests(self) -> tuple[dict[str, Path], dict[str, dict], list[dict]]:
        needed = sorted({src for spec in self.catalog.subtasks.values() for src in spec.pools.values()})
        paths, inputs, rejects = {}, {}, []
        for name in needed:
            spec = self.catalog.sources[name]
            adapter = get_adapter(spec.corpus)
            out = self.work / "manifests" / f"{name}.parquet"
            with progress_bar(f"scan {name}", None, self.show_progress) as advance:
                res = write_manifest(adapter, spec.root, out, spec.options, progress=advance, source_name=name)
            paths[name] = out
            rejects += res.rejects
            inputs[name] = {"corpus": spec.corpus, "root": str(spec.root), "seen": res.seen, "used": res.used,
                            "rejected": res.rejected, "license": adapter.license}
        return paths, inputs, rejects

    # ------------------------------------------------------------ stage 2: text -> speech
    def spoken(self, name: str, manifest: Path, inputs: dict, rejects: list[dict]) -> Path:
        spec = self.catalog.sources[name].spoken
        if not spec:
            return manifest
        rows = pq.read_table(manifest).to_pylist()
        limit = spec.get("max_items")
        if limit and len(rows) > limit:
            # not spoken in this build: still accounted for, as a reject with its reason
            for r in rows[limit:]:
                rejects.append({"stage": "tts", "source": name, "item": r["id"],
                                "reason": f"beyond spoken.max_items={limit}"})
            rows = rows[:limit]
        max_words = spec.get("max_words", 60)
        rows = self._write_spoken_form(name, rows, max_words, rejects)
        ray = _init_ray(self.ray_address, self.num_cpus)
        speak = ray.remote(num_cpus=1)(_speak_batch)
        batch = 16
        refs = [speak.remote(rows[i:i + batch], self.tts_config, str(self.cache_dir / "tts"), max_words)
                for i in range(0, len(rows), batch)]
        out_rows = []
        with progress_bar(f"speak {name}", len(rows), self.show_progress) as advance:
            for ref in refs:  # in submission order: the spoken manifest's order is deterministic
                for item in ray.get(ref):
                    if "row" in item:
                        out_rows.append({k: v for k, v in item["row"].items() if k != "spoken"})
                    else:
                        rejects.append({**item["reject"], "source": name})
                    advance()
        # a text row is used only once it is speech: seen = spoken + every reject, source or tts
        inputs[name]["used"] = len(out_rows)
        inputs[name]["rejected"] = inputs[name]["seen"] - len(out_rows)
        inputs[name]["tts"] = self.tts_config.backend
        inputs[name]["writer"] = self.llm.config.tag if self.llm else WRITER_TAG
        path = manifest.with_name(f"{name}.spoken.parquet")
        pq.write_table(pa.Table.from_pylist(out_rows, CLIP_SCHEMA), path, compression="zstd")
        if not self.tts_config.has_word_timings:
            self.implicit_align.add(name)  # speech without word timings goes through alignment
        return path

    def _write_spoken_form(self, name: str, rows: list[dict], max_words: int, rejects: list[dict]) -> list[dict]:
        """Each row's spoken form, by the LLM when there is one, otherwise by rules."""
        from .spoken import SpokenFormError, check_spoken, to_spoken_form

        out = []
        if self.llm is None:
            for r in rows:
                try:
                    out.append({**r, "spoken": to_spoken_form(r["text"], max_words), "text_by": WRITER_TAG})
                except SpokenFormError as exc:
                    rejects.append({"stage": "write", "source": name, "item": r["id"], "reason": str(exc)})
            return out
        from .llm import LLMError

        prompt = _load_yaml(MANIFESTS_DIR / "prompts" / "spoken_form.yaml")
        reqs = [([{"role": "system", "content": prompt["system"]},
                  {"role": "user", "content": prompt["user"].replace("{text}", r["text"])}], prompt["schema"])
                for r in rows]
        with progress_bar(f"write {name} (LLM)", None, self.show_progress):
            results = self.llm.map_json("spoken_form", reqs)
        for r, res in zip(rows, results):
            if isinstance(res, LLMError):
                rejects.append({"stage": "write", "source": name, "item": r["id"], "reason": str(res)})
                continue
            try:
                out.append({**r, "spoken": check_spoken(res["spoken"], max_words), "text_by": self.llm.config.tag})
            except SpokenFormError as exc:
                rejects.append({"stage": "write", "source": name, "item": r["id"], "reason": f"LLM spoken form: {exc}"})
        return out

    # ------------------------------------------------------------ stage 2b: word timings and ASR check
    def checked_speech(self, name: str, manifest: Path, inputs: dict, rejects: list[dict]) -> Path:
        spec = self.catalog.sources[name]
        align = spec.align or ({"backend": "pocketsphinx"} if name in self.implicit_align else None)
        if not (align or spec.asr_check):
            return manifest
        _init_ray(self.ray_address, self.num_cpus)
        rows = pq.read_table(manifest).to_pylist()
        dropped: set[str] = set()
        if align:
            rows, dropped = self._align(name, align, rows, inputs, rejects)
        if spec.asr_check:
            rows = self._asr_check(name, spec.asr_check, rows, inputs, rejects)
        inputs[name]["used"] = len(rows)
        inputs[name]["rejected"] = inputs[name]["seen"] - len(rows)
        path = manifest.with_name(manifest.stem + ".checked.parquet")
        pq.write_table(pa.Table.from_pylist(rows, CLIP_SCHEMA), path, compression="zstd")
        return path

    def _align(self, name, cfg, rows, inputs, rejects):
        from .align.stage import run_alignment

        need = [r for r in rows if r["kind"] == "speech" and r["text"].strip() and not r["words"]]
        results: dict[str, dict] = {}
        with progress_bar(f"align {name}", len(need), self.show_progress) as advance:
            collect = _collector(results, advance)
            run_alignment(pa.Table.from_pylist(need, CLIP_SCHEMA), cfg["backend"], model_dir=cfg.get("model_dir"),
                          cache_dir=str(self.cache_dir), actors=cfg.get("actors"),
                          gpus_per_actor=cfg.get("gpus_per_actor", 0.0), on_batch=collect)
        out, failed = [], set()
        for r in rows:
            res = results.get(r["id"])
            if res is not None and res["reason"]:
                if cfg.get("reject_failures", True):
                    rejects.append({"stage": "align", "source": name, "item": r["id"], "reason": res["reason"]})
                    failed.add(r["id"])
                    continue
            elif res is not None:
                r = {**r, "words": res["words"], "words_by": res["aligner"]}
            out.append(r)
        inputs[name]["aligned"] = sum(1 for r in results.values() if not r["reason"])
        inputs[name]["align_failed"] = sum(1 for r in results.values() if r["reason"])
        inputs[name]["aligner"] = next((r["aligner"] for r in results.values()), "")
        return out, failed

    def _asr_check(self, name, cfg, rows, inputs, rejects):
        import numpy as np

        from .asr_check import run_asr_check

        speech = [r for r in rows if r["kind"] == "speech" and r["text"].strip()]
        results: dict[str, dict] = {}
        with progress_bar(f"asr-check {name}", len(speech), self.show_progress) as advance:
            run_asr_check(pa.Table.from_pylist(speech, CLIP_SCHEMA), on_batch=_collector(results, advance))
        out = []
        for r in rows:
            res = results.get(r["id"])
            if res is not None and res["reason"]:
                rejects.append({"stage": "asr_check", "source": name, "item": r["id"], "reason": res["reason"]})
                continue
            if res is not None and res["wer"] > cfg["max_wer"]:
                rejects.append({"stage": "asr_check", "source": name, "item": r["id"],
                                "reason": f"WER {res['wer']:.2f} > max_wer {cfg['max_wer']} "
                                          f"(heard: {res['asr_text'][:80]!r})"})
                continue
            out.append(r)
        wers = [r["wer"] for r in results.values() if not r["reason"]]
        inputs[name]["asr_check"] = {"decoded": len(wers), "mean_wer": round(float(np.mean(wers)), 4) if wers else None,
                                     "max_wer": cfg["max_wer"],
                                     "rejected": sum(1 for r in results.values() if r["reason"] or r["wer"] > cfg["max_wer"])}
        return out

    # ------------------------------------------------------------ stage 3: episodes
    def tasks(self, manifest_sha: dict[str, str], pool_rows: dict[str, dict[str, list[dict]]],
              rejects: list[dict]) -> list[ShardTask]:
        from .curation import curate
        from .writers import written_tables

        tasks = []
        self.table_writers = {}
        self.curation = {}
        for st, spec in sorted(self.catalog.subtasks.items()):
            recipe = self.recipes[st]
            recipe_sha = _sha_file(Path(recipe.module_path))
            overrides, self.table_writers[st] = written_tables(self.llm, recipe)
            if "curation" in recipe.tables:
                # hierarchical event curation over the clips of the recipe's event pool
                # per split, so every scenario can be grounded in the clips its episodes may use
                tables = {**recipe.load_tables(), **overrides}
                events_src = spec.pools[recipe.curation_pool]
                by_split, writer = {}, ""
                for split in SPLITS:
                    scenarios, dropped = curate(self.llm, tables["curation"], pool_rows[split][events_src],
                                                tables["policy"]["labels"], self.catalog.seed)
                    by_split[split], writer = scenarios["scenarios"], scenarios["writer"]
                    self.curation.setdefault(st, {})[split] = {"kept": len(scenarios["scenarios"]), "dropped": len(dropped)}
                    rejects += [{"stage": "curate", "source": st, "item": f"{split}/{d['title']}", "reason": d["reason"]}
                                for d in dropped]
                overrides["scenarios"] = {"writer": writer, "by_split": by_split}
                self.table_writers[st]["scenarios"] = writer
            tables = {**recipe.load_tables(), **overrides}
            tables_sha = hashlib.sha256(json.dumps(tables, sort_keys=True).encode()).hexdigest()
            counts = self.catalog.split_counts(spec.count)
            for split in SPLITS:
                n = counts.get(split, 0)
                if n == 0:
                    continue
                ids = [f"{st}-{split}-{i:06d}" for i in range(n)]
                total = -(-n // spec.shard_size)
                for k in range(total):
                    fp = hashlib.sha256(json.dumps([
                        self.catalog.fingerprint, __version__, recipe.version, recipe_sha, tables_sha,
                        sorted((p, manifest_sha[s]) for p, s in spec.pools.items()),
                    ]).encode()).hexdigest()[:16]
                    fname = f"{split}-{k:05d}-of-{total:05d}"
                    tasks.append(ShardTask(
                        subtask=st, split=split, index=k, total=total,
                        episode_ids=ids[k * spec.shard_size:(k + 1) * spec.shard_size],
                        out_path=str(self.out / "data" / st / f"{fname}.parquet"),
                        summary_path=str(self.work / "shards" / st / f"{fname}.json"),
                        pools=dict(spec.pools), recipe_dirs=[str(d) for d in self.catalog.recipe_dirs],
                        seed=self.catalog.seed, options=dict(spec.options), fingerprint=fp,
                        chunk_s=self.catalog.chunk_s, tables=overrides or None,
                    ))
        return tasks

    def run(self) -> dict:
        t0 = time.time()
        self.out.mkdir(parents=True, exist_ok=True)
        self.work.mkdir(parents=True, exist_ok=True)
        paths, inputs, rejects = self.manifests()
        for name in list(paths):
            paths[name] = self.spoken(name, paths[name], inputs, rejects)
            paths[name] = self.checked_speech(name, paths[name], inputs, rejects)
        manifest_sha = {n: _sha_file(p) for n, p in paths.items()}

        # every source's rows, split by source group
        pools_by_split: dict[str, dict[str, list[dict]]] = {s: {} for s in SPLITS}
        for name, path in paths.items():
            rows = pq.read_table(path).to_pylist()
            split_of = assign_splits([r["split_group"] for r in rows], self.catalog.splits)
            for s in SPLITS:
                pools_by_split[s][name] = [r for r in rows if split_of[r["split_group"]] == s]

        tasks = self.tasks(manifest_sha, pools_by_split, rejects)
        summaries, todo = [], []
        for t in tasks:
            done = finished_summary(t) if self.resume else None
            (summaries.append(done) if done else todo.append(t))
        if todo:
            ray = _init_ray(self.ray_address, self.num_cpus)
            pools_ref = ray.put(pools_by_split)

            def _run(item: dict) -> dict:
                import ray as _ray
                summary = run_shard(ShardTask(**item), _ray.get(pools_ref))
                return {"summary": json.dumps(summary)}

            ds = ray.data.from_items([asdict(t) for t in todo], override_num_blocks=len(todo))
            ds = ds.map(_run, num_cpus=1)
            with progress_bar(f"shards ({len(tasks) - len(todo)} reused)", len(todo), self.show_progress) as advance:
                for row in ds.iter_rows():
                    summaries.append(json.loads(row["summary"]))
                    advance()
        self._remove_stale(tasks)
        return self._finish(summaries, inputs, rejects, time.time() - t0, len(tasks) - len(todo))

    def _remove_stale(self, tasks: list[ShardTask]) -> None:
        """Shards of an earlier, different catalog would be loaded by the card's globs."""
        keep = {Path(t.out_path) for t in tasks}
        data = self.out / "data"
        for p in data.rglob("*"):
            if p.is_file() and p not in keep:
                p.unlink()
        for d in sorted((p for p in data.rglob("*") if p.is_dir()), reverse=True):
            if not any(d.iterdir()):
                d.rmdir()

    def _finish(self, summaries, inputs, rejects, elapsed, reused) -> dict:
        summaries.sort(key=lambda s: (s["task"]["subtask"], SPLITS.index(s["task"]["split"]), s["task"]["index"]))
        subtasks: dict[str, dict] = {}
        drawn: dict[str, set] = {}
        for s in summaries:
            st, split = s["task"]["subtask"], s["task"]["split"]
            info = subtasks.setdefault(st, {"ability": self.recipes[st].ability, "recipe_version": self.recipes[st].version,
                                            "planned": 0, "written": 0, "rejected": 0, "splits": {}})
            sp = info["splits"].setdefault(split, {"episodes": 0, "hours": 0.0, "shards": 0})
            sp["episodes"] += s["episodes"]
            sp["hours"] += s["hours"]
            sp["shards"] += 1
            info["planned"] += len(s["task"]["episode_ids"])
            info["written"] += s["episodes"]
            info["rejected"] += len(s["rejects"])
            rejects += s["rejects"]
            for corpus, ids in s["clips"].items():
                drawn.setdefault(corpus, set()).update(ids)
        for name, src in inputs.items():
            src["drawn"] = len(drawn.get(src["corpus"], set()))
        rejects.sort(key=lambda r: (r["stage"], r["source"], r["item"]))
        pq.write_table(pa.Table.from_pylist(rejects, REJECT_SCHEMA), self.out / "rejects.parquet")
        provenance = self._provenance_values()
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
            "languages": sorted({*provenance.pop("languages")}),
            **provenance,
            "llm": {"model": self.llm.config.model, "base_url": self.llm.config.base_url,
                    "stages": self.usage.as_dict()} if self.llm else None,
            "tables": getattr(self, "table_writers", {}),
            "curation": getattr(self, "curation", {}),
            "tts_backend": {k: v for k, v in asdict(self.tts_config).items() if k in ("backend", "base_url", "model", "voice")},
            "versions": _versions(),
            "run": {"elapsed_s": round(elapsed, 2), "shards": len(summaries), "shards_reused": reused},
        }
        (self.out / "build.json").write_text(json.dumps(build, indent=2, sort_keys=False) + "\n")
        (self.out / "README.md").write_text(render_card(build))
        return build

    def _provenance_values(self) -> dict:
        vals = {"text_writer": set(), "tts": set(), "aligner": set(), "languages": set()}
        for f in sorted((self.out / "data").rglob("*.parquet")):
            t = pq.read_table(f, columns=["provenance", "language"])
            for p in t.column("provenance").to_pylist():
                for k in ("text_writer", "tts", "aligner"):
                    if p[k]:
                        vals[k].add(p[k].split("/")[0])
            vals["languages"].update(t.column("language").to_pylist())
        return {k: sorted(v) for k, v in vals.items()}


def _collector(results: dict, advance):
    """An on_batch callback for actor stages: results by clip id, and progress."""
    def collect(t: pa.Table) -> None:
        for r in t.to_pylist():
            results[r["id"]] = r
        advance(t.num_rows)

    return collect


def _load_yaml(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


def _count(items) -> dict:
    out: dict = {}
    for i in items:
        out[i] = out.get(i, 0) + 1
    return dict(sorted(out.items()))


def _versions() -> dict:
    import datasets
    import numpy
    import polars
    import ray
    import soundfile

    return {"python": platform.python_version(), "pyarrow": pa.__version__, "ray": ray.__version__,
            "numpy": numpy.__version__, "datasets": datasets.__version__, "polars": polars.__version__,
            "soundfile": soundfile.__version__, "libsndfile": soundfile.__libsndfile_version__,
            "espeak-ng": shutil.which("espeak-ng") and "installed" or "missing"}


def build(catalog: str | Path, out: str | Path, **kw) -> dict:
    return Builder(load_catalog(catalog), Path(out), **kw).run()
