import hashlib
import io
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import soundfile as sf
import yaml

from conftest import REPO, demo_catalog, run_build
from streamaudio.audit.validate import validate
from streamaudio.build.builder import assign_splits
from streamaudio.build.catalog import CatalogError, load_catalog

DEMO = yaml.safe_load((REPO / "manifests" / "demo.yaml").read_text())
SUBTASKS = sorted(DEMO["subtasks"])


def shard_hashes(out: Path) -> dict:
    return {str(p.relative_to(out)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted((out / "data").rglob("*.parquet"))}


def test_one_and_two_workers_give_identical_shards(built):
    a, b = shard_hashes(built["one"]), shard_hashes(built["two"])
    assert a and a == b
    assert (built["one"] / "rejects.parquet").read_bytes() == (built["two"] / "rejects.parquet").read_bytes()


def test_layout_splits_and_card(built):
    out = built["one"]
    for st in SUBTASKS:
        names = {p.name.split("-")[0] for p in (out / "data" / st).glob("*.parquet")}
        assert names == {"train", "validation", "test"}
    b = json.loads((out / "build.json").read_text())
    assert len(SUBTASKS) >= 16  # the demo shows every built sub-task
    assert b["episodes"]["written"] == sum(st["count"] for st in DEMO["subtasks"].values())
    assert b["episodes"]["rejected"] == 0
    assert set(b["subtasks"]) == set(SUBTASKS)
    assert validate(out).ok


def test_load_dataset_with_audio_feature(built):
    import datasets

    for st in SUBTASKS:
        dd = datasets.load_dataset(str(built["one"]), name=st)
        assert set(dd) == {"train", "validation", "test"}
        ds = dd["train"]
        assert isinstance(ds.features["audio"], datasets.Audio) and ds.features["audio"].sampling_rate == 16000
        ds = ds.cast_column("audio", datasets.Audio(decode=False))
        row = ds[0]
        x, sr = sf.read(io.BytesIO(row["audio"]["bytes"]))
        assert sr == 16000 and len(x) == round(row["duration_s"] * 16000)
        assert row["subtask"] == st and len(row["chunk_labels"]) == round(row["duration_s"] / 0.4)


def test_accounting_and_rejects(built, fixture_root):
    out = built["one"]
    b = json.loads((out / "build.json").read_text())
    truth = json.loads((fixture_root / "_truth" / "faults.json").read_text())
    rejects = pq.read_table(out / "rejects.parquet").to_pylist()
    names = {"librispeech": "librispeech", "audioset": "audioset", "musan_noise": "musan", "ultrachat": "ultrachat"}
    for name, corpus in names.items():
        src = b["inputs"][name]
        assert src["seen"] == src["used"] + src["rejected"]
        assert src["seen"] == truth[corpus]["good"] + len(truth[corpus]["rejects"])
        mine = [r for r in rejects if r["source"] == name]
        assert len(mine) == src["rejected"]
        planted = {r["item"].split(":", 1)[1] for r in mine if r["stage"] == "source"}
        assert planted == set(truth[corpus]["rejects"])
        assert all(r["stage"] in ("source", "align", "tts", "asr_check") and r["reason"] for r in mine)
        assert sum(r["stage"] == "align" for r in mine) == src.get("align_failed", 0)
        assert 0 < src["drawn"] <= src["used"]
    assert b["rejects"]["total"] == len(rejects)


def test_no_reply_is_due_while_its_utterance_is_still_heard(built):
    """Over every episode of the demo: in the 100 ms after the evidence_s of each turn that waits
    for a whole utterance (and after each reply's trigger), the stream is within 1 dB of the
    stream without that utterance."""
    import yaml

    from streamaudio.audit.audible import AUDIBLE_LIMIT_DB, build_residues

    res = build_residues(built["one"])
    loud = [r for r in res if r.at_evidence_db > AUDIBLE_LIMIT_DB or (r.kind == "respond" and r.at_trigger_db > AUDIBLE_LIMIT_DB)]
    assert not loud, loud[:5]
    checked = {r.episode.rsplit("-", 2)[0] for r in res}
    speech_led = {"asr_utterance", "asr_noisy", "chat_single_turn", "chat_multi_turn", "s2tt_instructed",
                  "instr_spoken", "agent_tool_call", "agent_addressee"}
    assert speech_led <= checked <= set(yaml.safe_load(built["catalog"].read_text())["subtasks"])


def test_resume_reuses_finished_shards(built, tmp_path):
    out = tmp_path / "resumed"
    shutil.copytree(built["one"], out)
    shutil.copytree(built["one"].with_name("one.work"), out.with_name("resumed.work"))
    # the work summaries name the old paths; a resumed run in a new folder must not trust them
    b = run_build(built["catalog"], out, num_cpus=1)
    assert shard_hashes(out) == shard_hashes(built["one"])
    b2 = run_build(built["catalog"], out, num_cpus=1)
    assert b2["run"]["shards_reused"] == b2["run"]["shards"] > 0
    assert shard_hashes(out) == shard_hashes(built["one"])
    # a damaged shard is rebuilt, not trusted
    victim = sorted((out / "data").rglob("*.parquet"))[0]
    victim.write_bytes(b"broken")
    b3 = run_build(built["catalog"], out, num_cpus=1)
    assert b3["run"]["shards_reused"] == b3["run"]["shards"] - 1
    assert shard_hashes(out) == shard_hashes(built["one"])


def _rewrite(shard: Path, change) -> None:
    t = pq.read_table(shard)
    rows = t.to_pylist()
    change(rows[0])
    pq.write_table(pa.Table.from_pylist(rows, schema=t.schema), shard)


@pytest.mark.parametrize("what,change,needle", [
    ("label", lambda r: r["chunk_labels"].__setitem__(0, 1 - r["chunk_labels"][0]), "chunk_labels disagree"),
    ("audio", lambda r: r["audio"].__setitem__("bytes", r["audio"]["bytes"][: len(r["audio"]["bytes"]) // 2]), "audio"),
    ("turn", lambda r: r["turns"][0].__setitem__("chunk", r["turns"][0]["chunk"] + 1), "chunk rule"),
    ("duration", lambda r: r.__setitem__("duration_s", r["duration_s"] + 0.1), "whole number of chunks"),
])
def test_validate_catches_a_hand_corrupted_shard(built, tmp_path, what, change, needle):
    out = tmp_path / what
    shutil.copytree(built["one"], out)
    shard = sorted((out / "data" / "asr_utterance").glob("train-*.parquet"))[0]
    _rewrite(shard, change)
    rep = validate(out)
    assert not rep.ok and any(needle in p for p in rep.problems), rep.problems
    cli = subprocess.run([sys.executable, "-m", "streamaudio", "validate", str(out)], capture_output=True, text=True)
    assert cli.returncode == 1 and needle in cli.stderr


def test_validate_accepts_the_build_via_cli(built):
    cli = subprocess.run([sys.executable, "-m", "streamaudio", "validate", str(built["two"])], capture_output=True, text=True)
    assert cli.returncode == 0, cli.stderr


def test_catalog_errors_are_readable(tmp_path, fixture_root):
    cat = yaml.safe_load(demo_catalog(tmp_path, fixture_root).read_text())
    cat["subtasks"]["asr_utterance"]["cuont"] = 3
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(cat))
    with pytest.raises(CatalogError, match="cuont"):
        load_catalog(tmp_path / "bad.yaml")
    cat = yaml.safe_load(demo_catalog(tmp_path, fixture_root).read_text())
    cat["subtasks"]["asr_utterance"]["pools"]["speech"] = "nope"
    (tmp_path / "bad2.yaml").write_text(yaml.safe_dump(cat))
    with pytest.raises(CatalogError, match="unknown source 'nope'"):
        load_catalog(tmp_path / "bad2.yaml")


def test_build_fails_fast_on_a_wrong_layout(tmp_path, fixture_root):
    cat = yaml.safe_load(demo_catalog(tmp_path, fixture_root).read_text())
    cat["sources"]["librispeech"]["root"] = str(fixture_root / "musan")
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cat))
    cli = subprocess.run([sys.executable, "-m", "streamaudio", "build", "--catalog", str(tmp_path / "c.yaml"),
                          "--out", str(tmp_path / "o"), "--no-progress"], capture_output=True, text=True)
    assert cli.returncode == 2 and "Expected layout" in cli.stderr


def test_split_counts_and_group_splits():
    from streamaudio.build.catalog import Catalog

    cat = Catalog(name="x", seed=0, chunk_s=0.4, splits={"train": 0.8, "validation": 0.1, "test": 0.1}, sources={},
                  subtasks={}, recipe_dirs=(), path=Path("."), fingerprint="")
    assert cat.split_counts(10) == {"train": 8, "validation": 1, "test": 1}
    assert cat.split_counts(3) == {"train": 1, "validation": 1, "test": 1}
    assert sum(cat.split_counts(1001).values()) == 1001
    groups = [f"spk{i % 13}" for i in range(200)]
    a = assign_splits(groups, cat.splits)
    assert set(a.values()) == {"train", "validation", "test"} and len(a) == 13
    assert assign_splits(list(reversed(groups)), cat.splits) == a  # order-free
    bigger = assign_splits(groups + ["spk99"], cat.splits)
    assert sum(bigger[g] != a[g] for g in a) <= 2  # adding a group barely moves the others


def test_template_rows_are_in_every_split_and_the_others_in_one():
    import pyarrow as pa

    from streamaudio.build.builder import split_table
    from streamaudio.sources import CLIP_SCHEMA, clip_row

    rows = [clip_row(id=f"c{i}", split_group=f"spk{i % 7}") for i in range(40)]
    rows += [clip_row(id=f"p{k}", split_group=f"*prompts#voice={k}") for k in range(3)]
    parts = split_table(pa.Table.from_pylist(rows, CLIP_SCHEMA), {"train": 0.8, "validation": 0.1, "test": 0.1})
    ids = {s: set(t.column("id").to_pylist()) for s, t in parts.items()}
    for s in ids:
        assert {"p0", "p1", "p2"} <= ids[s] and len(ids[s]) > 3  # templates everywhere, and some own rows
    own = [ids[s] - {"p0", "p1", "p2"} for s in ids]
    assert sum(map(len, own)) == 40 and not (own[0] & own[1] or own[0] & own[2] or own[1] & own[2])


def test_each_language_of_a_multilingual_source_reaches_every_split():
    import pyarrow as pa

    from streamaudio.build.builder import split_table
    from streamaudio.sources import CLIP_SCHEMA, clip_row

    # 3 speakers per language: split over all 9 at once, some language would miss a split
    rows = [clip_row(id=f"{lang}{i}", language=lang, split_group=f"{lang}-spk{i % 3}")
            for lang in ("en", "fr", "zh-CN") for i in range(6)]
    parts = split_table(pa.Table.from_pylist(rows, CLIP_SCHEMA), {"train": 0.8, "validation": 0.1, "test": 0.1})
    for s, t in parts.items():
        assert set(t.column("language").to_pylist()) == {"en", "fr", "zh-CN"}, s
    groups = [set(t.column("split_group").to_pylist()) for t in parts.values()]
    assert not (groups[0] & groups[1] or groups[0] & groups[2] or groups[1] & groups[2])


def test_sources_from_a_shared_file_under_one_data_root(tmp_path, fixture_root, monkeypatch):
    shared = tmp_path / "sources.yaml"
    shared.write_text(yaml.safe_dump({
        "vars": {"data_root": "/nonexistent/data"},
        "sources": {"librispeech": {"corpus": "librispeech", "root": "${data_root}"},
                    "musan_noise": {"corpus": "musan", "root": "${data_root}"}}}))
    cat = tmp_path / "c.yaml"
    cat.write_text(yaml.safe_dump({
        "seed": 1, "sources_from": "sources.yaml", "vars": {"data_root": str(fixture_root)},
        "subtasks": {"asr_utterance": {"count": 2, "pools": {"speech": "librispeech", "noise": "musan_noise"}}}}))
    c = load_catalog(cat)
    assert c.sources["librispeech"].root == fixture_root.resolve()  # the catalog's vars win over the file's
    monkeypatch.setenv("STREAMAUDIO_DATA_ROOT", str(tmp_path / "elsewhere"))
    assert load_catalog(cat).sources["musan_noise"].root == (tmp_path / "elsewhere").resolve()  # one setting
    monkeypatch.delenv("STREAMAUDIO_DATA_ROOT")
    cat.write_text(cat.read_text().replace("data_root:", "other_root:"))
    assert load_catalog(cat).sources["librispeech"].root == Path("/nonexistent/data")
    shared.write_text(shared.read_text().replace("${data_root}", "${corpora}"))
    with pytest.raises(CatalogError, match=r"\$\{corpora\} is not set"):
        load_catalog(cat)
