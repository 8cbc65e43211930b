"""The full StreamAudio-2M catalog (manifests/streamaudio-2m.yaml) and `build --plan-only`:
counts per ability are the paper's, every sub-task of the taxonomy is there, sources resolve
under one data root, and a plan-only run reports missing sources instead of stopping."""
import json
import re
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from conftest import REPO
from streamaudio.build.catalog import load_catalog
from streamaudio.cli import app
from streamaudio.format import taxonomy

FULL = REPO / "manifests" / "streamaudio-2m.yaml"
# The paper's items per ability (Audio Interaction Model, StreamAudio-2M; ../shared/docs/streamaudio-2m.md)
PAPER = {"voice_chatting": 539_000, "instruction_following": 487_000, "audio_understanding": 382_000,
         "speech_translation": 357_000, "real_time_asr": 270_000, "proactive_response": 171_000,
         "environment_agent": 130_000}
DOC = REPO.parent / "shared" / "docs" / "streamaudio-2m.md"


def test_the_paper_counts_match_the_doc():
    if not DOC.is_file():
        pytest.skip("the project's shared docs are not beside the repository")
    rows = re.findall(r"^\| (\w+) \| [^|]+ \| (\d+)k \|", DOC.read_text(), flags=re.M)
    assert {slug: int(k) * 1000 for slug, k in rows} == PAPER


def test_every_subtask_with_counts_summing_to_the_papers_per_ability():
    cat = load_catalog(FULL)
    tax = taxonomy()
    assert set(cat.subtasks) == set(tax.subtasks), "all 28 sub-tasks of the taxonomy"
    per_ability = {}
    for st, spec in cat.subtasks.items():
        per_ability[tax.subtasks[st]] = per_ability.get(tax.subtasks[st], 0) + spec.count
    assert per_ability == PAPER
    assert sum(s.count for s in cat.subtasks.values()) == 2_336_000
    # no sub-task is left a token share: each carries at least an eighth of its ability's items
    for st, spec in cat.subtasks.items():
        assert spec.count >= PAPER[tax.subtasks[st]] / 8, st


def test_rounds_where_the_recipe_takes_them():
    raw = yaml.safe_load(FULL.read_text())
    assert raw["subtasks"]["music_description"]["options"]["rounds"] == [3, 15]
    for st, spec in raw["subtasks"].items():
        lo_hi = (spec.get("options") or {}).get("rounds")
        if lo_hi is not None:
            assert 3 <= lo_hi[0] <= lo_hi[1] <= 15, st


def test_sources_are_real_corpora_under_one_data_root(tmp_path, monkeypatch):
    monkeypatch.delenv("STREAMAUDIO_DATA_ROOT", raising=False)
    cat = load_catalog(FULL, {"data_root": str(tmp_path)})
    used = cat.needed_sources()
    fixtures = [n for n in used if "fixture" in str(cat.sources[n].root)]
    assert not fixtures
    for name in used:
        root = cat.sources[name].root
        if cat.sources[name].corpus == "prompts":  # the toolkit's own templates ship with it
            assert root == (REPO / "manifests" / "spoken_prompts").resolve()
        else:
            assert root == tmp_path or tmp_path in root.parents, (name, root)
    # the environment sets it too, and the command line wins over it
    monkeypatch.setenv("STREAMAUDIO_DATA_ROOT", "/elsewhere")
    assert load_catalog(FULL).sources["fma"].root == Path("/elsewhere/fma")
    assert load_catalog(FULL, {"data_root": str(tmp_path)}).sources["fma"].root == tmp_path / "fma"
    corpora = {cat.sources[n].corpus for n in used}
    assert {"librispeech", "commonvoice", "gigaspeech", "covost2", "aishell", "audioset", "fma", "moss", "gammacorpus",
            "ultrachat", "magpie", "wham", "dns_noise", "musan", "musan_music"} <= corpora


