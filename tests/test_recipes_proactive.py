"""proactive_safety and proactive_health, checked on plans drawn from the fixture pools and, once
the demo catalog has the sub-tasks, on built episodes (through ``built_rows``). The checks read
each event's stated context from its segment attrs and ask the sound policy (the offline table)
what it means, and count the clips of a scene themselves: a recipe that answered a benign event,
skipped a stay_silent turn, replied without urgency to a hazard, or answered a single cough fails.
"""
import json
from collections import defaultdict

import numpy as np
import pytest
import yaml

from streamaudio.build.shards import episode_row
from streamaudio.plan import PlanContext, Pool, episode_seed, load_recipes
from streamaudio.plan.store import plan_to_dict
from streamaudio.render.label import episode_violations
from streamaudio.resources import MANIFESTS_DIR
from streamaudio.text import sound_policy as sp
from conftest import built_rows  # noqa: E402

MAPPING = {"events": "sound", "noise": "noise"}
SAFETY = yaml.safe_load((MANIFESTS_DIR / "policy" / "proactive_safety.yaml").read_text())
HEALTH = yaml.safe_load((MANIFESTS_DIR / "policy" / "proactive_health.yaml").read_text())
CARING_EMOTIONS = {"normal", "sad", "urgent"}
N_PLANS = 30


@pytest.fixture(scope="module")
def policy():
    return sp.load_policy()


def plan_for(recipe, pools, eid, seed=7):
    ctx = PlanContext(episode_id=eid, subtask=recipe.subtask, split="train",
                      rng=np.random.default_rng(episode_seed(seed, eid)),
                      pools={p: Pool(p, pools[s]) for p, s in MAPPING.items()}, tables=recipe.offline_tables())
    return recipe.plan(ctx)


def to_row(recipe, plan, eid):
    """The stored episode row of a plan: the same columns a built shard has."""
    return episode_row(json.loads(json.dumps(plan_to_dict(plan))), episode_id=eid, subtask=recipe.subtask,
                       ability=recipe.ability, split="train", recipe_version=recipe.version, seed=0, chunk_s=0.4)


def planned_rows(subtask, clip_pools, n=N_PLANS):
    recipe = load_recipes()[subtask]
    return [to_row(recipe, plan_for(recipe, clip_pools, f"{subtask}-{i}"), f"{subtask}-{i}") for i in range(n)]




def events_of(row) -> list[tuple[int, dict, dict]]:
    """(segment index, segment, attrs) of every event (environment segment) of a row."""
    out = []
    for i, s in enumerate(row["segments"]):
        if s["role"] == "environment":
            out.append((i, s, json.loads(s["attrs"])))
    return out


def all_replies(entry) -> set[str]:
    return {r for o in [entry["outcome"], *entry["contexts"]] for r in o.get("replies") or []}


# ---------------------------------------------------------------- proactive_safety
def check_safety_row(row, policy):
    assert episode_violations(row) == []
    events = events_of(row)
    assert 1 <= len(events) <= SAFETY["events"][1]
    hazards = set(SAFETY["hazards"])
    responded = 0
    for i, seg, attrs in events:
        context = attrs["context"]
        assert context and isinstance(context, str), "every event states its context"
        d = sp.decide(seg["labels"], context, policy)
        on = [t for t in row["turns"] if i in t["evidence"]]
        assert len(on) == 1, "one turn per event"
        turn = on[0]
        assert turn["evidence"] == [i], "a turn's evidence is its event's segment"
        assert turn["evidence_s"] <= turn["trigger_s"] <= turn["evidence_s"] + 2.0
        assert SAFETY["delay_s"][0] - 1e-6 <= turn["trigger_s"] - turn["evidence_s"] <= SAFETY["delay_s"][1] + 1e-6
        if d.respond:
            responded += 1
            assert turn["kind"] == "respond" and turn["emotion"] == "urgent" and d.emotion == "urgent"
            assert attrs["event"] in hazards, "only a hazard is answered"
            assert turn["text"] in all_replies(sp.entry_for(d.label, policy)[1])
        else:
            assert turn["kind"] == "stay_silent" and turn["text"] == ""
        assert attrs["decision"] == d.decision and attrs["rule"] == d.rule
        if attrs["event"] in SAFETY["benign"]:
            assert context in SAFETY["benign"][attrs["event"]] and not d.respond
    assert responded >= 1, "every safety episode has a hazard that needs a reply"
    assert len(row["turns"]) == len(events)
    return events


def test_safety_plans_answer_hazards_urgently_and_keep_silent_for_the_rest(clip_pools, policy):
    rows = planned_rows("proactive_safety", clip_pools)
    by_class = defaultdict(set)
    for row in rows:
        for _, seg, attrs in check_safety_row(row, policy):
            by_class[attrs["event"]].add(attrs["decision"])
    assert set(SAFETY["hazards"]) & set(by_class), "hazards are drawn"
    assert set(SAFETY["benign"]) & set(by_class), "benign events share the stream"
    # the context decides: some hazard class is answered in one context and not in another
    assert any(by_class[c] == {"RESPOND", "IGNORE"} for c in SAFETY["hazards"])


def test_safety_contexts_are_read_by_the_policy_as_the_table_means(policy):
    # a hazard has a context that needs an urgent reply; a benign one never gets a reply
    for label, contexts in SAFETY["hazards"].items():
        ds = [sp.decide([label], c, policy) for c in contexts]
        assert any(d.respond and d.emotion == "urgent" for d in ds), label
        assert all(d.emotion == "urgent" for d in ds if d.respond), label
        assert all(d.context for d in ds if sp.entry_for(label, policy)[1]["decision"] == "depends"), label
    for label, contexts in SAFETY["benign"].items():
        assert all(not sp.decide([label], c, policy).respond for c in contexts), label
    d = sp.decide(["Power tool"], "power tool in use in a workshop, with the user present", policy)
    assert d.respond and d.emotion == "urgent"
    assert sp.decide(["Power tool"], "a neighbour drilling behind the wall", policy).decision == "IGNORE"


