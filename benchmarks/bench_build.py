"""Whole-build cost: CPU of every process in the tree (the driver, Ray's GCS and raylet,
every worker, every child they fork) per second of episode audio, for the demo catalog
scaled to N episodes, and where the wall time goes.

The build runs as a child of this process, which makes itself a *child subreaper*
(prctl PR_SET_CHILD_SUBREAPER): Ray processes orphaned at shutdown are re-parented here
and reaped, so `getrusage(RUSAGE_CHILDREN)` afterwards holds the CPU time of the whole
tree, short-lived processes included (a forked espeak-ng child is reaped by its worker,
whose own time, children included, comes here when it is reaped).

Run: `.venv/bin/python benchmarks/bench_build.py [--episodes 40,400] [--cold] [--repeats 3]`
(`--cold`: an empty cache folder, so scans, TTS, alignment and the ASR check run too;
default: the caches of a first, unmeasured build are reused, as in a rebuild). Each result
says how much CPU the rest of the machine used meanwhile (`other_cpu_s`): on a shared
machine the same build costs measurably more CPU beside other work, so measure on a quiet
one, or with `--repeats` and read the spread.
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
    from streamaudio.fixtures.pools import point_at_fixtures

    cat = yaml.safe_load((REPO / "manifests" / "demo.yaml").read_text())
    n = len(cat["subtasks"])
    for spec in cat["subtasks"].values():
        spec["count"] = max(1, episodes // n)
    cat["shard_size"] = 16
    point_at_fixtures(cat, fixtures)
    path = where / f"demo-{episodes}.yaml"
    path.write_text(yaml.safe_dump(cat))
    return path


def _parents() -> dict[int, int]:
    out = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                stat = open(f"/proc/{d}/stat").read()
            except OSError:
                continue
            out[int(d)] = int(stat[stat.rindex(")") + 2:].split()[1])
    return out


def descendants(root: int) -> list[int]:
    parents = _parents()
    out, todo = [], [root]
    while todo:
        p = todo.pop()
        kids = [c for c, pp in parents.items() if pp == p]
        out += kids
        todo += kids
    return out


def reap_all(deadline_s: float = 60.0) -> None:
    """Wait until no descendant is left, reaping each (orphans come to us: we are their
    subreaper). Only then does RUSAGE_CHILDREN hold the whole tree: a Ray worker may still be
    running, a child of its raylet, when the build's own process has already exited."""
    end = time.time() + deadline_s
    me = os.getpid()
    while True:
        try:
            while os.waitpid(-1, os.WNOHANG)[0] > 0:
                pass
        except ChildProcessError:
            pass
        if not descendants(me):
            return
        if time.time() > end:
            raise SystemExit(f"bench_build: descendants still running after {deadline_s} s: {descendants(me)}")
        time.sleep(0.05)


class Sampler:
    """CPU per process name (utime + stime, last seen), for the breakdown only."""

    def __init__(self):
        import threading

        self.tck = os.sysconf("SC_CLK_TCK")
        self.seen: dict[int, tuple[float, str]] = {}
        self.stop = False
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self):
        me = os.getpid()
        while not self.stop:
            for pid in descendants(me):
                try:
                    rest = open(f"/proc/{pid}/stat").read()
                    comm = open(f"/proc/{pid}/cmdline", "rb").read().split(b"\0")
                except OSError:
                    continue
                fields = rest[rest.rindex(")") + 2:].split()
                cpu = (int(fields[11]) + int(fields[12])) / self.tck
                name = _group(comm)
                if name == "?" and pid in self.seen:  # a zombie has no command line: keep its name
                    name = self.seen[pid][1]
                self.seen[pid] = (max(cpu, self.seen.get(pid, (0.0, ""))[0]), name)
            time.sleep(0.02)

    def groups(self) -> dict[str, dict]:
        out: dict[str, dict] = {}
        for cpu, name in self.seen.values():
            g = out.setdefault(name, {"processes": 0, "cpu_s": 0.0})
            g["processes"] += 1
            g["cpu_s"] = round(g["cpu_s"] + cpu, 2)
        return dict(sorted(out.items(), key=lambda kv: -kv[1]["cpu_s"]))

    def total(self) -> float:
        return round(sum(cpu for cpu, _ in self.seen.values()), 2)


