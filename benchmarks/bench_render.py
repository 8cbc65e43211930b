"""Render throughput: episode-audio seconds per CPU-second on one core, for the
render + label + write path (planning excluded: it is pure Python over rows and
not where time goes), and peak RSS. Also where the time goes (a cProfile of one
pass, grouped) and what FLAC level 0 saves against libsndfile's default.

Run with `make bench`. Uses the offline fixtures (written to build/fixtures if
missing). One process, one core: the number is per core by construction.
"""
from __future__ import annotations

import argparse
from functools import partial
import io
import json
import platform
import resource
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import soundfile as sf

from streamaudio.build.shards import shard_schema, write_parquet
from streamaudio.fixtures import write_all
from streamaudio.fixtures.pools import fixture_pools, pool_for
from streamaudio.plan import PlanContext, Pool, episode_seed, load_recipes
from streamaudio.plan.store import plan_from_dict, plan_sha, plan_to_dict
from streamaudio.render.label import episode_violations, label_turns
from streamaudio.render.mix import render
from streamaudio.render.tfjp import DEFAULT_TFJP, TfjpSettings, silence_cut
from streamaudio.plan.tracks import NoiseTrackSettings, add_noise_tracks

REPO = Path(__file__).resolve().parents[1]


def recipe_pools(recipe, pools: dict[str, list[dict]], tfjp: bool = False) -> dict[str, Pool]:
    """Each pool of a recipe drawn from the fixture pool that fits it (as the conformance
    suite does); an optional pool no fixture gives is left out. With ``tfjp``, planners see
    rows as TFJP's silence_cut leaves them, as in a build."""
    out = {}
    cut = partial(silence_cut, limit_s=TfjpSettings().silence_cut_s) if tfjp else None
    for name, spec in recipe.pool_specs().items():
        try:
            out[name] = Pool(name, pools[pool_for(spec)], row_transform=cut)
        except LookupError:
            if not spec.optional:
                raise
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--episodes", type=int, default=40, help="episodes per recipe")
    ap.add_argument("--fixtures", type=Path, default=REPO / "build" / "fixtures")
    ap.add_argument("--out", type=Path, default=REPO / "build" / "bench")
    ap.add_argument("--repeats", type=int, default=5, help="timed passes per recipe; the median is reported")
    ap.add_argument("--recipe", action="append", help="only these sub-tasks (default: every registered recipe)")
    ap.add_argument("--tfjp", choices=["on", "off"], default="on",
                    help="TFJP on every foreground clip, and the demo's two noise tracks (a build's default: on)")
    args = ap.parse_args()
    if not (args.fixtures / "_truth" / "faults.json").exists():
        write_all(args.fixtures)
    args.out.mkdir(parents=True, exist_ok=True)
    p = fixture_pools(args.fixtures, args.out / "pools")
    recipes = load_recipes()
    subtasks = args.recipe or sorted(recipes)
    shard_schema()  # one-off per worker process (imports `datasets`); not a per-episode cost
    results = {}
    for st in subtasks:
        recipe = recipes[st]
        plans = _plans(recipe, p, args.episodes, "bench", 1, args.tfjp == "on")
        passes = [_timed_pass(recipe, st, plans) for _ in range(args.repeats)]
        passes.sort(key=lambda p: sum(p[0].values()))
        t, audio_s, n_rows = passes[len(passes) // 2]  # the median pass
        cpu = sum(t.values())
        results[st] = {"episodes": n_rows, "audio_s": round(audio_s, 1), "cpu_s": round(cpu, 3),
                       "x_realtime_per_core": round(audio_s / cpu, 1),
                       "x_realtime_range": [round(audio_s / sum(p[0].values()), 1) for p in (passes[-1], passes[0])],
                       "cpu_share": {k: round(v / cpu, 3) for k, v in t.items()}}
    profile = _profile(recipes, subtasks, p, args.episodes, args.tfjp == "on")
    flac = _flac_levels(recipes, p)
    total_audio = sum(r["audio_s"] for r in results.values())
    total_cpu = sum(r["cpu_s"] for r in results.values())
    report = {
        "machine": f"{platform.machine()}, {platform.processor() or 'cpu'}, Python {platform.python_version()}",
        "cpu_model": _cpu_model(),
        "repeats": args.repeats,
        "tfjp_and_noise_tracks": args.tfjp == "on",
        "per_recipe": results,
        "total": {"audio_s": round(total_audio, 1), "cpu_s": round(total_cpu, 3),
                  "x_realtime_per_core": round(total_audio / total_cpu, 1)},
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "profile_share": profile,
        "flac_level": flac,
    }
    (args.out / "render.json").write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


def _timed_pass(recipe, st, plans):
    """Render, label and write every planned episode once; CPU seconds per step."""
    t = {"render": 0.0, "label": 0.0, "write": 0.0}
    audio_s = 0.0
    rows = []
    for eid, stored in plans:
        c0 = time.process_time()
        plan = plan_from_dict(stored)
        r = render(plan)
        c1 = time.process_time()
        turns, labels = label_turns(r.turns, r.duration_s)
        row = {"id": eid, "ability": recipe.ability, "subtask": st, "split": "train", "language": plan.language,
               "system_prompt": plan.system_prompt, "audio": {"bytes": r.flac, "path": f"{eid}.flac"},
               "sample_rate": 16000, "duration_s": r.duration_s, "chunk_s": 0.4, "segments": r.segments,
               "turns": turns, "chunk_labels": labels,
               "provenance": {"toolkit_version": "bench", "recipe": st, "recipe_version": recipe.version, "seed": 1,
                              "text_writer": "", "tts": "", "aligner": "", "plan_sha": plan_sha(stored)}}
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


def _profile_groups() -> dict:
    """Where render + label + write spend CPU: entry points whose cumulative time is a group
    (none calls another, so the shares add up)."""
    import inspect

    import pyarrow.parquet as pq_mod
    import soxr

    from streamaudio.render import mix, tfjp

    def key(fn):
        fn = inspect.unwrap(fn)
        return (inspect.getsourcefile(fn), inspect.getsourcelines(fn)[1], fn.__name__)

    return {"decode source clips (libsndfile)": [key(sf.read), key(sf.SoundFile.read)],
            "encode the stream as FLAC (libsndfile)": [key(sf.write)],
            "resample (soxr)": [key(soxr.resample)],
            "level and SNR analysis": [key(mix.active_level_db), key(mix.snr_db)],
            "TFJP (denoise, spectral smoothing)": [key(tfjp.denoise), key(tfjp.spec_smooth)],
            "settling turns on the audio": [key(mix.settle_turns)],
            "Parquet write": [key(pq_mod.write_table)]}


def _plans(recipe, p, episodes: int, tag: str, seed: int, tfjp: bool) -> list[tuple[str, dict]]:
    """Stored plans of ``episodes`` episodes; with ``tfjp``, prepared as a build prepares them
    (streamaudio.build.shards.plan_episode): TFJP settings and the two noise tracks."""
    rpools = recipe_pools(recipe, p, tfjp=tfjp)
    tables = _tables(recipe, rpools)
    noise = Pool("noise", p["noise"])
    tracks = NoiseTrackSettings(sources=("noise",))
    out = []
    for i in range(episodes):
        eid = f"{recipe.subtask}-{tag}-{i:06d}"
        ctx = PlanContext(episode_id=eid, subtask=recipe.subtask, split="train",
                          rng=np.random.default_rng(episode_seed(seed, eid)), pools=rpools, tables=tables)
        plan = recipe.plan(ctx)
        if tfjp:
            plan.render = {"tfjp": dict(DEFAULT_TFJP), "noise_tracks": tracks.to_dict()}
            add_noise_tracks(plan, noise, np.random.default_rng([episode_seed(seed, eid), 1]), tracks)
        out.append((eid, json.loads(json.dumps(plan_to_dict(plan)))))
    return out


def _tables(recipe, rpools: dict[str, Pool]) -> dict:
    """The recipe's tables resolved offline over these pools (providers may read them)."""
    return recipe.offline_tables({k: {"train": pool.table} for k, pool in rpools.items()}, seed=1)


def _profile(recipes, subtasks, p, episodes: int, tfjp: bool) -> dict:
    """Share of CPU (own time of the functions below each group) over one pass of every recipe."""
    import cProfile
    import pstats

    prof = cProfile.Profile()
    for st in subtasks:
        recipe = recipes[st]
        plans = _plans(recipe, p, episodes, "profile", 2, tfjp)
        prof.enable()
        _timed_pass(recipe, st, plans)
        prof.disable()
    stats = pstats.Stats(prof).stats
    total = next(v[3] for k, v in stats.items() if k[2] == "_timed_pass")
    share = {name: round(sum(stats[k][3] for k in keys if k in stats) / total, 3)
             for name, keys in _profile_groups().items()}
    share["everything else (mixing, planning data, labels, checks)"] = round(1 - sum(share.values()), 3)
    return share


def _flac_levels(recipes, p) -> dict:
    """Encode the same mixes at FLAC level 0 (what the renderer writes) and at libsndfile's
    default: CPU per second of audio and bytes."""
    recipe = recipes["asr_utterance"]
    pools = recipe_pools(recipe, p)
    tables = _tables(recipe, pools)
    mixes = []
    for i in range(10):
        eid = f"flac-{i}"
        ctx = PlanContext(episode_id=eid, subtask="asr_utterance", split="train",
                          rng=np.random.default_rng(episode_seed(3, eid)), pools=pools, tables=tables)
        x, _ = sf.read(io.BytesIO(render(recipe.plan(ctx)).flac), dtype="int16")
        mixes.append(x)
    audio_s = sum(len(x) for x in mixes) / 16000
    out = {}
    for name, level in (("level 0", 0.0), ("libsndfile default", None)):
        times, size = [], 0
        for _ in range(5):
            c0 = time.process_time()
            size = 0
            for x in mixes:
                buf = io.BytesIO()
                kw = {} if level is None else {"compression_level": level}
                sf.write(buf, x, 16000, format="FLAC", subtype="PCM_16", **kw)
                size += len(buf.getvalue())
            times.append(time.process_time() - c0)
        out[name] = {"cpu_ms_per_audio_s": round(1000 * sorted(times)[2] / audio_s, 3), "bytes": size}
    out["level 0 vs default"] = {
        "cpu": round(out["level 0"]["cpu_ms_per_audio_s"] / out["libsndfile default"]["cpu_ms_per_audio_s"], 3),
        "bytes": round(out["level 0"]["bytes"] / out["libsndfile default"]["bytes"], 3)}
    return out


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
