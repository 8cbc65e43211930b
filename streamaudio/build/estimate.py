"""`streamaudio estimate CATALOG --from BUILD`: what a full build of a catalog will take,
scaled from rates a smaller build measured.

Rates come from the reference build's build.json: per sub-task, the audio, the shard
bytes and the render CPU per episode (measured in the shard tasks); per source stage,
the CPU per input clip (measured in the driver and in the Ray tasks and actors that ran
it, forked synthesis included). Render CPU is the median over the reference's shards of
CPU per second of audio (a worker's first shard also pays its set-up). Per-clip rates
assume clips like the reference's: give a reference built from a sample of the real
corpora for real numbers. The catalog's counts scale the sub-tasks; a source is
as large as the reference's source of the same name, or as ``--source-clips NAME=N``
says. Nothing is extrapolated that was not measured: a sub-task or stage without a rate
is listed as such.
"""
from __future__ import annotations

import json
from pathlib import Path

from .catalog import load_catalog


class EstimateError(ValueError):
    pass


def _stage_rates(ref: dict) -> dict[tuple[str, str], dict]:
    """(corpus, stage) -> CPU seconds per input clip and per input audio hour."""
    rates = {}
    for src in ref.get("inputs", {}).values():
        for stage, c in (src.get("stage_costs") or {}).items():
            if c.get("rows_in"):
                rates[(src["corpus"], stage)] = {
                    "cpu_per_clip": c["cpu_s"] / c["rows_in"],
                    "cpu_per_audio_h": c["cpu_s"] / (c["audio_s_in"] / 3600) if c.get("audio_s_in") else None,
                    "rows_in_per_seen": c["rows_in"] / max(1, src["seen"]),
                    "audio_s_per_row": (c.get("audio_s_in") or 0) / c["rows_in"]}
    return rates


def estimate(catalog: str | Path, reference: str | Path, source_clips: dict[str, int] | None = None,
             ctc_gpu_realtime: float | None = None) -> dict:
    cat = load_catalog(catalog)
    ref_path = Path(reference) / "build.json" if Path(reference).is_dir() else Path(reference)
    if not ref_path.is_file():
        raise EstimateError(f"{ref_path}: no build.json (build a sample of the catalog first)")
    ref = json.loads(ref_path.read_text())
    source_clips = source_clips or {}
    subtasks, missing = {}, []
    for st, spec in sorted(cat.subtasks.items()):
        m = ref.get("subtasks", {}).get(st)
        if not m or not m.get("written") or not m.get("render_cpu_per_audio_s"):
            missing.append(f"sub-task {st}: no measured episodes in the reference build")
            continue
        per_ep_h = sum(v["hours"] for v in m["splits"].values()) / m["written"]
        hours = spec.count * per_ep_h
        subtasks[st] = {"episodes": spec.count, "hours": hours,
                        "storage_gb": hours / (per_ep_h * m["written"]) * m["bytes"] / 1e9,
                        "render_core_h": hours * m["render_cpu_per_audio_s"]}
    rates = _stage_rates(ref)
    sources = {}
    needed = cat.needed_sources()
    for name in needed:
        spec = cat.sources[name]
        clips = source_clips.get(name) or (ref.get("inputs", {}).get(name) or {}).get("seen")
        if not clips:
            missing.append(f"source {name}: size unknown (give --source-clips {name}=N)")
            continue
        row = {"corpus": spec.corpus, "clips": clips, "stages": {}, "cpu_core_h": 0.0, "gpu_h": 0.0}
        for (corpus, stage), r in sorted(rates.items()):
            if corpus != spec.corpus:
                continue
            n = clips * r["rows_in_per_seen"]
            ctc = stage == "align" and (spec.stage_config("align") or {}).get("backend") == "ctc"
            if ctc and ctc_gpu_realtime:
                gpu_h = n * r["audio_s_per_row"] / ctc_gpu_realtime / 3600
                row["stages"][stage] = {"clips_in": round(n), "gpu_h": gpu_h}
                row["gpu_h"] += gpu_h
                continue
            core_h = n * r["cpu_per_clip"] / 3600
            row["stages"][stage] = {"clips_in": round(n), "core_h": core_h}
            row["cpu_core_h"] += core_h
        sources[name] = row
    tot = {"episodes": sum(v["episodes"] for v in subtasks.values()),
           "hours": sum(v["hours"] for v in subtasks.values()),
           "storage_gb": sum(v["storage_gb"] for v in subtasks.values()),
           "render_core_h": sum(v["render_core_h"] for v in subtasks.values()),
           "source_core_h": sum(v["cpu_core_h"] for v in sources.values()),
           "gpu_h": sum(v["gpu_h"] for v in sources.values())}
    return {"catalog": str(cat.path), "reference": str(ref_path), "subtasks": subtasks, "sources": sources,
            "total": tot, "not_estimated": missing,
            "notes": ["GPU alignment needs --ctc-gpu-realtime (no GPU rate was measured)"
                      if any((cat.sources[n].stage_config("align") or {}).get("backend") == "ctc" for n in needed)
                      and not ctc_gpu_realtime else ""]}


