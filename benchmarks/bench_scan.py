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
import platform
import resource
import shutil
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    from streamaudio.fixtures import FIXTURES, write_all
    from streamaudio.sources import get_adapter, write_manifest

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
        adapter = get_adapter(corpus)
        c0, w0 = time.process_time(), time.perf_counter()
        res = write_manifest(adapter, base / "big" / truth["root"], base / "manifest.parquet", truth.get("options", {}))
        cpu, wall = time.process_time() - c0, time.perf_counter() - w0
        results[corpus] = {"scale": scale, "items_seen": res.seen, "used": res.used, "rejected": res.rejected,
                           "cpu_s": round(cpu, 2), "clips_per_cpu_s": round(res.seen / cpu, 1),
                           "wall_s": round(wall, 2), "fixture_write_s": round(write_s, 1)}
        print(json.dumps({corpus: results[corpus]}), flush=True)
        shutil.rmtree(base, ignore_errors=True)
    report = {"machine": f"{platform.machine()}, Python {platform.python_version()}",
              "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1), "adapters": results}
    (REPO / "build" / "bench").mkdir(parents=True, exist_ok=True)
    (REPO / "build" / "bench" / "scan.json").write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
