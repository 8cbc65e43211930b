import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from streamaudio.fixtures import FIXTURES
from streamaudio.sources import ADAPTERS, LayoutError, get_adapter, write_manifest

REASONS = {"corrupt": ("corrupt", "truncated"), "empty": ("empty",), "no transcript": ("no transcript",),
           "not UTF-8": ("UTF-8",), "missing": ("missing",), "not JSON": ("not JSON",),
           "no assistant": ("no assistant",), "silent": ("silent audio",), "garbage": ("garbage segment",),
           "beyond the end": ("beyond the end",), "malformed": ("malformed",), "unparsable": ("unparsable",),
           "bad metadata": ("bad metadata",), "not a file": ("not a file",), "not YAML": ("not YAML",),
           "bad template": ("names [", "not in the intent's values", "without templates")}


def scan(corpus, root, tmp_path, **options):
    return write_manifest(get_adapter(corpus), root, tmp_path / f"{corpus}.parquet", options)


def test_every_registered_adapter_has_a_fixture_writer():
    from streamaudio.sources.base import ANY_KIND, CLIP_KINDS

    assert ADAPTERS.names() == FIXTURES.names()
    for name, cls in ADAPTERS.items():
        assert cls.corpus == name and cls.kind in (*CLIP_KINDS, ANY_KIND) and cls.expected_layout and cls.license


@pytest.mark.parametrize("corpus", ADAPTERS.names())
def test_every_input_is_used_or_rejected_with_its_reason(corpus, fixture_root, tmp_path):
    truth = json.loads((fixture_root / "_truth" / "faults.json").read_text())[corpus]
    res = scan(corpus, fixture_root / truth["root"], tmp_path, **truth.get("options", {}))
    rows = pq.read_table(res.path).to_pylist()
    assert len(rows) == res.used == truth["good"]
    assert res.seen == res.used + res.rejected == truth["good"] + len(truth["rejects"])
    got = {r["item"].split(":", 1)[1]: r["reason"] for r in res.rejects}
    assert set(got) == set(truth["rejects"])
    for item, kind in truth["rejects"].items():
        assert any(w in got[item] for w in REASONS[kind]), (item, got[item])
    assert all(r["stage"] == "source" for r in res.rejects)
    assert len({r["id"] for r in rows}) == len(rows)
    # rows against the fixture's ground truth
    by_id = {r["id"]: r for r in rows}
    for cid, want in truth.get("expect", {}).items():
        assert cid in by_id, f"{cid} missing from the manifest"
        for col, value in want.items():
            got = by_id[cid][col]
            if isinstance(value, float):
                assert got == pytest.approx(value, abs=1e-3), (cid, col, got, value)
            else:
                assert got == value, (cid, col, got, value)
    for r in rows:  # what every adapter's rows must be
        assert r["kind"] == get_adapter(corpus).kind_for(truth.get("options", {}))
        assert r["split_group"] and r["license"] and r["corpus"] == corpus and r["id"].startswith(f"{corpus}:")
        assert r["kind"] == "text" or (r["duration_s"] > 0 and r["sample_rate"] > 0 and Path(r["path"]).is_file())


def test_ray_scan_equals_the_serial_scan(fixture_root, tmp_path, monkeypatch):
    """Units run as Ray tasks in batches; the manifest must not depend on it."""
    import ray

    from streamaudio.parallel import init_ray
    from streamaudio.sources import scan as scan_mod

    monkeypatch.setattr(scan_mod, "UNITS_PER_TASK_TARGET", 3)
    truths = json.loads((fixture_root / "_truth" / "faults.json").read_text())
    ray.shutdown()
    init_ray(num_cpus=2)
    try:
        for corpus in ADAPTERS.names():
            root = fixture_root / truths[corpus]["root"]
            options = truths[corpus].get("options", {})
            serial = scan(corpus, root, tmp_path, **options)
            table, rejects = scan_mod.scan(corpus, root, options, use_ray=True)
            assert table.equals(pq.read_table(serial.path)), corpus
            assert [r["item"] for r in rejects] == [r["item"] for r in serial.rejects], corpus
    finally:
        ray.shutdown()


