"""Hierarchical event curation: scenario planning -> event refinement -> clip
grounding -> checks (coherence, plausibility, diversity, grounding, order).

The paper replaces random stitching with this. Here a scenario is a titled,
ordered list of sound events whose labels must exist in the clip pool (an LLM's
schema enumerates exactly those labels). Offline, a rule-based planner walks a
setting's labels, preferring labels that co-occur in the pool. Grounding happens
at planning time, inside the recipe, with a pure function: the top-3 clips by
label and caption match, of which the first that passes a suitability check
is used.
"""
from __future__ import annotations

import random
from collections import Counter
from itertools import combinations

from .llm import LLMClient, LLMError
from .tables import ResolvedTable, TableEnv, TableProvider, load_yaml, table_path

TOP_K = 3
MAX_EVENT_S = 10.0
NEAR_DUPLICATE = 0.8  # Jaccard similarity of two scenarios' label sets


def inventory(rows: list[dict]) -> tuple[Counter, Counter]:
    """(label -> clips with it, (label a, label b) -> clips with both)."""
    count, co = Counter(), Counter()
    for r in rows:
        labels = sorted(set(r["labels"]))
        count.update(labels)
        co.update(combinations(labels, 2))
    return count, co


def suitable(clip: dict) -> bool:
    """A clip can carry an event: its event was found, and it fits in an episode."""
    return clip["active_start_s"] >= 0 and 0 < clip["active_end_s"] - clip["active_start_s"] <= MAX_EVENT_S


def candidates(event: dict, rows, k: int = TOP_K) -> list[dict]:
    """Top-k clips for an event: exact label match first, then caption/label word overlap
    with the event's note; ties broken by clip id so the ranking is stable. ``rows`` is a list
    of clips, or a dict label -> clips (only the event's label is ranked then)."""
    if isinstance(rows, dict):
        rows = rows.get(event["label"], [])
    words = set((event.get("note") or "").lower().split())

    def score(r):
        text = " ".join(r["labels"] + [r.get("caption", "")]).lower().split()
        return (event["label"] in r["labels"], len(words & set(text)), -len(r["labels"]))

    ranked = sorted((r for r in rows if event["label"] in r["labels"]), key=lambda r: (tuple(-x for x in score(r)), r["id"]))
    return ranked[:k]


def ground(event: dict, rows, rng) -> dict | None:
    """One clip for the event: a seeded pick among the suitable top-k candidates."""
    ok = [c for c in candidates(event, rows) if suitable(c)]
    if not ok:
        return None
    return ok[int(rng.integers(len(ok)))]


def ground_in_pool(event: dict, pool, rng) -> dict | None:
    """``ground`` at planning time, in a recipe's pool. A curated event carries its suitable
    top-k candidates (row numbers in its split's pool, found once by the build), so a planner
    never ranks the clips of a label again; an event without them is ranked here."""
    stored = event.get("candidates")
    if stored is None:
        return ground(event, pool.with_label(event["label"]), rng)
    ok = []
    for i, cid in zip(stored["rows"], stored["ids"]):
        row = pool.row(i)
        if row["id"] != cid:
            raise ValueError(f"curated candidate {cid} is not row {i} of pool {pool.name!r}: "
                             "the scenarios were curated on another pool")
        ok.append(row)
    if not ok:
        return None
    return ok[int(rng.integers(len(ok)))]


def check(scenario: dict, counts: Counter, policy: dict, kept: list[dict], rows: list[dict]) -> str:
    """'' when the scenario passes every check, else the first failing check and why."""
    labels = [e["label"] for e in scenario["events"]]
    unknown = [l for l in labels if l not in counts]
    if unknown:
        return f"coherence: labels not in the clip pool: {unknown}"
    if any(l not in policy for l in labels):
        return f"coherence: labels without a policy entry: {[l for l in labels if l not in policy]}"
    responds = [l for l in labels if policy[l]["action"] == "respond"]
    if not responds:
        return "plausibility: nothing in the scenario needs a reply"
    if max(Counter(labels).values()) > 2:
        return "plausibility: the same sound more than twice"
    for e in scenario["events"]:
        if not any(suitable(c) for c in candidates(e, rows)):
            return f"grounding: no suitable clip for {e['label']!r}"
    if [e.get("order", i) for i, e in enumerate(scenario["events"])] != sorted(e.get("order", i) for i, e in enumerate(scenario["events"])):
        return "temporal order: events out of order"
    mine = set(labels)
    for other in kept:
        theirs = {e["label"] for e in other["events"]}
        if len(mine & theirs) / len(mine | theirs) >= NEAR_DUPLICATE and len(labels) == len(other["events"]):
            return f"diversity: near-duplicate of {other['title']!r}"
    return ""


