"""sound_event_counting: plan-level checks on the fixture pools (the target, the running count
and the reply times recomputed here from the plan's clips and the recipe's data tables, not from
the recipe's code), and the same semantics on built episodes when the demo build has the sub-task."""
import itertools
import json
import re

import numpy as np
import pyarrow.parquet as pq
import pytest

from streamaudio.build.shards import episode_row
from streamaudio.plan import PlanContext, PlanError, Pool, episode_seed, load_recipes
from streamaudio.plan.store import plan_to_dict
from streamaudio.render.label import episode_violations
from conftest import noise_track  # noqa: E402

SUBTASK = "sound_event_counting"
MAPPING = {"events": "sound", "prompts": "prompts", "other": "librispeech", "noise": "noise"}
N = 14


@pytest.fixture(scope="module")
def recipe():
    return load_recipes()[SUBTASK]


@pytest.fixture(scope="module")
def table(recipe):
    return recipe.offline_tables()["counting"]


def plan_for(recipe, pools, eid, mapping=None, seed=7, tables=None):
    mapping = mapping or MAPPING
    ctx = PlanContext(episode_id=eid, subtask=recipe.subtask, split="train",
                      rng=np.random.default_rng(episode_seed(seed, eid)),
                      pools={p: Pool(p, pools[s] if isinstance(s, str) else s) for p, s in mapping.items()},
                      tables=tables or recipe.offline_tables())
    return recipe.plan(ctx)


def to_row(recipe, plan, eid="e"):
    return episode_row(json.loads(json.dumps(plan_to_dict(plan))), episode_id=eid, subtask=recipe.subtask,
                       ability=recipe.ability, split="train", recipe_version=recipe.version, seed=0, chunk_s=0.4)


def count_words(table) -> dict[int, str]:
    return {int(k): v for k, v in table["count_words"].items()}


def said_counts(text: str, table) -> list[int]:
    """The counts a reply says, found by the table's count words as whole words ("once" is not
    in "ounce"; "three times" is one count, not also "times")."""
    low = " ".join(re.findall(r"[a-z']+", text.lower()))
    return [k for k, w in count_words(table).items() if re.search(rf"(?<![a-z']){re.escape(w)}(?![a-z'])", low)]


def counting_target(segs: list[dict], system_prompt: str, labels: dict) -> tuple[str, bool]:
    """(X, spoken): the label a spoken count_when request names, else the one whose phrase the
    system prompt says."""
    for s in segs:
        if s["role"] == "user" and "count_when" in s["labels"]:
            return next(lab.split("=", 1)[1] for lab in s["labels"] if lab.startswith("label=")), True
    (x,) = [lab for lab, e in labels.items() if e["phrase"] in system_prompt]
    return x, False


def turns_on(plan, seg):
    return [t for t in plan.turns if any(e is seg for e in t.evidence)]


def test_counting_says_the_running_count_after_each_target(recipe, table, clip_pools):
    labels, never = table["labels"], set(table["never_distractors"])
    assert "Smoke detector, smoke alarm" in never
    modes, n_hits, other_talk, named = set(), set(), 0, 0
    for i in range(N):
        plan = plan_for(recipe, clip_pools, f"cnt-{i}")
        segs = [{"role": s.role, "labels": s.clip.get("labels") or []} for s in plan.segments]
        target, spoken = counting_target(segs, plan.system_prompt, labels)
        modes.add(spoken)
        if spoken:  # the request was said, so the system prompt never names a sound
            assert not [e["phrase"] for e in labels.values() if e["phrase"] in plan.system_prompt.lower()]
            (request,) = [s for s in plan.segments if s.role == "user"]
            (turn,) = turns_on(plan, request)
            assert turn.kind == "stay_silent"
        means = {target, *labels[target]["same_as"]}
        events = sorted([s for s in plan.segments if s.role in ("environment", "other")], key=lambda s: s.start_s)
        hits = [s for s in events if s.role == "environment" and means & set(s.clip["labels"])]
        n_hits.add(len(hits))
        assert 2 <= len(hits) <= 4 and hits[0] is not events[0], "X comes after a distractor"
        for a, b in itertools.pairwise(events):
            assert not (a in hits and b in hits), "a distractor between two Xs"
        responds = sorted([t for t in plan.turns if t.kind == "respond"], key=lambda t: t.trigger_s)
        assert len(responds) == len(hits)
        for k, (hit, reply) in enumerate(zip(hits, responds), 1):
            assert turns_on(plan, hit) == [reply]
            active_end = hit.start_s + hit.clip["active_end_s"] - hit.clip_start_s
            assert active_end + 0.3 - 1e-6 <= reply.trigger_s <= active_end + 1.0 + 1e-6
            assert said_counts(reply.text, table) == [k], (k, reply.text)
            named += labels[target]["phrase"] in reply.text.lower()
        for s in events:
            if s in hits:
                continue
            (turn,) = turns_on(plan, s)
            assert turn.kind == "stay_silent", (s.role, s.clip["id"])
            other_talk += s.role == "other"
            assert not set(s.clip.get("labels") or []) & never, s.clip["labels"]  # never silent on a hazard
            assert not set(s.clip.get("labels") or []) & means
        assert all(b.trigger_s - a.trigger_s >= 0.8 for a, b in itertools.pairwise(responds))
        assert episode_violations(to_row(recipe, plan)) == []
    assert modes == {True, False} and len(n_hits) >= 2 and other_talk and named


