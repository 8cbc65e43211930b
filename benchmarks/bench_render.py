"""Render throughput: episode-audio seconds per CPU-second on one core, for the
render + label + write path (planning excluded: it is pure Python over rows and
not where time goes), and peak RSS.

Run with `make bench`. Uses the offline fixtures (written to build/fixtures if
missing). One process, one core: the number is per core by construction.
"""
from __future__ import annotations

import argparse
import io
import json
import platform
import resource
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from streamaudio.fixtures import load_voices, write_all
from streamaudio.label import episode_violations, label_turns
from streamaudio.plan import PlanContext, Pool, episode_seed, load_recipes
from streamaudio.render import render
from streamaudio.shards import shard_schema, write_parquet
from streamaudio.sources import get_adapter, write_manifest
from streamaudio.spoken import pick_voice, speak_row

REPO = Path(__file__).resolve().parents[1]


def pools(fixtures: Path, work: Path) -> dict[str, list[dict]]:
    out = {}
    for name, corpus, sub in [("speech", "librispeech", ""), ("sound", "audioset", ""), ("noise", "musan", ""),
                              ("text", "ultrachat", "ultrachat")]:
        res = write_manifest(get_adapter(corpus), fixtures / sub, work / f"{name}.parquet")
        out[name] = pq.read_table(res.path).to_pylist()
    voices = load_voices()
    out["spoken"] = [speak_row(r, pick_voice(voices, r["split_group"]), work / "tts") for r in out["text"]]
    return out


MAPPING = {"asr_utterance": {"speech": "speech", "noise": "noise"},
           "proactive_household": {"events": "sound", "noise": "noise"},
           "chat_single_turn": {"speech": "spoken", "noise": "noise"}}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--episodes", type=int, default=40, help="episodes per recipe")
    ap.add_argument("--fixtures", type=Path, default=REPO / "build" / "fixtures")
    ap.add_argument("--out", type=Path, default=REPO / "build" / "bench")
    ap.add_argument("--repeats", type=int, default=5, help="timed passes per recipe; the median is reported")
    args = ap.parse_args()
    if not (args.fixtures / "_truth" / "faults.json").exists():
        write_all(args.fixtures)
    args.out.mkdir(parents=True, exist_ok=True)
    p = pools(args.fixtures, args.out)
    recipes = load_recipes()
    shard_schema()  # one-off per worker process (imports `datasets`); not a per-episode cost
    results = {}
    for st, mapping in MAPPING.items():
        recipe = recipes[st]
        tables = recipe.load_tables()
        plans = []
        for i in range(args.episodes):
            eid = f"{st}-bench-{i:06d}"
            ctx = PlanContext(episode_id=eid, subtask=st, split="train", rng=np.random.default_rng(episode_seed(1, eid)),
                              pools={k: Pool(k, p[v]) for k, v in mapping.items()}, tables=tables)
            plans.append((eid, recipe.plan(ctx)))
        passes = [_timed_pass(recipe, st, plans) for _ in range(args.repeats)]
        passes.sort(key=lambda p: sum(p[0].values()))
        t, audio_s, n_rows = passes[len(passes) // 2]  # the median pass
        cpu = sum(t.values())
        results[st] = {"episodes": n_rows, "audio_s": round(audio_s, 1), "cpu_s": round(cpu, 3),
                       "x_realtime_per_core": round(audio_s / cpu, 1),
                       "x_realtime_range": [round(audio_s / sum(p[0].values()), 1) for p in (passes[-1], passes[0])],
                       "cpu_share": {k: round(v / cpu, 3) for k, v in t.items()}}
    total_audio = sum(r["audio_s"] for r in results.values())
    total_cpu = sum(r["cpu_s"] for r in results.values())
    report = {
        "machine": f"{platform.machine()}, {platform.processor() or 'cpu'}, Python {platform.python_version()}",
        "cpu_model": _cpu_model(),
        "repeats": args.repeats,
        "per_recipe": results,
        "total": {"audio_s": round(total_audio, 1), "cpu_s": round(total_cpu, 3),
                  "x_realtime_per_core": round(total_audio / total_cpu, 1)},
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }
    (args.out / "render.json").write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


def _timed_pass(recipe, st, plans):
    """Render, label and write every planned episode once; CPU seconds per step."""
    t = {"render": 0.0, "label": 0.0, "write": 0.0}
    audio_s = 0.0
    rows = []
    for eid, plan in plans:
        c0 = time.process_time()
        r = render(plan)
        c1 = time.process_time()
        turns, labels = label_turns(plan.turns, r.duration_s)
        row = {"id": eid, "ability": recipe.ability, "subtask": st, "split": "train", "language": plan.language,
               "system_prompt": plan.system_prompt, "audio": {"bytes": r.flac, "path": f"{eid}.flac"},
               "sample_rate": 16000, "duration_s": r.duration_s, "chunk_s": 0.4, "segments": r.segments,
               "turns": turns, "chunk_labels": labels,
               "provenance": {"toolkit_version": "bench", "recipe": st, "recipe_version": recipe.version, "seed": 1,
                              "text_writer": "", "tts": "", "aligner": ""}}
        assert not episode_violations(row)
        c2 = time.process_time()
        t["render"] += c1 - c0
        t["label"] += c2 - c1
        audio_s += r.duration_s
        rows.append(row)
    c0 = time.process_time()
    buf = io.BytesIO()
    write_parquet(pa.Table.from_pylist(rows, schema=shard_schema()), buf)
    t["write"] = time.process_time() - c0
    return t, audio_s, len(rows)


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


if __name__ == "__main__":
    main()