def test_built_safety_episodes(request, policy):
    for row in built_rows(request, "proactive_safety"):
        check_safety_row(row, policy)


# ---------------------------------------------------------------- proactive_health
def scenes_of(row) -> list[list[tuple[int, dict, dict]]]:
    """Events grouped into scenes by their numbering in the attrs (clip k of n)."""
    scenes = []
    for i, seg, attrs in events_of(row):
        if attrs["scene_clip"] == 1:
            scenes.append([])
        scenes[-1].append((i, seg, attrs))
    for sc in scenes:
        assert [a["scene_clip"] for _, _, a in sc] == list(range(1, len(sc) + 1)) == list(range(1, sc[0][2]["scene_clips"] + 1))
    return scenes


def check_health_row(row, policy):
    assert episode_violations(row) == []
    scenes = scenes_of(row)
    assert 1 <= len(scenes) <= HEALTH["scenes_per_episode"][1]
    responded = 0
    silent_singles = []
    for sc in scenes:
        idx = [i for i, _, _ in sc]
        context = sc[0][2]["context"]
        labels = list(dict.fromkeys(lab for _, seg, _ in sc for lab in seg["labels"]))
        assert all(a["context"] == context for _, _, a in sc), "a scene has one context"
        assert len({a["event"] for _, _, a in sc}) == 1
        d = sp.decide(labels, context, policy)
        last = [t for t in row["turns"] if idx[-1] in t["evidence"] and set(t["evidence"]) == set(idx)]
        assert len(last) == 1, "one turn about the whole scene, after its last clip"
        turn = last[0]
        assert turn["evidence_s"] <= turn["trigger_s"] <= turn["evidence_s"] + 2.0
        assert all(row["segments"][i]["start_s"] <= turn["evidence_s"] for i in idx)
        if d.respond:
            responded += 1
            assert turn["kind"] == "respond" and turn["emotion"] in CARING_EMOTIONS
            assert d.style == "caring"
            assert turn["text"] in all_replies(sp.entry_for(d.label, policy)[1])
        else:
            assert turn["kind"] == "stay_silent"
            if len(sc) == 1:
                silent_singles.append(sc[0][2]["event"])
        if len(sc) > 1:  # a burst: silence after its first clip, where a naive model would speak
            first = [t for t in row["turns"] if t["evidence"] == [idx[0]]]
            assert len(first) == 1 and first[0]["kind"] == "stay_silent"
            assert first[0]["trigger_s"] < turn["trigger_s"]
        # fits against single coughs, counted from the stream itself
        event = sc[0][2]["event"]
        if event == "Cough":
            coughs = sum("Cough" in seg["labels"] for _, seg, _ in sc)
            assert coughs == len(sc)
            if coughs >= 3:
                assert turn["kind"] == "respond", "a coughing fit gets a caring reply"
            if coughs == 1:
                assert turn["kind"] == "stay_silent", "a single light cough stays silent"
        if event == "Sneeze" and len(sc) == 1:
            assert turn["kind"] == "stay_silent", "one sneeze stays silent"
    assert responded >= 1
    n_turns = sum(1 + (len(sc) > 1) for sc in scenes)
    assert len(row["turns"]) == n_turns
    return scenes


def test_health_plans_care_for_distress_and_leave_benign_variants_alone(clip_pools, policy):
    rows = planned_rows("proactive_health", clip_pools)
    fits = singles = 0
    kinds = defaultdict(set)
    for row in rows:
        for sc in check_health_row(row, policy):
            ev = sc[0][2]["event"]
            kinds[ev].add(sc[0][2]["decision"])
            if ev == "Cough":
                fits += len(sc) >= 3
                singles += len(sc) == 1
    assert fits and singles, "both coughing fits and single coughs are drawn"
    assert sum(len(v) == 2 for v in kinds.values()) >= 3, "several classes are heard both as distress and benign"


def test_health_scene_table_means_what_it_says(policy):
    for label, scenes in HEALTH["scenes"].items():
        for scene in scenes:
            d = sp.decide([label], scene["context"], policy)
            assert d.context == scene["context"], "every scene names a context of the policy"
            if d.respond:
                assert d.style == "caring" and d.emotion in CARING_EMOTIONS
    fit = next(s for s in HEALTH["scenes"]["Cough"] if s["context"] == "a coughing fit")
    single = next(s for s in HEALTH["scenes"]["Cough"] if s["context"] == "a single light cough")
    assert fit["clips"][0] >= 3 and single["clips"] == [1, 1]
    assert sp.decide(["Cough"], fit["context"], policy).respond
    assert not sp.decide(["Cough"], single["context"], policy).respond


def test_built_health_episodes(request, policy):
    for row in built_rows(request, "proactive_health"):
        check_health_row(row, policy)


# ---------------------------------------------------------------- both
@pytest.mark.parametrize("subtask", ["proactive_safety", "proactive_health"])
def test_system_prompts_and_tables(subtask):
    recipe = load_recipes()[subtask]
    assert recipe.ability == "proactive_response"
    tables = recipe.offline_tables()
    assert len(set(tables["instructions"]["system_prompts"])) >= 20
    assert tables["policy"]["writer"] == "table"
    # the fingerprint covers the policy, the ontology and the LLM prompt, not only the scene table
    files = {f.name for p in recipe.providers().values() for f in p.files(recipe.folder)}
    assert {"sound_policy.yaml", "ontology.json", "sound_policy_prompt.yaml"} <= files
