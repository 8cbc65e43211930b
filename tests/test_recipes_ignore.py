"""proactive_ignore: benign everyday sounds and no request, so the assistant stays silent
throughout. Checked on plans drawn from the fixture pools and, once the demo catalog has the
sub-task, on built episodes. The checks read the policy YAML directly, not the recipe's
helpers, so a recipe that drew an alarm or answered a sound fails them."""
import json

import numpy as np
import pytest
import yaml

from streamaudio.build.shards import episode_row
from streamaudio.plan import PlanContext, PlanError, Pool, episode_seed, load_recipes
from streamaudio.plan.store import plan_to_dict
from streamaudio.render.label import episode_violations
from streamaudio.resources import MANIFESTS_DIR
from conftest import built_rows  # noqa: E402

SUBTASK = "proactive_ignore"
MAPPING = {"events": "sound", "noise": "noise"}
POLICY = yaml.safe_load((MANIFESTS_DIR / "policy" / "proactive_ignore.yaml").read_text())
BENIGN, NEVER = set(POLICY["benign"]), set(POLICY["never_benign"])


@pytest.fixture(scope="module")
def recipe():
    return load_recipes()[SUBTASK]


def plan_for(recipe, pools, eid, seed=7, events=None, options=None):
    ctx = PlanContext(episode_id=eid, subtask=SUBTASK, split="train", options=options or {},
                      rng=np.random.default_rng(episode_seed(seed, eid)),
                      pools={"events": Pool("events", events if events is not None else pools["sound"]),
                             "noise": Pool("noise", pools["noise"])}, tables=recipe.offline_tables())
    return recipe.plan(ctx)


def to_row(recipe, plan, eid="e"):
    return episode_row(json.loads(json.dumps(plan_to_dict(plan))), episode_id=eid, subtask=SUBTASK,
                       ability=recipe.ability, split="train", recipe_version=recipe.version, seed=0, chunk_s=0.4)


def test_the_policy_keeps_benign_and_never_benign_apart_and_covers_the_fixture_sounds():
    assert not BENIGN & NEVER
    assert {"Music", "Whistling", "Water tap, faucet", "Dog", "Bark"} <= BENIGN
    assert {"Alarm", "Smoke detector, smoke alarm", "Doorbell", "Knock", "Telephone bell ringing", "Glass",
            "Screaming", "Crying, sobbing", "Baby cry, infant cry", "Siren"} <= NEVER
    assert 0.3 <= POLICY["delay_s"][0] <= POLICY["delay_s"][1] <= 1.0


def test_every_benign_event_gets_silence_and_nothing_responds(recipe, clip_pools):
    seen, counts = set(), set()
    for i in range(25):
        plan = plan_for(recipe, clip_pools, f"ign-{i}")
        events = [s for s in plan.segments if s.role == "environment"]
        assert 3 <= len(events) <= 7
        counts.add(len(events))
        assert not [t for t in plan.turns if t.kind == "respond"]
        for seg in events:
            labels = set(seg.clip["labels"])
            assert not labels & NEVER, labels
            assert labels & BENIGN, labels
            seen |= labels & BENIGN
            on = [t for t in plan.turns if any(e is seg for e in t.evidence)]
            assert len(on) == 1 and on[0].kind == "stay_silent"
            active_end = seg.start_s + seg.clip["active_end_s"] - seg.clip_start_s
            assert active_end < on[0].trigger_s <= active_end + 2.0
            assert 0.3 - 1e-9 <= on[0].trigger_s - active_end <= 1.0 + 1e-9
        assert len(plan.turns) == len(events)
        # the silence for an event is due before the next event starts: it is about that event
        for a, b in zip(plan.turns, events[1:]):
            assert a.trigger_s <= b.start_s
        row = to_row(recipe, plan, f"ign-{i}")
        assert episode_violations(row) == []
        assert not any(row["chunk_labels"])
    assert {"Music", "Whistling", "Water tap, faucet"} <= seen  # the fixture's benign sounds all turn up
    assert len(counts) > 1


def test_a_clip_with_any_never_benign_label_is_never_drawn(recipe, clip_pools):
    # every benign clip also tagged as an alarm: only the untouched benign clips may be drawn
    doctored = [dict(r, labels=[*r["labels"], "Smoke detector, smoke alarm"])
                if "Music" in r["labels"] or "Whistling" in r["labels"] else r for r in clip_pools["sound"]]
    for i in range(10):
        plan = plan_for(recipe, clip_pools, f"ign-n{i}", events=doctored)
        for seg in plan.segments[1:]:
            assert "Smoke detector, smoke alarm" not in seg.clip["labels"]
            assert not {"Music", "Whistling"} & set(seg.clip["labels"])


def test_too_few_benign_clips_is_a_plan_error(recipe, clip_pools):
    alarms = [r for r in clip_pools["sound"] if set(r["labels"]) & NEVER]
    one_benign = [next(r for r in clip_pools["sound"] if "Music" in r["labels"])]
    with pytest.raises(PlanError, match="benign"):
        plan_for(recipe, clip_pools, "ign-few", events=alarms + one_benign)
    # two benign clips are enough: repeated to 3-7 events, never the same clip twice in a row
    two = [r for r in clip_pools["sound"] if "Whistling" in r["labels"]][:1] + one_benign
    plan = plan_for(recipe, clip_pools, "ign-two", events=alarms + two)
    ids = [s.clip["id"] for s in plan.segments[1:]]
    assert len(ids) >= 3 and set(ids) == {r["id"] for r in two}
    assert all(a != b for a, b in zip(ids, ids[1:]))
    # a catalog may accept a single benign clip for a tiny split (the demo's validation split)
    plan = plan_for(recipe, clip_pools, "ign-one", events=alarms + one_benign, options={"min_benign_clips": 1})
    assert {s.clip["id"] for s in plan.segments[1:]} == {one_benign[0]["id"]}
    assert not [t for t in plan.turns if t.kind == "respond"]


def test_system_prompts_describe_a_quiet_assistant(recipe):
    prompts = recipe.offline_tables()["instructions"]["system_prompts"]
    assert len(set(prompts)) >= 20
    assert all(isinstance(p, str) for p in prompts)


# ---------------------------------------------------------------- built episodes


def test_built_ignore_episodes_stay_silent(request):
    rows = built_rows(request, SUBTASK)
    for row in rows:
        assert episode_violations(row) == []
        assert not [t for t in row["turns"] if t["kind"] == "respond"]
        assert not any(row["chunk_labels"])
        for i, seg in enumerate(row["segments"]):
            if seg["role"] != "environment":
                continue
            assert set(seg["labels"]) & BENIGN and not set(seg["labels"]) & NEVER
            assert [t["kind"] for t in row["turns"] if i in t["evidence"]] == ["stay_silent"]