def test_counting_never_uses_a_hazard_or_a_sound_meaning_x_as_a_distractor(recipe, table, clip_pools):
    labels, never = table["labels"], set(table["never_distractors"])
    # only dogs, smoke alarms and barks without the Dog label besides sounds that are no target
    only_dogs = [r for r in clip_pools["sound"] if not set(r["labels"]) & (set(labels) - {"Dog"})]
    barks = [{**r, "id": r["id"] + "#bark", "labels": ["Bark"]} for r in only_dogs if "Dog" in r["labels"]]
    assert barks and any(never & set(r["labels"]) for r in only_dogs)
    for i in range(8):
        plan = plan_for(recipe, clip_pools, f"dog-{i}", mapping={**MAPPING, "events": only_dogs + barks * 3})
        segs = [{"role": s.role, "labels": s.clip.get("labels") or []} for s in plan.segments]
        assert counting_target(segs, plan.system_prompt, labels)[0] == "Dog"
        env = [s for s in plan.segments if s.role == "environment"]
        assert not [s for s in env if s.clip["labels"] == ["Bark"] or never & set(s.clip["labels"])]
    no_target = [r for r in clip_pools["sound"] if not set(r["labels"]) & set(labels)]
    with pytest.raises(PlanError, match="target labels"):
        plan_for(recipe, clip_pools, "none", mapping={**MAPPING, "events": no_target})


def test_counting_skips_paraphrases_that_say_a_count_of_their_own(recipe, table, clip_pools):
    """An LLM paraphrase such as "Once more, that's {count}." keeps its placeholders (so the
    table accepts it) but would say two counts: such templates are never used."""
    tables = recipe.offline_tables()
    texts = {**tables["texts"], "templates": {**tables["texts"]["templates"]}}
    for key in ("again", "again_named", "first", "first_named"):
        bad = "Once more, that's {count}." if "named" not in key else "Twice, {label_phrase}: {count}."
        texts["templates"][key] = [*texts["templates"][key], *[bad] * 20]
    for i in range(6):
        plan = plan_for(recipe, clip_pools, f"para-{i}", tables={**tables, "texts": texts})
        for k, reply in enumerate(sorted((t for t in plan.turns if t.kind == "respond"), key=lambda t: t.trigger_s), 1):
            assert said_counts(reply.text, table) == [k], reply.text


def test_counting_tables(recipe, table):
    tables = recipe.offline_tables()
    prompts = tables["instructions"]["system_prompts"]
    assert len(set(prompts)) >= 20
    # the words of every target label and of the labels meaning it (a prompt names no sound)
    names = [*table["labels"], *(x for e in table["labels"].values() for x in e["same_as"])]
    sound_words = {w for n in names for w in re.findall(r"[a-z]+", n.lower()) if len(w) > 2}
    assert not [p for p in prompts if sound_words & set(re.findall(r"[a-z]+", p.lower()))]
    phrases = [e["phrase"] for e in table["labels"].values()]
    assert not [a for a, b in itertools.permutations(phrases, 2) if a in b]
    assert sorted(count_words(table)) == list(range(1, table["targets"][1] + 1))


# ---------------------------------------------------------------- built episodes
def built_rows(built, subtask: str) -> list[dict]:
    """Every stored row of a sub-task in the demo build (skips when the demo has none)."""
    files = sorted((built["one"] / "data" / subtask).glob("*.parquet"))
    if not files:
        pytest.skip(f"{subtask} is not in the demo build")
    return [r for f in files for r in pq.read_table(f).to_pylist()]


def test_built_counting_episodes_store_the_running_count(built, table):
    rows = built_rows(built, SUBTASK)
    labels, never = table["labels"], set(table["never_distractors"])
    for row in rows:
        assert episode_violations(row) == []
        segs, turns = row["segments"], row["turns"]
        target, _ = counting_target(segs, row["system_prompt"], labels)
        means = {target, *labels[target]["same_as"]}
        order = sorted((i for i in range(1, len(segs)) if not noise_track(segs[i])), key=lambda i: segs[i]["start_s"])
        k = 0
        for i in order:
            s = segs[i]
            (t,) = [t for t in turns if i in t["evidence"]]
            hit = s["role"] == "environment" and bool(means & set(s["labels"]))
            if hit:
                k += 1
                assert t["kind"] == "respond" and said_counts(t["text"], table) == [k], (k, t["text"])
                assert json.loads(s["attrs"])["count"] == k
            else:
                assert t["kind"] == "stay_silent" and not never & set(s["labels"] or [])
        assert 2 <= k <= 4