def test_librispeech_rows(fixture_root, tmp_path):
    rows = pq.read_table(scan("librispeech", fixture_root, tmp_path).path).to_pylist()
    r = rows[0]
    assert r["corpus"] == "librispeech" and r["language"] == "en" and r["sample_rate"] == 16000
    assert r["text"].isupper() and r["split_group"] == f"librispeech:{r['speaker']}"
    assert Path(r["path"]).is_file() and 1.0 < r["duration_s"] < 15


def test_audioset_active_span_finds_the_event(fixture_root, tmp_path):
    rows = {r["id"]: r for r in pq.read_table(scan("audioset", fixture_root, tmp_path).path).to_pylist()}
    truth = [json.loads(l) for l in (fixture_root / "_truth" / "audioset_events.jsonl").read_text().splitlines()]
    for ev in truth:
        r = rows[f"audioset:{ev['id']}"]
        assert ev["label"] in r["labels"]
        # within 5 frames: an impulsive sound fading in (applause) crosses the floor in flickers
        assert abs(r["active_start_s"] - ev["onset_s"]) <= 0.05, (ev, r["active_start_s"])
        # decaying tails (music, bells) fall under the floor early; an end is never late
        assert ev["offset_s"] - 0.5 <= r["active_end_s"] <= ev["offset_s"] + 0.03, (ev, r["active_end_s"])


@pytest.mark.parametrize("corpus", ADAPTERS.names())
def test_a_folder_that_is_not_the_corpus_is_refused(corpus, tmp_path):
    """Every adapter, pointed at a folder that holds something else, says which layout it expected."""
    stray = tmp_path / "not-a-corpus"
    (stray / "sub").mkdir(parents=True)
    (stray / "sub" / "notes.txt").write_text("nothing here is a corpus\n")
    (stray / "readme.md").write_text("# hello\n")
    with pytest.raises(LayoutError) as exc:
        scan(corpus, stray, tmp_path)
    assert "Expected layout" in str(exc.value)


def test_wrong_layout_fails_fast_naming_the_expected_layout(fixture_root, tmp_path):
    for corpus, root in [("librispeech", fixture_root / "AudioSet"), ("audioset", fixture_root / "LibriSpeech"),
                         ("musan", fixture_root / "ultrachat"), ("ultrachat", fixture_root / "musan")]:
        with pytest.raises(LayoutError) as exc:
            scan(corpus, root, tmp_path)
        assert "Expected layout" in str(exc.value) and corpus in str(exc.value)
    with pytest.raises(LayoutError):
        scan("librispeech", tmp_path / "does-not-exist", tmp_path)
    with pytest.raises(LayoutError, match="test-other"):
        scan("librispeech", fixture_root, tmp_path, subsets=["test-other"])


def test_ultrachat_original_release_shape(tmp_path):
    d = tmp_path / "uc"
    d.mkdir()
    (d / "train_0.jsonl").write_text(
        json.dumps({"id": "7", "data": ["How are you?", "Fine, thanks."]}) + "\n"
        + json.dumps({"id": "8", "data": ["Only a question"]}) + "\n" + "[1, 2]\n"
    )
    res = scan("ultrachat", d, tmp_path)
    rows = pq.read_table(res.path).to_pylist()
    assert [(r["id"], r["text"], r["response"], r["dialogue"], r["turn"]) for r in rows] == [
        ("ultrachat:7:0", "How are you?", "Fine, thanks.", "ultrachat:7", 0)]
    assert sorted(r["reason"] for r in res.rejects) == ["line is not a JSON object", "no assistant reply"]


def test_manifest_write_is_atomic(fixture_root, tmp_path):
    res = scan("musan", fixture_root, tmp_path)
    assert res.path.exists() and not list(tmp_path.glob("*.tmp"))


def test_active_span_of_a_long_clip_reads_it_in_bounded_memory(tmp_path):
    """A 20-minute clip (AudioSet holds some hours long): the span is found, and the memory
    used does not grow with the clip (the whole clip decoded would be 77 MB of float32)."""
    import tracemalloc

    import numpy as np
    import soundfile as sf

    from streamaudio.sources.base import active_span

    sr, minutes, event_at = 16000, 20, 700.0
    path = tmp_path / "long.flac"
    rng = np.random.default_rng(0)
    with sf.SoundFile(path, "w", sr, 1, subtype="PCM_16", format="FLAC") as f:
        for k in range(minutes):
            x = (rng.standard_normal(60 * sr) * 10 ** (-50 / 20)).astype(np.float32)
            if k * 60 <= event_at < (k + 1) * 60:
                i = int((event_at - k * 60) * sr)
                x[i:i + sr] += 0.3 * np.sin(2 * np.pi * 880 * np.arange(sr) / sr).astype(np.float32)
            f.write(x)
    tracemalloc.start()
    a0, a1 = active_span(path)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert abs(a0 - event_at) <= 0.03 and abs(a1 - (event_at + 1.0)) <= 0.03
    assert peak < 40 * 2**20, f"peak {peak / 2**20:.0f} MiB"


