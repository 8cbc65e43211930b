"""Scan throughput: clips (rows + rejects) read per CPU second on one core, per corpus
adapter, over each corpus's fixture scaled to at least --items items (default 20,000).

The scaled fixtures reuse a handful of audio files under new names (see each fixture
writer's `scale`), so what is measured is the adapter: listing, metadata parsing, audio
header probes, level probes and row building. Scans run serially in this process (the
build runs the same units as Ray tasks: per core, the rate is the same).

Run: `.venv/bin/python benchmarks/bench_scan.py [--items 20000] [--only librispeech,musan]`
"""
from __future__ import annotations

import argparse
import json
import math
import multiprocessing
import platform
import shutil
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    from streamaudio.fixtures import FIXTURES, write_all
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--items", type=int, default=20000)
    ap.add_argument("--only", default="", help="comma-separated corpora (default: every adapter)")
    ap.add_argument("--work", type=Path, default=REPO / "build" / "bench-scan")
    args = ap.parse_args()
    corpora = [c for c in FIXTURES.names() if not args.only or c in args.only.split(",")]
    results = {}
    for corpus in corpora:
        base = args.work / corpus
        shutil.rmtree(base, ignore_errors=True)
        small = write_all(base / "probe", only=[corpus])[corpus]
        scale = max(1, math.ceil(args.items / max(1, small["good"])))
        while True:  # a writer's items do not always grow exactly with its scale (dialogues, turns)
            shutil.rmtree(base / "big", ignore_errors=True)
            t0 = time.perf_counter()
            truth = write_all(base / "big", scale=scale, only=[corpus])[corpus]
            write_s = time.perf_counter() - t0
            if truth["good"] >= args.items:
                break
            scale = math.ceil(scale * args.items / max(1, truth["good"]) * 1.02)
        # The scan runs in a fresh process, so its peak RSS is the scan's alone (not the
        # fixture writer's, nor an earlier adapter's).
        with multiprocessing.get_context("spawn").Pool(1) as pool:
            scan = pool.apply(_scan, (corpus, str(base / "big" / truth["root"]), str(base / "manifest.parquet"),
                                      truth.get("options", {})))
        results[corpus] = {"scale": scale, **scan, "clips_per_cpu_s": round(scan["items_seen"] / scan["cpu_s"], 1),
                           "fixture_write_s": round(write_s, 1)}
        print(json.dumps({corpus: results[corpus]}), flush=True)
        shutil.rmtree(base, ignore_errors=True)
    report = {"machine": f"{platform.machine()}, Python {platform.python_version()}", "adapters": results}
    (REPO / "build" / "bench").mkdir(parents=True, exist_ok=True)
    (REPO / "build" / "bench" / "scan.json").write_text(json.dumps(report, indent=2) + "\n")


def _scan(corpus: str, root: str, out: str, options: dict) -> dict:
    from streamaudio.sources import get_adapter, write_manifest

    adapter = get_adapter(corpus)
    rss0 = _status_mib("VmHWM")
    anon_peak = [_status_mib("RssAnon")]
    done = threading.Event()

    def sample() -> None:  # RssAnon has no high-water mark of its own
        while not done.wait(0.05):
            anon_peak[0] = max(anon_peak[0], _status_mib("RssAnon"))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    c0, w0 = time.process_time(), time.perf_counter()
    res = write_manifest(adapter, Path(root), Path(out), options)
    cpu, wall = time.process_time() - c0, time.perf_counter() - w0
    done.set()
    sampler.join()
    return {"items_seen": res.seen, "used": res.used, "rejected": res.rejected, "cpu_s": round(cpu, 2),
            "wall_s": round(wall, 2), "rss_before_mib": rss0, "peak_rss_mib": _status_mib("VmHWM"),
            "peak_anon_rss_mib": max(anon_peak[0], _status_mib("RssAnon"))}


def _status_mib(field: str) -> float:
    """A memory figure of this process from /proc/self/status. VmHWM is its own high-water
    RSS (ru_maxrss would not do: Linux carries it over fork and exec, so a spawned child
    reports its parent's peak); it counts memory-mapped file pages too, which the kernel can
    drop, so RssAnon (sampled) says what the scan itself holds."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return round(int(line.split()[1]) / 1024, 1)
    return float("nan")


if __name__ == "__main__":
    main()