def run_plan(args: list[str], tmp_path: Path) -> tuple[int, str, dict]:
    import ray

    ray.shutdown()
    try:
        res = CliRunner().invoke(app, ["build", *args, "--plan-only", "--num-cpus", "1", "--no-progress",
                                       "--cache-dir", str(tmp_path / "cache"), "--report", str(tmp_path / "plan.json")])
    finally:
        ray.shutdown()
    report = json.loads((tmp_path / "plan.json").read_text()) if (tmp_path / "plan.json").is_file() else {}
    return res.exit_code, res.output, report


def test_plan_only_lists_a_missing_source_and_plans_the_rest(tmp_path, fixture_root):
    cat = {
        "name": "plan-test", "seed": 3, "shard_size": 4, "splits": {"train": 0.8, "validation": 0.1, "test": 0.1},
        "sources": {"audioset": {"corpus": "audioset", "root": str(fixture_root)},
                    "musan_noise": {"corpus": "musan", "root": str(fixture_root)},
                    "librispeech": {"corpus": "librispeech", "root": str(tmp_path / "not-downloaded")}},
        "subtasks": {"proactive_household": {"count": 40, "pools": {"events": "audioset", "noise": "musan_noise"}},
                     "asr_utterance": {"count": 25, "pools": {"speech": "librispeech", "noise": "musan_noise"}}},
    }
    path = tmp_path / "cat.yaml"
    path.write_text(yaml.safe_dump(cat))
    code, out, rep = run_plan(["--catalog", str(path), "--plan-sample", "4"], tmp_path)
    assert code == 0, out
    assert set(rep["missing_sources"]) == {"librispeech"} and "not-downloaded" in rep["missing_sources"]["librispeech"]
    assert "librispeech" in out and "missing" in out
    blocked, ready = rep["subtasks"]["asr_utterance"], rep["subtasks"]["proactive_household"]
    assert blocked["status"] == "blocked" and blocked["missing_sources"] == ["librispeech"] and blocked["hours"] is None
    assert ready["status"] == "ready" and ready["episodes"] == 40
    assert ready["corpora"] == ["audioset", "musan"]
    assert sum(ready["splits"].values()) == 40
    assert ready["sample"]["planned"] > 0 and ready["mean_episode_s"] > 1.0
    # hours: each split's episodes times its planned sample's mean length
    want = sum(n * ready["sample"]["splits"][s]["mean_episode_s"] for s, n in ready["splits"].items()) / 3600
    assert ready["hours"] == pytest.approx(want) and ready["hours"] > 0
    assert ready["pools"]["events"]["clips"]["train"] > 0
    assert rep["sources"]["audioset"]["status"] == "present" and rep["sources"]["audioset"]["used"] > 0
    assert rep["total"]["ready_episodes"] == 40 and rep["blocked"] == ["asr_utterance"]
    # nothing rendered or written but the report and the caches
    assert {p.name for p in tmp_path.iterdir()} == {"cat.yaml", "cache", "plan.json"}
    assert not any(tmp_path.glob("**/*.parquet")) or all("stages" in p.parts for p in tmp_path.glob("**/*.parquet"))


def test_plan_only_over_the_full_catalog_with_nothing_downloaded(tmp_path):
    empty = tmp_path / "data"
    empty.mkdir()
    code, out, rep = run_plan(["--catalog", str(FULL), "--data-root", str(empty)], tmp_path)
    assert code == 0, out
    tax = taxonomy()
    assert set(rep["subtasks"]) == set(tax.subtasks)
    assert all(v["status"] == "blocked" and v["missing_sources"] for v in rep["subtasks"].values())
    assert rep["sources"]["prompts"]["status"] == "present"  # shipped with the toolkit
    assert set(rep["missing_sources"]) == set(rep["sources"]) - {"prompts"}
    assert {a: v["episodes"] for a, v in rep["abilities"].items()} == PAPER
    for st in tax.subtasks:
        assert st in out
    assert "missing sources" in out and str(empty) in out


def test_build_without_out_needs_plan_only(tmp_path):
    res = CliRunner().invoke(app, ["build", "--catalog", str(FULL)])
    assert res.exit_code == 2 and "--out" in res.output
