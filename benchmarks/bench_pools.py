"""Clip pools scale: an N-row speech pool and a build of `asr_utterance` from it, for
several N (default 50k and 5M rows, 2,000 episodes each, 2 CPUs).

What is measured, per pool size, each in fresh processes:

- the driver's steps between the source stages and the shards: loading the clip table
  from the stage cache, `split_table`, `PoolData.build`, `ray.put` of each (source, split)
  pool, and the pools' size in Ray's object store;
- the shard phase (first shard start to last shard end), per-shard wall and CPU time,
  timed by a thin wrapper around the builder's own remote function (the unmodified
  `Builder.run()` path: `_tasks`, `_run_tasks`, `run_shard`);
- peak memory of every Ray worker process and of the driver: USS (Private_Clean +
  Private_Dirty of /proc/<pid>/smaps_rollup, what psutil calls uss) every --uss-interval
  seconds, RSS and RssAnon (/proc/<pid>/status) every --interval seconds;
- a probe in a new worker process (one per call): `ray.get` of the train pool,
  `Pool()` construction, 1,000 `choice` draws, 200 `sample(k=5)` draws, 1,000 `choice`
  draws with a `where=` predicate, and the worker's USS afterwards.

How the pool is made (not part of what is measured): the fixture LibriSpeech stand-in
(`streamaudio fixtures`) is scanned by the real adapter (48 clips), given its ground-truth
word timings (`_truth/librispeech_words.jsonl`, words_by "fixture-truth"), and N rows are
drawn from it with replacement (numpy, seed 0); each row gets a unique id
(`bench:<i>`) and a speaker / split group of its own (`bench:spk<i // 20>`, so N/20 speakers),
so every row is a distinct clip that points at a real audio file. That table is written
as the cached output of the catalog source's scan stage (the key `run_source_stages`
computes for it), so the build loads it as it would load a rescanned 5M-clip corpus.
The noise pool is the fixture MUSAN stand-in, scanned for real.

Run: `.venv/bin/python benchmarks/bench_pools.py` (full: 50k and 5M rows, 2,000 episodes;
about 2.5 minutes on 2 cores, and the driver peaks at ~11 GB RSS with the 5M-row pool) or
`--quick` (20k and 200k rows, 100 episodes, ~35 s). Prints a markdown table and the
machine; `--json` writes the raw numbers. Pools are cached under WORK/rows-N/cache and reused.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
MB = 1 << 20
SOURCE = "pool"  # the catalog source of the big speech pool
NOISE = "musan_noise"
SPEAKER_ROWS = 20  # rows per synthetic speaker (= split group)
# the driver's peak RSS in pools, with a margin (measured 3.6 at 5M rows before split_table kept chunks
# and the builder dropped what it had put in the object store)
DRIVER_COPIES = 5


# ------------------------------------------------------------ memory sampling
def rollup(pid: int) -> dict[str, int] | None:
    """rss, uss (Private_Clean + Private_Dirty), pss and anon (anonymous pages), bytes."""
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            text = f.read()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    d = {}
    for line in text.splitlines()[1:]:
        parts = line.split()
        if len(parts) == 3 and parts[2] == "kB":
            d[parts[0].rstrip(":")] = int(parts[1]) * 1024
    return {"rss": d.get("Rss", 0), "uss": d.get("Private_Clean", 0) + d.get("Private_Dirty", 0),
            "pss": d.get("Pss", 0), "anon": d.get("Anonymous", 0)}


def process_title(pid: int) -> str:
    """argv[0] as the process set it (Ray workers: ``ray::<task>`` or ``ray::IDLE``); "" if gone."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return (f.read().split(b"\0")[0].decode(errors="replace").split() or [""])[0]
    except OSError:
        return ""


def descendants(root: int) -> list[int]:
    """Every process below `root` (from /proc/<pid>/stat's parent pid)."""
    children: dict[int, list[int]] = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        ppid = int(stat[stat.rindex(")") + 2:].split()[1])
        children.setdefault(ppid, []).append(int(d))
    out, todo = [], [root]
    while todo:
        for c in children.get(todo.pop(), []):
            out.append(c)
            todo.append(c)
    return out


def status_mem(pid: int) -> dict[str, int] | None:
    """rss, anon (RssAnon) and shmem (RssShmem) from /proc/<pid>/status: O(1), no page walk."""
    try:
        with open(f"/proc/{pid}/status") as f:
            text = f.read()
    except OSError:
        return None
    d = {}
    for line in text.splitlines():
        if line.startswith(("VmRSS:", "RssAnon:", "RssShmem:")):
            k, v, _ = line.split()
            d[k.rstrip(":")] = int(v) * 1024
    return {"rss": d.get("VmRSS", 0), "anon": d.get("RssAnon", 0), "shmem": d.get("RssShmem", 0)}