def format_estimate(e: dict) -> str:
    lines = [f"estimate for {e['catalog']} (rates from {e['reference']})", "",
             "| sub-task | episodes | audio hours | storage (GB) | render core-hours |", "|---|---:|---:|---:|---:|"]
    for st, v in e["subtasks"].items():
        lines.append(f"| {st} | {v['episodes']:,} | {v['hours']:,.1f} | {v['storage_gb']:,.2f} | {v['render_core_h']:,.2f} |")
    lines += ["", "| source | corpus | clips | stage: core-hours (GPU-hours) |", "|---|---|---:|---|"]
    for name, v in e["sources"].items():
        stages = ", ".join(f"{k}: {s['core_h']:,.2f}" if "core_h" in s else f"{k}: {s['gpu_h']:,.2f} GPU-h"
                           for k, s in v["stages"].items())
        lines.append(f"| {name} | {v['corpus']} | {v['clips']:,} | {stages} |")
    t = e["total"]
    lines += ["", f"total: {t['episodes']:,} episodes, {t['hours']:,.1f} h of audio, {t['storage_gb']:,.2f} GB of shards, "
                  f"{t['render_core_h'] + t['source_core_h']:,.2f} CPU core-hours (render {t['render_core_h']:,.2f}, "
                  f"sources {t['source_core_h']:,.2f}), {t['gpu_h']:,.2f} GPU-hours"]
    lines += [f"not estimated: {m}" for m in e["not_estimated"]] + [n for n in e["notes"] if n]
    return "\n".join(lines)


# ---------------------------------------------------------------- build --plan-only
def plan_duration(plan, chunk_s: float) -> float:
    """The length a planned episode will render to, without rendering it: as the renderer
    does, past every segment that does not loop and every turn, rounded up to whole chunks."""
    from ..format import round_up_to_chunk

    ends = []
    for seg in plan.segments:
        if seg.loop_to_end:
            continue
        avail = seg.clip["duration_s"] - seg.clip_start_s
        ends.append(seg.start_s + (avail if seg.clip_dur_s is None else min(seg.clip_dur_s, avail)))
    return round_up_to_chunk(max([plan.min_duration_s, *ends, *(t.trigger_s for t in plan.turns), chunk_s]), chunk_s)


def format_plan(r: dict) -> str:
    """`build --plan-only`'s report as text: sub-tasks (episodes, hours, corpora, status),
    abilities, missing sources."""
    def h(x):
        return "-" if x is None else f"{x:,.1f}"

    lines = [f"plan for {r['catalog']['path']} (nothing rendered; {r['sample_per_split'] or 'all'} episode(s) "
             f"planned per sub-task and split)", "",
             "| sub-task | ability | episodes | hours | mean s | sample rejected | corpora | status |",
             "|---|---|---:|---:|---:|---:|---|---|"]
    for st, v in r["subtasks"].items():
        smp = v.get("sample")
        rej = f"{smp['rejected']}/{smp['planned'] + smp['rejected']}" if smp else "-"
        status = v["status"]
        if v["missing_sources"]:
            status += ": missing " + ", ".join(v["missing_sources"])
        if v["problems"]:
            status += ": " + "; ".join(v["problems"])
        mean = "-" if v["mean_episode_s"] is None else f"{v['mean_episode_s']:.1f}"
        lines.append(f"| {st} | {v['ability']} | {v['episodes']:,} | {h(v['hours'])} | {mean} | {rej} | "
                     f"{', '.join(v['corpora'])} | {status} |")
    lines += ["", "| ability | sub-tasks | blocked | episodes | hours (ready sub-tasks) |", "|---|---:|---:|---:|---:|"]
    for a, v in r["abilities"].items():
        lines.append(f"| {a} | {v['subtasks']} | {v['blocked']} | {v['episodes']:,} | {v['hours']:,.1f} |")
    t = r["total"]
    lines += ["", f"total: {t['episodes']:,} episodes ({t['ready_episodes']:,} ready), {t['hours']:,.1f} h of audio "
                  f"in the ready sub-tasks; {len(r['blocked'])} sub-task(s) blocked"]
    if r["missing_sources"]:
        lines += ["", "missing sources (not on disk or not in their layout):"]
        lines += [f"  {name}: {why}" for name, why in sorted(r["missing_sources"].items())]
    reasons = [(st, why, n) for st, v in r["subtasks"].items() for why, n in (v.get("sample") or {}).get("reasons", {}).items()]
    if reasons:
        lines += ["", "sample rejects (first reasons):"] + [f"  {st}: {n} x {why}" for st, why, n in reasons]
    return "\n".join(lines)