def plan_offline(settings: dict, counts: Counter, co: Counter, policy: dict, seed: int) -> list[dict]:
    """Rule-based planner: per setting, walk its labels that the pool has, preferring a
    label that co-occurs with the previous one, keeping the setting's order."""
    rnd = random.Random(seed)
    lo, hi = settings["events_per_scenario"]
    out = []
    for i in range(settings["n_scenarios"] * 2):  # twice as many drafts: checks drop some
        setting = settings["settings"][i % len(settings["settings"])]
        avail = [l for l in setting["labels"] if counts.get(l) and l in policy]
        if not avail:
            continue
        n = rnd.randint(lo, hi)
        events = []
        prev = None
        used = Counter()
        for _ in range(n):
            left = [l for l in avail if used[l] < 2]  # the plausibility check allows a sound twice
            if not left:
                break
            weights = [1 + 4 * (co.get(tuple(sorted((prev, l))), 0) > 0) if prev else 1 for l in left]
            label = rnd.choices(left, weights)[0]
            used[label] += 1
            events.append({"label": label, "note": setting["title"]})
            prev = label
        order = {l: k for k, l in enumerate(setting["labels"])}
        events.sort(key=lambda e: order[e["label"]])
        out.append({"title": f"{setting['title']} #{i // len(settings['settings']) + 1}", "events": events})
    return out


def plan_llm(llm: LLMClient, settings: dict, counts: Counter, policy: dict) -> list[dict]:
    """Scenario planning and event refinement in one structured call per draft: the schema
    only admits labels the pool has, so every event can be grounded."""
    labels = sorted(l for l in counts if l in policy)
    lo, hi = settings["events_per_scenario"]
    schema = {"type": "object", "additionalProperties": False, "required": ["title", "events"], "properties": {
        "title": {"type": "string", "minLength": 3},
        "events": {"type": "array", "minItems": lo, "maxItems": hi, "items": {
            "type": "object", "additionalProperties": False, "required": ["label", "note"],
            "properties": {"label": {"type": "string", "enum": labels}, "note": {"type": "string"}}}}}}
    system = settings["llm_system"]  # the scenario's world (a household, a street...) is the table's to say
    reqs = []
    for i in range(settings["n_scenarios"] * 2):
        setting = settings["settings"][i % len(settings["settings"])]
        user = (f"Setting: {setting['title']} (draft {i}). Typical sounds: {', '.join(setting['labels'])}. "
                f"Allowed labels: {', '.join(labels)}. Plan {lo}-{hi} events as JSON "
                '{"title": ..., "events": [{"label": ..., "note": ...}]}.')
        reqs.append(([{"role": "system", "content": system}, {"role": "user", "content": user}], schema))
    return [r for r in llm.map_json("scenarios", reqs) if not isinstance(r, LLMError)]


def curate(llm: LLMClient | None, settings: dict, rows: list[dict], policy: dict, seed: int) -> tuple[dict, list[dict]]:
    """(scenarios table, rejected drafts with the failing check). Every kept event carries its
    suitable grounding candidates as row numbers of ``rows`` (and their ids)."""
    counts, co = inventory(rows)
    by_label: dict[str, list[dict]] = {}
    for r in rows:
        for lab in set(r["labels"]):
            by_label.setdefault(lab, []).append(r)
    row_of = {r["id"]: i for i, r in enumerate(rows)}
    drafts = plan_llm(llm, settings, counts, policy) if llm else plan_offline(settings, counts, co, policy, seed)
    kept, rejected = [], []
    for d in drafts:
        why = check(d, counts, policy, kept, by_label)
        if why:
            rejected.append({"title": d["title"], "reason": why})
        elif len(kept) < settings["n_scenarios"]:
            for e in d["events"]:
                ok = [c for c in candidates(e, by_label) if suitable(c)]
                e["candidates"] = {"rows": [row_of[c["id"]] for c in ok], "ids": [c["id"] for c in ok]}
            kept.append(d)
    writer = llm.config.tag if llm else "rules:label-co-occurrence"
    return {"writer": writer, "scenarios": kept}, rejected


CURATION_COLUMNS = ["id", "labels", "caption", "active_start_s", "active_end_s"]


class CuratedScenarios(TableProvider):
    """Per-split event scenarios for a recipe's event pool: planned (LLM or rules), refined
    into pool labels, grounded and checked. Needs a policy table (resolved before it) that
    says which labels need a reply. Value: ``{"writer": ..., "by_split": {split: [scenario]}}``;
    dropped drafts are rejects with stage ``curate``."""

    def __init__(self, settings: str, pool: str = "events", policy: str = "policy"):
        self.settings, self.pool, self.policy = settings, pool, policy

    def __repr__(self) -> str:
        return f"CuratedScenarios({self.settings!r}, pool={self.pool!r}, policy={self.policy!r})"

    def files(self, folder):
        return [table_path(self.settings, folder)]

    def resolve(self, env: TableEnv) -> ResolvedTable:
        settings = load_yaml(table_path(self.settings, env.folder))
        if self.policy not in env.tables:
            raise KeyError(f"CuratedScenarios needs the {self.policy!r} table declared before it")
        policy = env.tables[self.policy]["labels"]
        by_split, report, writer = {}, {}, "rules:label-co-occurrence"
        for split, clips in sorted((env.pools.get(self.pool) or {}).items()):
            rows = clips.select(CURATION_COLUMNS).to_pylist()
            table, dropped = curate(env.llm, settings, rows, policy, env.seed)
            by_split[split], writer = table["scenarios"], table["writer"]
            report[split] = {"kept": len(table["scenarios"]), "dropped": len(dropped)}
            for d in dropped:
                env.reject("curate", f"{split}/{d['title']}", d["reason"])
        return ResolvedTable({"writer": writer, "by_split": by_split}, writer=writer, note=writer, report=report)