def cpu_jiffies() -> tuple[int, int]:
    """(busy, total) jiffies of the whole machine, from /proc/stat."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    idle = v[3] + (v[4] if len(v) > 4 else 0)
    return sum(v) - idle, sum(v)


class Sampler(threading.Thread):
    """The driver and every Ray worker process of this driver's own Ray node (children of
    its raylet whose title starts with ``ray::``): RSS, RssAnon and RssShmem every
    `interval` s (/proc/<pid>/status, cheap), USS every `uss_interval` s (smaps_rollup:
    the kernel walks the page tables, ~tens of ms for a process with GBs of the object
    store mapped, so less often). Keeps the peak of each figure per process and phase,
    and the machine's CPU counters, to tell how busy the machine was."""

    def __init__(self, interval: float, uss_interval: float):
        super().__init__(daemon=True)
        self.interval, self.uss_interval = interval, uss_interval
        self.phase = "build"
        self.peaks: dict[str, dict[int, dict]] = {}  # phase -> pid -> peaks
        self.samples = self.uss_samples = 0
        self.cpu_s = 0.0
        self.cpu: list[tuple[float, int, int]] = []  # (time.time(), busy, total)
        self._halt = threading.Event()
        self._workers: dict[int, str] = {}
        self._listed = self._uss_at = 0.0

    def _list_workers(self) -> None:
        import ray

        if not ray.is_initialized():
            self._workers = {}
            return
        try:
            raylet = ray._private.worker._global_node.all_processes["raylet"][0].process.pid
        except (KeyError, IndexError, AttributeError):
            return
        found = {}
        for pid in descendants(raylet):
            title = process_title(pid)
            if title.startswith("ray::"):
                found[pid] = title
        self._workers = found

    def _record(self, role: str, pid: int, title: str, with_uss: bool) -> None:
        m = status_mem(pid)
        if m is None:
            return
        if with_uss:
            r = rollup(pid)
            if r is not None:
                m.update(uss=r["uss"], pss=r["pss"])
        peaks = self.peaks.setdefault(self.phase, {}).setdefault(pid, {"role": role, "title": title})
        for k, v in m.items():
            if v > peaks.get(k, -1):
                peaks[k] = v
                if k == "uss":
                    peaks["title"] = title

    def sample(self) -> None:
        now = time.monotonic()
        if now - self._listed > 1.0:  # new workers start now and then; a listing walks /proc
            self._list_workers()
            self._listed = now
        with_uss = now - self._uss_at >= self.uss_interval
        if with_uss:
            self._uss_at = now
            self.uss_samples += 1
        self._record("driver", os.getpid(), "driver", with_uss)
        for pid in list(self._workers):
            title = process_title(pid)
            if title:
                self._record("worker", pid, title, with_uss)
        self.cpu.append((time.time(), *cpu_jiffies()))
        self.samples += 1

    def run(self) -> None:
        while not self._halt.is_set():
            self.sample()
            self._halt.wait(self.interval)
        self.cpu_s = time.thread_time()

    def stop(self) -> None:
        self._halt.set()
        self.join()

    def busy(self, start: float, end: float) -> float:
        """The machine's CPU use between two time.time() stamps, in cores."""
        inside = [c for c in self.cpu if start <= c[0] <= end]
        if len(inside) < 2:
            return float("nan")
        (_, b0, t0), (_, b1, t1) = inside[0], inside[-1]
        return (b1 - b0) / max(1, t1 - t0) * (os.cpu_count() or 1)

    def summary(self, phase: str) -> dict:
        procs = self.peaks.get(phase, {})
        workers = [p for p in procs.values() if p["role"] == "worker"]
        driver = [p for p in procs.values() if p["role"] == "driver"]

        def top(ps, k):
            return max((p.get(k, 0) for p in ps), default=0)

        out = {"workers_seen": len(workers),
               "worker_peak_uss_title": max(workers, key=lambda p: p.get("uss", 0))["title"] if workers else "",
               "worker_peaks": sorted(({k: p[k] for k in ("title", "uss", "rss", "anon", "shmem") if k in p}
                                       for p in workers), key=lambda p: -p.get("uss", 0))}
        for k in ("uss", "rss", "anon", "shmem", "pss"):
            out[f"worker_peak_{k}"] = top(workers, k)
            out[f"driver_peak_{k}"] = top(driver, k)
        return out


# ------------------------------------------------------------ remote functions (pickled by value)
def _timed_shard(task: dict, tables: dict, *pool_data):
    """The builder's own remote function, timed; the summary gets a `_bench` entry."""
    import os as _os
    import time as _time

    from streamaudio.build import builder as _builder  # unpatched in the worker

    t0, c0 = _time.time(), _time.process_time()
    summary = _builder._run_shard_remote(task, tables, *pool_data)
    t1, c1 = _time.time(), _time.process_time()
    summary["_bench"] = {"pid": _os.getpid(), "start": t0, "end": t1, "wall_s": t1 - t0, "cpu_s": c1 - c0,
                         "episodes": summary["episodes"], "split": task["split"],
                         "mem_end": rollup(_os.getpid())}
    return summary


