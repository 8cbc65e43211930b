"""One conformance suite for every registered recipe: a new recipe is tested by
registering it, without writing a test. Built-in recipes and those of
tests/recipes_extra (a user folder) both run through it."""
import io
import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import soundfile as sf

from conftest import pool_for
from streamaudio.audit.audible import AUDIBLE_LIMIT_DB, episode_residues
from streamaudio.audit.validate import validate_shard
from streamaudio.build.shards import ShardTask, episode_row, plan_episode, run_shard
from streamaudio.format import MAX_EVIDENCE_DELAY_S, SEGMENT_TYPE, chunk_of, taxonomy
from streamaudio.plan import Pool, PoolData, load_recipes
from streamaudio.render.label import TOL, episode_violations

RECIPES = load_recipes()
N_PLANS = 8


def _setup(recipe, clip_pools):
    mapping = {}
    for p, spec in recipe.pool_specs().items():
        try:
            mapping[p] = pool_for(spec)
        except LookupError:
            if not spec.optional:  # a required pool no fixture gives: that is a failure to report
                raise
    mapping = {p: src for p, src in mapping.items() if src in clip_pools}
    tables_in = {p: {"train": pa.Table.from_pylist(clip_pools[src])} for p, src in mapping.items()}
    tables = recipe.offline_tables(tables_in, seed=7)
    data = {p: PoolData.build(f"{src}/train", tables_in[p]["train"]) for p, src in mapping.items()}
    return mapping, tables, data


def _task(recipe, tmp_path, mapping, count=5) -> ShardTask:
    return ShardTask(subtask=recipe.subtask, split="train", index=0, total=1, first=0, count=count,
                     out_path=str(tmp_path / "data" / f"{recipe.subtask}.parquet"),
                     summary_path=str(tmp_path / "work" / "s.json"), plans_path=str(tmp_path / "work" / "p.parquet"),
                     pools={p: [src] for p, src in mapping.items()},
                     pool_keys={p: f"conformance/{recipe.subtask}/{p}" for p in mapping},
                     recipe_dirs=[], seed=7, options={}, fingerprint="x")


@pytest.fixture(scope="module")
def setups(clip_pools):
    return {st: _setup(r, clip_pools) for st, r in RECIPES.items()}


@pytest.mark.parametrize("subtask", sorted(RECIPES))
def test_declared_pools_and_tables_exist(subtask, setups):
    recipe = RECIPES[subtask]
    tax = taxonomy()
    assert tax.subtasks[subtask] == recipe.ability and recipe.version and (recipe.description or "").strip()
    specs = recipe.pool_specs()
    assert specs, "a recipe draws from at least one pool"
    from streamaudio.sources.base import CLIP_KINDS

    for spec in specs.values():
        assert set(spec.kinds) <= set(CLIP_KINDS)
    _, tables, _ = setups[subtask]
    assert set(tables) == set(recipe.tables)
    for name, provider in recipe.providers().items():
        for f in provider.files(recipe.folder):
            assert f.is_file(), (name, f)
        assert tables[name] is not None, name


@pytest.mark.parametrize("subtask", sorted(RECIPES))
def test_plans_are_deterministic_and_keep_the_timing_rules(subtask, setups, tmp_path):
    recipe = RECIPES[subtask]
    mapping, tables, data = setups[subtask]
    task = _task(recipe, tmp_path, mapping, count=N_PLANS)
    pools = lambda: {p: Pool(f"{mapping[p]}/train", d) for p, d in data.items()}  # noqa: E731
    plans = set()
    for eid in task.episode_ids:
        a, seed = plan_episode(task, eid, pools(), recipe, tables)
        b, _ = plan_episode(task, eid, pools(), recipe, tables)
        assert json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True), "planning must be pure"
        plans.add(json.dumps(a, sort_keys=True))
        row = episode_row(a, episode_id=eid, subtask=subtask, ability=recipe.ability, split="train",
                          recipe_version=recipe.version, seed=seed, chunk_s=0.4)
        assert episode_violations(row) == []
        turns, segs = row["turns"], row["segments"]
        assert turns, "an episode supervises something"
        respond_chunks = [t["chunk"] for t in turns if t["kind"] == "respond"]
        assert len(respond_chunks) == len(set(respond_chunks)), "two respond turns in one chunk"
        for t in turns:
            # due at or after the audio it depends on, within a bounded delay
            assert t["evidence_s"] - TOL <= t["trigger_s"] <= t["evidence_s"] + MAX_EVIDENCE_DELAY_S + TOL
            assert t["chunk"] == chunk_of(t["trigger_s"])
            for i in t["evidence"]:
                assert segs[i]["start_s"] <= t["evidence_s"] + TOL
            if t["kind"] == "respond":
                assert t["text"].strip()
                assert t["evidence"] or row["system_prompt"].strip()
            else:
                assert t["evidence"], "every stay_silent turn names its evidence"
        for s in segs:
            assert set(s) == {f.name for f in SEGMENT_TYPE}
            assert isinstance(json.loads(s["attrs"]), dict)
    assert len(plans) > 1, "different episodes must differ"


@pytest.mark.parametrize("subtask", sorted(RECIPES))
def test_recipe_builds_five_valid_episodes(subtask, setups, tmp_path):
    recipe = RECIPES[subtask]
    mapping, tables, data = setups[subtask]
    task = _task(recipe, tmp_path, mapping)
    summary = run_shard(task, tables, data)
    assert summary["episodes"] == 5 and summary["rejects"] == [], summary["rejects"]
    assert validate_shard(task.out_path, subtask, "train") == []
    rows = pq.read_table(task.out_path).to_pylist()
    plans = pq.read_table(task.plans_path).to_pylist()
    assert [r["id"] for r in rows] == [p["id"] for p in plans] == task.episode_ids
    for r, p in zip(rows, plans):
        assert r["provenance"]["plan_sha"] == p["plan_sha"]
        x, sr = sf.read(io.BytesIO(r["audio"]["bytes"]))
        assert sr == 16000 and len(x) == round(r["duration_s"] * 16000) and np.max(np.abs(x)) > 0.01
        assert any(s["snr_db"] is not None for s in r["segments"]) or len(r["segments"]) == 1
        # no reply is due while the utterance it waits for is still heard (nor is its evidence_s)
        for res in episode_residues(r, json.loads(p["plan"])):
            assert res.at_evidence_db <= AUDIBLE_LIMIT_DB, res
            assert res.kind != "respond" or res.at_trigger_db <= AUDIBLE_LIMIT_DB, res
