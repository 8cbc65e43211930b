from collections import Counter

import numpy as np
import pyarrow.parquet as pq
import pytest

from streamaudio.plan import PlanContext, Pool, load_recipes
from streamaudio.text.curation import candidates, check, curate, ground, inventory, suitable
from streamaudio.sources import get_adapter, write_manifest


@pytest.fixture(scope="module")
def sounds(fixture_root, tmp_path_factory):
    out = tmp_path_factory.mktemp("cur") / "as.parquet"
    write_manifest(get_adapter("audioset"), fixture_root, out)
    return pq.read_table(out).to_pylist()


@pytest.fixture(scope="module")
def tables():
    return load_recipes()["proactive_household"].offline_tables()


@pytest.fixture(scope="module")
def settings():
    from streamaudio.text.tables import load_yaml, table_path

    return load_yaml(table_path("curation/household_settings.yaml", None))


def test_offline_curation_keeps_only_checked_scenarios(sounds, tables, settings):
    tables = {**tables, "curation": settings}
    policy = tables["policy"]["labels"]
    table, dropped = curate(None, tables["curation"], sounds, policy, seed=1)
    counts, _ = inventory(sounds)
    kept = table["scenarios"]
    assert table["writer"] == "rules:label-co-occurrence" and 0 < len(kept) <= tables["curation"]["n_scenarios"]
    for i, sc in enumerate(kept):
        labels = [e["label"] for e in sc["events"]]
        assert all(counts[l] for l in labels) and max(Counter(labels).values()) <= 2
        assert any(policy[l]["action"] == "respond" for l in labels)
        assert all(any(suitable(c) for c in candidates(e, sounds)) for e in sc["events"])
        assert check(sc, counts, policy, kept[:i], sounds) == ""
    assert all(d["reason"].split(":")[0] in {"coherence", "plausibility", "diversity", "grounding", "temporal order"}
               for d in dropped)
    assert curate(None, tables["curation"], sounds, policy, seed=1) == (table, dropped)  # deterministic


def test_each_check_can_fail(sounds, tables):
    policy = tables["policy"]["labels"]
    counts, _ = inventory(sounds)
    ok = {"title": "t", "events": [{"label": "Doorbell", "note": ""}, {"label": "Music", "note": ""}, {"label": "Knock", "note": ""}]}
    assert check(ok, counts, policy, [], sounds) == ""
    cases = {
        "coherence": {"title": "c", "events": [{"label": "Chainsaw", "note": ""}] * 3},
        "plausibility": {"title": "p", "events": [{"label": "Music", "note": ""}, {"label": "Bark", "note": ""}, {"label": "Music", "note": ""}]},
        "diversity": {"title": "d", "events": list(reversed(ok["events"]))},
        "temporal order": {"title": "o", "events": [{"label": "Doorbell", "note": "", "order": 2}, {"label": "Knock", "note": "", "order": 1}, {"label": "Music", "note": "", "order": 3}]},
    }
    for name, sc in cases.items():
        assert check(sc, counts, policy, [ok], sounds).startswith(name), name
    no_clip = [r for r in sounds if "Knock" not in r["labels"]]
    counts_all, _ = inventory(sounds)
    assert check(ok, counts_all, policy, [], no_clip).startswith("grounding")


def test_grounding_picks_among_the_top_candidates(sounds):
    event = {"label": "Doorbell", "note": "guests arriving"}
    top = candidates(event, sounds)
    assert 0 < len(top) <= 3 and all("Doorbell" in c["labels"] for c in top)
    picks = {ground(event, sounds, np.random.default_rng(s))["id"] for s in range(30)}
    assert picks <= {c["id"] for c in top if suitable(c)} and len(picks) > 1
    assert ground({"label": "Chainsaw"}, sounds, np.random.default_rng(0)) is None


def test_recipe_follows_a_curated_scenario(sounds, fixture_root, tmp_path, settings):
    recipe = load_recipes()["proactive_household"]
    tables = recipe.offline_tables()
    table, _ = curate(None, settings, sounds, tables["policy"]["labels"], seed=3)
    tables["scenarios"] = {"writer": table["writer"], "by_split": {"train": table["scenarios"]}}
    out = tmp_path / "musan.parquet"
    write_manifest(get_adapter("musan"), fixture_root, out)
    noise = pq.read_table(out).to_pylist()
    sequences = {tuple(e["label"] for e in sc["events"]) for sc in table["scenarios"]}
    for i in range(10):
        ctx = PlanContext(episode_id=f"e{i}", subtask="proactive_household", split="train",
                          rng=np.random.default_rng(i), pools={"events": Pool("e", sounds), "noise": Pool("n", noise)},
                          tables=tables)
        plan = recipe.plan(ctx)
        events = [s for s in plan.segments if s.role == "environment"]
        # each grounded clip carries its scenario event's label, in the scenario's order
        assert any(len(seq) == len(events) and all(l in s.clip["labels"] for l, s in zip(seq, events))
                   for seq in sequences)


def test_llm_curation_through_the_schema(sounds, tables, tmp_path):
    from streamaudio.text.devserver import DevServer
    from streamaudio.text.llm import LLMClient, LLMConfig
    from streamaudio.text.tables import load_yaml, table_path

    settings = load_yaml(table_path("curation/household_settings.yaml", None))
    policy = tables["policy"]["labels"]
    counts, _ = inventory(sounds)
    with DevServer() as srv:
        llm = LLMClient(LLMConfig(base_url=srv.base_url, model="dev-model", timeout_s=5), cache_dir=tmp_path)
        table, dropped = curate(llm, settings, sounds, policy, seed=1)
        calls = list(srv.log)
    assert table["writer"] == "llm:dev-model"
    assert len(calls) == 2 * settings["n_scenarios"] == llm.usage.as_dict()["scenarios"]["calls"]
    allowed = sorted(lab for lab in counts if lab in policy)
    for call in calls:
        schema = call["request"]["response_format"]["json_schema"]["schema"]
        # the schema admits exactly the labels this pool has and the policy knows
        assert schema["properties"]["events"]["items"]["properties"]["label"]["enum"] == allowed
        assert call["request"]["messages"][0]["content"] == settings["llm_system"]
    assert table["scenarios"], dropped
    assert not [d for d in dropped if d["reason"].startswith("coherence")]
    for sc in table["scenarios"]:
        assert all(counts[e["label"]] for e in sc["events"])