def _probe(refs: list, draws: int, seed: int) -> dict:
    """In a fresh worker: fetch a pool (the ref is inside a list, so Ray does not resolve it
    before the call), build its Pool, draw rows the way recipes do."""
    import os as _os
    import time as _time

    import numpy as _np
    import ray as _ray

    from streamaudio.plan import Pool

    pid = _os.getpid()
    m0 = rollup(pid)
    t0 = _time.perf_counter()
    data = _ray.get(refs[0])
    get_s = _time.perf_counter() - t0
    m1 = rollup(pid)  # (reading smaps_rollup takes milliseconds: outside the timed spans)
    t0 = _time.perf_counter()
    _ray.get(refs[0])  # what every later shard task of this worker pays
    get2_s = _time.perf_counter() - t0
    t1 = _time.perf_counter()
    pool = Pool(data.name, data)
    n = len(pool)
    t2 = _time.perf_counter()
    rng = _np.random.default_rng(seed)
    for _ in range(draws):
        pool.choice(rng)
    t3 = _time.perf_counter()
    for _ in range(draws // 5):
        pool.sample(rng, 5)
    t4 = _time.perf_counter()
    for _ in range(draws):
        pool.choice(rng, where=lambda r: r["duration_s"] < 30.0)
    t5 = _time.perf_counter()
    m2 = rollup(pid)
    return {"rows": n, "pid": pid, "get_ms": get_s * 1e3, "get2_ms": get2_s * 1e3, "pool_ms": (t2 - t1) * 1e3, "choice_ms": (t3 - t2) * 1e3,
            "sample_ms": (t4 - t3) * 1e3, "where_ms": (t5 - t4) * 1e3, "handed": len(pool.handed),
            "uss_start": m0["uss"], "uss_after_get": m1["uss"], "uss_end": m2["uss"],
            "rss_end": m2["rss"], "anon_end": m2["anon"]}


# ------------------------------------------------------------ the pool
def base_rows(fixtures: Path, scratch: Path):
    """The fixture LibriSpeech clips (real scan) with their ground-truth word timings."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from streamaudio.format import WORD_TYPE
    from streamaudio.sources import CLIP_SCHEMA, get_adapter, write_manifest

    res = write_manifest(get_adapter("librispeech"), fixtures, scratch / "librispeech.parquet")
    table = pq.read_table(res.path)
    truth = {}
    with open(fixtures / "_truth" / "librispeech_words.jsonl") as f:
        for line in f:
            r = json.loads(line)
            truth[f"librispeech:{r['id']}"] = r["words"]
    ids = table.column("id").to_pylist()
    words = pa.array([truth.get(i, []) for i in ids], pa.list_(WORD_TYPE))
    by = pa.array(["fixture-truth" if truth.get(i) else "" for i in ids], pa.string())
    table = table.set_column(table.schema.get_field_index("words"), CLIP_SCHEMA.field("words"), words)
    table = table.set_column(table.schema.get_field_index("words_by"), CLIP_SCHEMA.field("words_by"), by)
    return table, sum(1 for i in ids if truth.get(i))


def make_pool(base, n: int, seed: int = 0, words: bool = True):
    """n distinct clips drawn from `base` with replacement, vectorised."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    from streamaudio.sources import CLIP_SCHEMA

    rng = np.random.default_rng(seed)
    t = base.take(pa.array(rng.integers(0, base.num_rows, n)))
    i = pa.array(np.arange(n, dtype=np.int64))
    ids = pc.binary_join_element_wise("bench:", pc.utf8_lpad(pc.cast(i, pa.string()), 8, "0"), "")
    spk = pc.binary_join_element_wise("bench:spk", pc.cast(pa.array(np.arange(n) // SPEAKER_ROWS), pa.string()), "")
    for name, col in (("id", ids), ("speaker", spk), ("split_group", spk)):
        t = t.set_column(t.schema.get_field_index(name), CLIP_SCHEMA.field(name), col)
    if not words:
        t = t.set_column(t.schema.get_field_index("words"), CLIP_SCHEMA.field("words"),
                         pa.array([[]] * n, CLIP_SCHEMA.field("words").type))
        t = t.set_column(t.schema.get_field_index("words_by"), CLIP_SCHEMA.field("words_by"),
                         pa.array([""] * n, pa.string()))
    assert t.schema.equals(CLIP_SCHEMA), t.schema
    return t.combine_chunks()


def write_catalog(run_dir: Path, fixtures: Path, episodes: int, shard_size: int, seed: int) -> Path:
    import yaml

    cat = {
        "name": f"bench-pools-{run_dir.name}", "seed": seed, "shard_size": shard_size,
        "splits": {"train": 0.8, "validation": 0.1, "test": 0.1},
        "cache_dir": "cache",
        "sources": {
            SOURCE: {"corpus": "librispeech", "root": str(fixtures), "options": {"subsets": ["dev-clean"]}},
            NOISE: {"corpus": "musan", "root": str(fixtures)},
        },
        "subtasks": {"asr_utterance": {"count": episodes, "pools": {"speech": SOURCE, "noise": NOISE}}},
    }
    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / "catalog.yaml"
    path.write_text(yaml.safe_dump(cat, sort_keys=False))
    return path


def source_cache_entry(catalog_path: Path):
    """(env, stage, key) of the catalog source's scan-stage cache entry, as the builder computes it."""
    from streamaudio.build.catalog import load_catalog
    from streamaudio.stages import BuildEnv, SourceState, ordered_stages
    from streamaudio.text.cache import content_key

    cat = load_catalog(catalog_path)
    env = BuildEnv(cache_dir=cat.cache_dir, work_dir=catalog_path.parent / "tmp", show_progress=False, use_ray=False)
    state = SourceState(name=SOURCE, spec=cat.sources[SOURCE])
    stages = [s for s in ordered_stages() if s.applies(state, env)]
    if [s.name for s in stages] != ["source"]:
        raise SystemExit(f"bench_pools: expected only the scan stage on source {SOURCE!r}, got {[s.name for s in stages]}")
    stage = stages[0]
    return env, stage, content_key(stage.name, stage.version, stage.cache_config(state, env), state.key)


# ------------------------------------------------------------ children
def child_prepare(args) -> dict:
    """Write the N-row pool as the scan stage's cached output (skipped when it is already there)."""
    from streamaudio.stages import SourceState, _cache_paths, _save

    n = args.n
    run_dir = Path(args.run_dir)
    cat_path = write_catalog(run_dir, Path(args.fixtures), args.episodes, args.shard_size, args.seed)
    env, stage, key = source_cache_entry(cat_path)
    table_path, meta_path = _cache_paths(env, stage.name, key)
    if meta_path.is_file() and table_path.is_file():
        meta = json.loads(meta_path.read_text())
        if meta["report"].get("bench") == {"rows": n, "words": args.words, "seed": 0}:
            return {"reused": True, "cache_key": key, "table_bytes": meta["report"].get("bench_bytes", 0)}
    t0 = time.perf_counter()
    base, with_words = base_rows(Path(args.fixtures), run_dir)
    table = make_pool(base, n, seed=0, words=args.words)
    t1 = time.perf_counter()
    from streamaudio.sources import get_adapter

    ad = get_adapter("librispeech")
    state = SourceState(name=SOURCE, spec=None, table=table, kind=ad.kind,
                        provides=set(ad.provides) | ({"words"} if args.words else set()),
                        report={"corpus": ad.corpus, "root": str(args.fixtures), "seen": n, "license": ad.license,
                                "bench": {"rows": n, "words": args.words, "seed": 0}, "bench_bytes": table.nbytes})
    _save(env, stage, key, state, [])
    t2 = time.perf_counter()
    return {"reused": False, "cache_key": key, "base_clips": base.num_rows, "base_with_words": with_words,
            "make_s": t1 - t0, "write_s": t2 - t1, "table_bytes": table.nbytes,
            "parquet_bytes": table_path.stat().st_size}


def child_build(args) -> dict:
    import numpy as np
    import ray

    from streamaudio.build import builder as B
    from streamaudio.build.catalog import load_catalog
    from streamaudio.plan import PoolData

    run_dir = Path(args.run_dir)
    cat = load_catalog(run_dir / "catalog.yaml")
    out = run_dir / "out"
    for d in (out, B.work_dir(out)):
        shutil.rmtree(d, ignore_errors=True)

    rec: dict = {"split_table": [], "pool_build": [], "pool_put": [], "phases": {}}

    real_split = B.split_table

    def timed_split(table, fractions):
        t = time.perf_counter()
        res = real_split(table, fractions)
        rec["split_table"].append({"rows": table.num_rows, "bytes": table.nbytes, "s": time.perf_counter() - t,
                                   "split_rows": {k: v.num_rows for k, v in res.items()}})
        return res

    class TimedPoolData:
        @staticmethod
        def build(name, table):
            t = time.perf_counter()
            data = PoolData.build(name, table)
            rec["pool_build"].append({"name": name, "rows": table.num_rows, "bytes": data.table.nbytes,
                                      "s": time.perf_counter() - t})
            return data

    def timed(name, fn):
        def run(*a, **kw):
            t = time.perf_counter()
            try:
                return fn(*a, **kw)
            finally:
                rec["phases"][name] = rec["phases"].get(name, 0.0) + time.perf_counter() - t
        return run

    class TimedBuilder(B.Builder):
        def _sources(self):
            self.states = timed("sources", super()._sources)()
            return self.states

        def _tables(self, *a):
            return timed("tables", super()._tables)(*a)

        def _tasks(self, *a):
            return timed("tasks", super()._tasks)(*a)

        def _finish(self, *a):
            return timed("finish", super()._finish)(*a)

        def _run_tasks(self, *a, **kw):
            real_put = ray.put

            def timed_put(value, *pa, **pkw):
                t = time.perf_counter()
                ref = real_put(value, *pa, **pkw)
                s = time.perf_counter() - t
                if isinstance(value, PoolData):
                    size = ray.experimental.get_object_locations([ref]).get(ref, {}).get("object_size")
                    rec["pool_put"].append({"name": value.name, "s": s, "object_bytes": size})
                    if value.name == f"{SOURCE}/train":
                        rec["train_ref"] = ref  # the probe fetches the very object the shards got
                return ref

            ray.put = timed_put
            try:
                self.summaries = timed("run_tasks", super()._run_tasks)(*a, **kw)
            finally:
                ray.put = real_put
            return self.summaries

    real_stages = B.run_source_stages

    def timed_stages(state, env):
        t = time.perf_counter()
        res = real_stages(state, env)
        rec["phases"][f"source:{state.name}"] = time.perf_counter() - t
        return res

    B.split_table = timed_split
    B.run_source_stages = timed_stages
    B.PoolData = TimedPoolData
    B._run_shard_remote = _timed_shard

    sampler = Sampler(args.interval, args.uss_interval)
    load0 = os.getloadavg()
    sampler.start()
    t0 = time.perf_counter()
    builder = TimedBuilder(cat, out, num_cpus=args.num_cpus, show_progress=False, resume=False)
    build = builder.run()
    build_s = time.perf_counter() - t0
    B.split_table, B.PoolData = real_split, PoolData

    inp = build["inputs"][SOURCE]
    if inp.get("stages_reused") != ["source"] or inp.get("used") != args.n:
        raise SystemExit(f"bench_pools: the build did not load the {args.n}-row pool from the stage cache: {inp}")

    shards = [s["_bench"] for s in builder.summaries]
    walls = np.array([s["wall_s"] for s in shards])
    eps = sum(s["episodes"] for s in shards)

    # the probe: fresh worker processes, the train pool only
    sampler.phase = "probe"
    ref = rec.pop("train_ref")
    probe = ray.remote(num_cpus=1, max_calls=1)(_probe)
    # a runtime_env of its own per call: Ray starts a new worker process for each (an idle
    # shard worker would otherwise take the task, with the pool's pages already mapped)
    probes = [ray.get(probe.options(runtime_env={"env_vars": {"BENCH_POOLS_PROBE": str(k)}})
                      .remote([ref], args.draws, k)) for k in range(args.probes)]
    shard_pids = {s["pid"] for s in shards}
    for p in probes:
        p["fresh"] = p["pid"] not in shard_pids and p["uss_start"] < 200 * MB
    sampler.phase = "end"
    time.sleep(args.interval * 2)
    sampler.stop()
    ray.shutdown()
    if not args.keep:
        for d in (out, B.work_dir(out)):
            shutil.rmtree(d, ignore_errors=True)

    med = {k: float(np.median([p[k] for p in probes])) for k in probes[0] if k not in ("rows", "pid", "fresh")}
    start, end = min(s["start"] for s in shards), max(s["end"] for s in shards)
    cpus = np.array([s["cpu_s"] for s in shards])
    return {
        # the builder drops a source's table once it is split: its size was taken then
        "rows": args.n, "pool_bytes": next(r["bytes"] for r in rec["split_table"] if r["rows"] == args.n),
        "build_s": build_s, "phases": rec["phases"],
        "split_table": rec["split_table"], "pool_build": rec["pool_build"], "pool_put": rec["pool_put"],
        "episodes": build["episodes"], "shards": len(shards), "shard_episodes": eps,
        "shard_phase_s": end - start,
        "shard_cpu_median_s": float(np.median(cpus)), "shard_cpu_p95_s": float(np.percentile(cpus, 95)),
        "machine_busy_cores_in_shard_phase": sampler.busy(start, end),
        "shard_cpu_cores_in_shard_phase": float(cpus.sum()) / (end - start),
        "shard_median_s": float(np.median(walls)), "shard_p95_s": float(np.percentile(walls, 95)),
        "shard_max_s": float(walls.max()), "shard_cpu_s": sum(s["cpu_s"] for s in shards),
        "ms_per_episode": 1e3 * float(walls.sum()) / max(1, eps),
        "shard_walls": [round(w, 3) for w in walls.tolist()],
        "shard_worker_uss_end_max": max(s["mem_end"]["uss"] for s in shards if s["mem_end"]),
        "hours": build["hours"],
        "memory_build": sampler.summary("build"), "memory_probe": sampler.summary("probe"),
        "sampler": {"samples": sampler.samples, "uss_samples": sampler.uss_samples, "interval_s": args.interval,
                    "uss_interval_s": args.uss_interval, "cpu_s": sampler.cpu_s},
        "load_at_start": load0,
        "probe_median": med, "probe_rows": probes[0]["rows"], "probes": probes,
        "probes_fresh": sum(p["fresh"] for p in probes),
    }


def run_child(kind: str, args, n: int, run_dir: Path) -> dict:
    res = run_dir / f"{kind}.json"
    res.unlink(missing_ok=True)
    cmd = [sys.executable, str(Path(__file__).resolve()), "--_child", kind, "--_n", str(n), "--_run-dir", str(run_dir),
           "--_result", str(res), "--episodes", str(args.episodes), "--shard-size", str(args.shard_size),
           "--num-cpus", str(args.num_cpus), "--fixtures", str(args.fixtures), "--interval", str(args.interval), "--uss-interval", str(args.uss_interval),
           "--draws", str(args.draws), "--probes", str(args.probes), "--seed", str(args.seed)]
    cmd += [] if args.words else ["--no-words"]
    cmd += ["--keep"] if args.keep else []
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}
    subprocess.run(cmd, check=True, env=env, cwd=REPO)
    return json.loads(res.read_text())


# ------------------------------------------------------------ report
def machine() -> dict:
    cpu = "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    import pyarrow
    import ray

    ram = 0
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                ram = int(line.split()[1]) * 1024
    return {"cpu": cpu, "cores": os.cpu_count(), "ram_gib": round(ram / (1 << 30), 1),
            "python": platform.python_version(), "ray": ray.__version__, "pyarrow": pyarrow.__version__,
            "kernel": platform.release(), "date": datetime.date.today().isoformat(),
            "load_at_start": os.getloadavg()}


def mem_available() -> int:
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    return 0


def fmt_rows(n: int) -> str:
    return f"{n / 1e6:g}M" if n >= 1_000_000 else f"{n / 1e3:g}k" if n >= 1000 else str(n)


def table(results: list[dict]) -> str:
    cols = [fmt_rows(r["build"]["rows"]) for r in results]

    def mb(x):
        return f"{x / MB:,.0f}"

    def speech_split(b):
        return next(s for s in b["split_table"] if s["rows"] == b["rows"])

    rows = [
        ("**pool**", None),
        ("speech pool rows (train / validation / test)",
         lambda b: f"{b['rows']:,} ({' / '.join(f'{v:,}' for v in speech_split(b)['split_rows'].values())})"),
        ("speech pool in Arrow (MB)", lambda b: mb(b["pool_bytes"])),
        ("speech pools in the object store, 3 splits (MB)",
         lambda b: mb(sum(x["object_bytes"] or 0 for x in b["pool_put"] if x["name"].startswith(SOURCE + "/")))),
        ("**driver** (s)", None),
        ("speech source stages (a stage-cache load)", lambda b: f"{b['phases'][f'source:{SOURCE}']:.2f}"),
        ("`split_table`, speech pool", lambda b: f"{speech_split(b)['s']:.2f}"),
        ("`PoolData.build`, all pools", lambda b: f"{sum(x['s'] for x in b['pool_build']):.2f}"),
        ("`ray.put`, all pools", lambda b: f"{sum(x['s'] for x in b['pool_put']):.2f}"),
        ("whole build (`Builder.run`, Ray start included)", lambda b: f"{b['build_s']:.1f}"),
        ("**shards**", None),
        ("shards / episodes written / rejected",
         lambda b: f"{b['shards']} / {b['episodes']['written']:,} / {b['episodes']['rejected']}"),
        ("shard phase, first start to last end (s)", lambda b: f"{b['shard_phase_s']:.1f}"),
        ("per shard, wall: median / p95 (s)", lambda b: f"{b['shard_median_s']:.2f} / {b['shard_p95_s']:.2f}"),
        ("per shard, CPU: median / p95 (s)", lambda b: f"{b['shard_cpu_median_s']:.2f} / {b['shard_cpu_p95_s']:.2f}"),
        ("all shards' CPU / episodes (ms)", lambda b: f"{1e3 * b['shard_cpu_s'] / max(1, b['shard_episodes']):.1f}"),
        ("cores busy in the shard phase: shards / whole machine",
         lambda b: f"{b['shard_cpu_cores_in_shard_phase']:.2f} / {b['machine_busy_cores_in_shard_phase']:.2f}"),
        ("**peak memory during the build** (MB)", None),
        ("worker USS, max over workers", lambda b: mb(b["memory_build"]["worker_peak_uss"])),
        ("worker anonymous memory (RssAnon), max", lambda b: mb(b["memory_build"]["worker_peak_anon"])),
        ("worker RSS, max (object-store pages it mapped included)", lambda b: mb(b["memory_build"]["worker_peak_rss"])),
        ("driver anonymous memory (RssAnon)", lambda b: mb(b["memory_build"]["driver_peak_anon"])),
        ("driver USS (object-store pages it wrote included)", lambda b: mb(b["memory_build"]["driver_peak_uss"])),
        ("driver RSS", lambda b: mb(b["memory_build"]["driver_peak_rss"])),
        ("**probe: train pool in a new worker process** (ms, median)", None),
        ("first `ray.get` / a second `ray.get`",
         lambda b: f"{b['probe_median']['get_ms']:.1f} / {b['probe_median']['get2_ms']:.2f}"),
        ("`Pool()`", lambda b: f"{b['probe_median']['pool_ms']:.3f}"),
        ("1,000 × `choice`", lambda b: f"{b['probe_median']['choice_ms']:.0f}"),
        ("200 × `sample(k=5)`", lambda b: f"{b['probe_median']['sample_ms']:.0f}"),
        ("1,000 × `choice(where=...)`", lambda b: f"{b['probe_median']['where_ms']:.0f}"),
        ("worker USS / RSS after the draws (MB)",
         lambda b: f"{mb(b['probe_median']['uss_end'])} / {mb(b['probe_median']['rss_end'])}"),
    ]
    out = ["| | " + " | ".join(cols) + " |", "|---|" + "---:|" * len(cols)]
    for label, fn in rows:
        out.append(f"| {label} | " + " | ".join("" if fn is None else fn(r["build"]) for r in results) + " |")
    return "\n".join(out)


def checks(results: list[dict], limit_mb: float) -> list[str]:
    lines = []
    for r in results:
        b = r["build"]
        m = b["memory_build"]
        peak = m["worker_peak_uss"]
        lines.append(f"- {fmt_rows(b['rows'])} rows: peak worker USS {peak / MB:,.0f} MB, "
                     f"{'under' if peak < limit_mb * MB else 'NOT under'} {limit_mb:,.0f} MB "
                     f"(highest in `{m['worker_peak_uss_title']}`; {m['workers_seen']} Ray worker processes sampled)")
    if len(results) >= 2:
        a, z = results[0]["build"], results[-1]["build"]
        ratio = z["rows"] / a["rows"]

        def x(k, fmt=".2f", d=None):
            d = d or (lambda b: b[k])
            return f"{d(z):{fmt}} vs {d(a):{fmt}} (×{d(z) / d(a):.2f})"

        lines.append(f"- {fmt_rows(z['rows'])} vs {fmt_rows(a['rows'])} rows ({ratio:,.0f}× the pool): "
                     f"median shard CPU {x('shard_cpu_median_s')} s; median shard wall {x('shard_median_s')} s; "
                     f"probe: second `ray.get` {x(None, '.2f', lambda b: b['probe_median']['get2_ms'])} ms, "
                     f"1,000 draws {x(None, '.0f', lambda b: b['probe_median']['choice_ms'])} ms")
    for r in results:
        b = r["build"]
        if b["probes_fresh"] != len(b["probes"]):
            lines.append(f"- note: {fmt_rows(b['rows'])}: only {b['probes_fresh']} of {len(b['probes'])} probes ran in a "
                         "new worker process")
        busy, ours = b["machine_busy_cores_in_shard_phase"], b["shard_cpu_cores_in_shard_phase"]
        if busy - ours > 0.5:
            lines.append(f"- note: {fmt_rows(b['rows'])}: the machine ran {busy:.2f} cores busy in the shard phase, the "
                         f"shards {ours:.2f}: something else (Ray, the sampler, another process) took "
                         f"{busy - ours:.2f}; compare CPU, not wall, figures")
    return lines


# ------------------------------------------------------------ main
def parse() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", default="50000,5000000", help="pool sizes, comma-separated (default 50000,5000000)")
    ap.add_argument("--episodes", type=int, default=2000, help="asr_utterance episodes per build (default 2000)")
    ap.add_argument("--shard-size", type=int, default=50)
    ap.add_argument("--num-cpus", type=int, default=2, help="Ray CPUs (default 2)")
    ap.add_argument("--quick", action="store_true", help="20k and 200k rows, 100 episodes, shards of 20")
    ap.add_argument("--work", type=Path, default=REPO / "build" / "bench-pools",
                    help="fixtures, stage caches and the builds' outputs (default build/bench-pools)")
    ap.add_argument("--fixtures", type=Path, default=None, help="default: WORK/fixtures (written if missing)")
    ap.add_argument("--no-words", dest="words", action="store_false",
                    help="pool rows without word timings (smaller rows)")
    ap.add_argument("--interval", type=float, default=0.2, help="RSS / anonymous memory sampling interval (s)")
    ap.add_argument("--uss-interval", type=float, default=1.0, help="USS (smaps_rollup) sampling interval (s)")
    ap.add_argument("--draws", type=int, default=1000, help="rows drawn by the probe")
    ap.add_argument("--probes", type=int, default=3, help="probe runs per pool size, each in a fresh worker")
    ap.add_argument("--uss-limit-mb", type=float, default=1024)
    ap.add_argument("--seed", type=int, default=1234, help="catalog seed")
    ap.add_argument("--keep", action="store_true", help="keep the built datasets")
    ap.add_argument("--force", action="store_true", help="run even when free memory looks too small")
    ap.add_argument("--json", type=Path, default=None, help="also write the raw results here")
    ap.add_argument("--_child", choices=["prepare", "build"], help=argparse.SUPPRESS)
    ap.add_argument("--_n", dest="n", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--_run-dir", dest="run_dir", help=argparse.SUPPRESS)
    ap.add_argument("--_result", dest="result", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.quick:
        args.rows, args.episodes, args.shard_size = "20000,200000", 100, 20
    args.work = args.work.resolve()
    args.fixtures = (args.fixtures or args.work / "fixtures").resolve()
    return args


def main() -> None:
    args = parse()
    if args._child:
        res = child_prepare(args) if args._child == "prepare" else child_build(args)
        Path(args.result).write_text(json.dumps(res, default=str))
        return
    info = machine()
    if not (args.fixtures / "_truth" / "faults.json").exists():
        from streamaudio.fixtures import write_all

        write_all(args.fixtures)
    results = []
    for n in [int(x) for x in args.rows.split(",")]:
        run_dir = args.work / f"rows-{n}"
        print(f"[bench_pools] {n:,} rows: preparing the pool ...", file=sys.stderr, flush=True)
        prep = run_child("prepare", args, n, run_dir)
        need = DRIVER_COPIES * prep["table_bytes"] + (2 << 30)
        if need > mem_available() and not args.force:
            raise SystemExit(f"bench_pools: a {n:,}-row pool ({prep['table_bytes'] / MB:,.0f} MB in Arrow) needs about "
                             f"{need / (1 << 30):.1f} GiB free (the driver holds ~{DRIVER_COPIES} copies of it at its "
                             f"peak); {mem_available() / (1 << 30):.1f} GiB available. --force runs it anyway.")
        print(f"[bench_pools] {n:,} rows: building {args.episodes} episodes ...", file=sys.stderr, flush=True)
        results.append({"prepare": prep, "build": run_child("build", args, n, run_dir)})
    if args.json:
        args.json.write_text(json.dumps({"machine": info, "args": {k: str(v) for k, v in vars(args).items()},
                                         "results": results}, indent=1, default=str))
    mode = "quick" if args.quick else "full"
    print(f"## Clip pools: {args.episodes:,}-episode `asr_utterance` builds ({mode} mode)\n")
    print(table(results))
    print()
    print("\n".join(checks(results, args.uss_limit_mb)))
    print()
    for r in results:
        p = r["prepare"]
        if not p.get("reused"):
            print(f"- pool of {fmt_rows(r['build']['rows'])} rows made in {p['make_s']:.1f} s and written to the stage "
                  f"cache in {p['write_s']:.1f} s ({p['parquet_bytes'] / MB:,.0f} MB Parquet); not part of the build")
    s = results[-1]["build"]["sampler"]
    print(f"- memory: per process, RSS / RssAnon from /proc/<pid>/status every {s['interval_s']} s and USS "
          f"(Private_Clean + Private_Dirty of /proc/<pid>/smaps_rollup) every {s['uss_interval_s']} s, for the driver "
          f"and every Ray worker of the build's own Ray node (the sampler thread used {s['cpu_s']:.1f} s CPU in the "
          f"{fmt_rows(results[-1]['build']['rows'])} run; RssAnon, sampled more often, can catch a short peak that USS "
          f"misses). Object-store pages count as private to the only process "
          f"that maps them: the driver wrote them, so they are in its USS and, once it maps them too, out of a worker's.")
    print(f"- the pool: {results[0]['prepare'].get('base_clips', 48)} fixture LibriSpeech clips (the real adapter's "
          f"scan{', with ground-truth word timings' if args.words else '; no word timings: --no-words'}) drawn with "
          f"replacement into N rows with unique ids and N/{SPEAKER_ROWS} speakers (= split groups), every row a real "
          f"audio file; written as the scan stage's cached output, so the build loads it like a rescanned corpus. "
          f"Noise: the fixture MUSAN stand-in, scanned for real. {args.episodes:,} episodes, shards of "
          f"{args.shard_size}, splits 0.8/0.1/0.1, `num_cpus={args.num_cpus}`; per-shard times from a wrapper around "
          f"the builder's remote function; the probe's draws use `Pool` as recipes do.")
    loads = ", ".join(f"{fmt_rows(r['build']['rows'])} {r['build']['load_at_start'][0]:.2f}" for r in results)
    print(f"- load average when each build started: {loads}")
    print()
    print(f"Machine: {info['cpu']}, {info['cores']} cores, {info['ram_gib']} GiB RAM, Python {info['python']}, "
          f"Ray {info['ray']}, pyarrow {info['pyarrow']}, Linux {info['kernel']}, {info['date']} "
          f"(load average at start {info['load_at_start'][0]:.2f}).")


if __name__ == "__main__":
    main()
