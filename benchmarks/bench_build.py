"""Whole-build cost: CPU of every process in the tree (the driver, Ray's GCS and raylet,
every worker, every child they fork) per second of episode audio, for the demo catalog
scaled to N episodes, and where the wall time goes.

The build runs as a child of this process, which makes itself a *child subreaper*
(prctl PR_SET_CHILD_SUBREAPER): Ray processes orphaned at shutdown are re-parented here
and reaped, so `getrusage(RUSAGE_CHILDREN)` afterwards holds the CPU time of the whole
tree, short-lived processes included (a forked espeak-ng child is reaped by its worker,
whose own time, children included, comes here when it is reaped).

Run: `.venv/bin/python benchmarks/bench_build.py [--episodes 40,400] [--cold]`
(`--cold`: an empty cache folder, so scans, TTS, alignment and the ASR check run too;
default: the caches of a first, unmeasured build are reused, as in a rebuild).
"""
from __future__ import annotations

import argparse
import ctypes
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
PR_SET_CHILD_SUBREAPER = 36


def catalog(fixtures: Path, episodes: int, where: Path) -> Path:
    cat = yaml.safe_load((REPO / "manifests" / "demo.yaml").read_text())
    n = len(cat["subtasks"])
    for spec in cat["subtasks"].values():
        spec["count"] = max(1, episodes // n)
    cat["shard_size"] = 16
    for src in cat["sources"].values():
        src["root"] = str(fixtures / Path(src["root"]).relative_to("../build/fixtures"))
    path = where / f"demo-{episodes}.yaml"
    path.write_text(yaml.safe_dump(cat))
    return path


def reap_all(deadline_s: float = 20.0) -> None:
    """Wait for every descendant (orphans included: we are their subreaper)."""
    end = time.time() + deadline_s
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            if time.time() > end:  # still running: left alone, and the figure misses their tail
                print("bench_build: some descendants did not exit in time", file=sys.stderr)
                return
            time.sleep(0.05)


def measured_build(cat: Path, out: Path, cache: Path, num_cpus: int) -> dict:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "streamaudio", "build", "--catalog", str(cat), "--out", str(out),
                           "--cache-dir", str(cache), "--num-cpus", str(num_cpus), "--no-progress", "--no-resume"],
                          capture_output=True, text=True)
    wall = time.perf_counter() - t0
    reap_all()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise SystemExit(f"build failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    b = json.loads((out / "build.json").read_text())
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    audio_s = b["hours"] * 3600
    return {"episodes": b["episodes"]["written"], "audio_s": round(audio_s, 1), "wall_s": round(wall, 2),
            "tree_cpu_s": round(cpu, 2), "x_realtime_per_tree_cpu_s": round(audio_s / cpu, 1),
            "build_elapsed_s": b["run"]["elapsed_s"], "stages_reused": {k: v.get("stages_reused") for k, v in b["inputs"].items()}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--episodes", default="40,400")
    ap.add_argument("--num-cpus", type=int, default=2)
    ap.add_argument("--cold", action="store_true", help="measure with an empty cache folder")
    ap.add_argument("--work", type=Path, default=REPO / "build" / "bench-build")
    args = ap.parse_args()
    ctypes.CDLL(None).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    from streamaudio.fixtures import write_all

    fixtures = args.work / "fixtures"
    if not (fixtures / "_truth" / "faults.json").exists():
        write_all(fixtures)
    rows = []
    for n in [int(x) for x in args.episodes.split(",")]:
        cat = catalog(fixtures, n, args.work)
        cache = args.work / f"cache-{n}"
        shutil.rmtree(cache, ignore_errors=True)
        if not args.cold:  # a first build fills the caches; the measured one is a rebuild
            measured_build(cat, args.work / f"warmup-{n}", cache, args.num_cpus)
        res = measured_build(cat, args.work / f"out-{n}", cache, args.num_cpus)
        res["caches"] = "cold" if args.cold else "warm"
        rows.append(res)
        print(json.dumps(res), flush=True)
    report = {"machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
              "num_cpus": args.num_cpus, "results": rows}
    (REPO / "build" / "bench").mkdir(parents=True, exist_ok=True)
    (REPO / "build" / "bench" / f"build-{'cold' if args.cold else 'warm'}.json").write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