def _group(argv: list[bytes]) -> str:
    a = [x.decode(errors="replace") for x in argv if x]
    text = " ".join(a)
    if "streamaudio" in text and "build" in text:
        return "driver (streamaudio build)"
    if a and a[0].startswith("ray::"):
        return "Ray workers" if a[0] in ("ray::IDLE", "ray::run_shard_task") or "shard" in a[0] else a[0]
    for key in ("gcs_server", "raylet", "monitor.py", "log_monitor.py", "dashboard.py"):
        if key in text:
            return key
    return a[0].rsplit("/", 1)[-1] if a else "?"


def machine_busy_s() -> float:
    """CPU seconds every process on the machine has used since boot (/proc/stat)."""
    fields = open("/proc/stat").readline().split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(x) for x in fields[:8])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def measured_build(cat: Path, out: Path, cache: Path, num_cpus: int) -> dict:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    sampler = Sampler()
    sampler.thread.start()
    busy0 = machine_busy_s()
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "streamaudio", "build", "--catalog", str(cat), "--out", str(out),
                           "--cache-dir", str(cache), "--num-cpus", str(num_cpus), "--no-progress", "--no-resume"],
                          capture_output=True, text=True)
    wall = time.perf_counter() - t0
    busy = machine_busy_s() - busy0
    reap_all()
    sampler.stop = True
    sampler.thread.join()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise SystemExit(f"build failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    b = json.loads((out / "build.json").read_text())
    reaped = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    # RUSAGE_CHILDREN misses what Ray's raylet started and never waited for (its workers, when it
    # is killed first); the sampled figure misses at most a sampling interval per process. The
    # larger of the two is reported.
    cpu = max(reaped, sampler.total())
    audio_s = b["hours"] * 3600
    return {"episodes": b["episodes"]["written"], "audio_s": round(audio_s, 1), "wall_s": round(wall, 2),
            "tree_cpu_s": round(cpu, 2), "tree_cpu_reaped_s": round(reaped, 2), "tree_cpu_sampled_s": sampler.total(),
            "x_realtime_per_tree_cpu_s": round(audio_s / cpu, 1),
            "build_elapsed_s": b["run"]["elapsed_s"], "cpu_by_process_sampled": sampler.groups(),
            # CPU the rest of the machine used meanwhile (this process's sampler included): on a
            # shared machine the tree's own CPU time grows with it (caches, memory bandwidth), so
            # a figure measured beside other work is a pessimistic one
            "other_cpu_s": round(max(0.0, busy - cpu), 2),
            "stages_reused": {k: v.get("stages_reused") for k, v in b["inputs"].items()}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--episodes", default="40,400")
    ap.add_argument("--num-cpus", type=int, default=2)
    ap.add_argument("--cold", action="store_true", help="measure with an empty cache folder")
    ap.add_argument("--work", type=Path, default=REPO / "build" / "bench-build")
    ap.add_argument("--repeats", type=int, default=1,
                    help="measured builds per size; the one of median tree CPU is reported, with every run's figure")
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
        if not args.cold:  # a first build fills the caches; the measured ones are rebuilds
            measured_build(cat, args.work / f"warmup-{n}", cache, args.num_cpus)
        runs = []
        for _ in range(max(1, args.repeats)):
            if args.cold:
                shutil.rmtree(cache, ignore_errors=True)
            runs.append(measured_build(cat, args.work / f"out-{n}", cache, args.num_cpus))
        runs.sort(key=lambda r: r["tree_cpu_s"])
        res = {**runs[len(runs) // 2], "caches": "cold" if args.cold else "warm",
               "runs": [{k: r[k] for k in ("x_realtime_per_tree_cpu_s", "tree_cpu_s", "other_cpu_s")} for r in runs]}
        rows.append(res)
        print(json.dumps(res), flush=True)
    report = {"machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
              "num_cpus": args.num_cpus, "results": rows}
    (REPO / "build" / "bench").mkdir(parents=True, exist_ok=True)
    (REPO / "build" / "bench" / f"build-{'cold' if args.cold else 'warm'}.json").write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