def test_a_sparse_clip_is_not_mistaken_for_silence(tmp_path):
    """Probes can all fall in the quiet part of a clip whose only sound is short: the file is
    then read whole before it is called silent."""
    import numpy as np
    import soundfile as sf

    from streamaudio.sources.base import ProbeError, probe_audio

    x = np.zeros(16000 * 10, np.float32)
    x[int(3.33 * 16000):int(3.36 * 16000)] = 0.5  # a 30 ms click in 10 s of digital silence
    sf.write(tmp_path / "click.wav", x, 16000)
    assert probe_audio(tmp_path / "click.wav").frames == len(x)
    sf.write(tmp_path / "silence.wav", np.zeros_like(x), 16000)
    with pytest.raises(ProbeError, match="digital silence"):
        probe_audio(tmp_path / "silence.wav")


def test_a_truncated_wav_is_caught_though_libsndfile_would_read_it_short(tmp_path):
    import numpy as np
    import soundfile as sf

    from streamaudio.sources.base import ProbeError, probe_audio

    sf.write(tmp_path / "ok.wav", (np.random.default_rng(0).standard_normal(48000) * 0.1).astype(np.float32), 16000,
             subtype="PCM_16")
    data = (tmp_path / "ok.wav").read_bytes()
    (tmp_path / "cut.wav").write_bytes(data[: len(data) // 3])
    assert sf.info(str(tmp_path / "cut.wav")).frames > 0  # what a plain probe would accept
    assert probe_audio(tmp_path / "ok.wav").frames == 48000
    with pytest.raises(ProbeError, match="truncated audio: the WAV header declares 96000 bytes"):
        probe_audio(tmp_path / "cut.wav")


@pytest.mark.parametrize("rows_per_unit", [1, 3])
def test_hf_units_span_row_groups_without_losing_or_repeating_rows(fixture_root, tmp_path, monkeypatch, rows_per_unit):
    """hf units are runs of consecutive row groups / record batches; the rows (and their row
    numbers) must not depend on how the runs are cut."""
    from streamaudio.sources import hf

    truth = json.loads((fixture_root / "_truth" / "faults.json").read_text())["hf"]
    root, options = fixture_root / truth["root"], truth.get("options", {})
    whole = pq.read_table(scan("hf", root, tmp_path / "whole", **options).path).to_pylist()
    monkeypatch.setattr(hf, "ROWS_PER_UNIT", rows_per_unit)
    units = get_adapter("hf").units(root, options)
    assert max(u["batches"][1] - u["batches"][0] for u in units) >= 1
    cut = pq.read_table(scan("hf", root, tmp_path / "cut", **options).path).to_pylist()
    key = lambda r: r["id"]  # noqa: E731
    assert sorted(cut, key=key) == sorted(whole, key=key)
    assert len(units) > len({u["rel"] for u in units})  # the fixture's files do hold several groups


def test_a_root_relative_to_the_working_directory_scans_the_same(fixture_root, tmp_path, monkeypatch):
    """`streamaudio manifest --root data/corpus` from a shell: every adapter finds the same
    items, and rows name files by absolute path (a build's workers may run elsewhere)."""
    truths = json.loads((fixture_root / "_truth" / "faults.json").read_text())
    monkeypatch.chdir(fixture_root)
    for corpus in ADAPTERS.names():
        truth = truths[corpus]
        res = scan(corpus, Path(truth["root"]), tmp_path, **truth.get("options", {}))
        assert res.used == truth["good"], corpus
        rows = pq.read_table(res.path).to_pylist()
        assert all(Path(r["path"]).is_absolute() for r in rows if r["kind"] != "text"), corpus
