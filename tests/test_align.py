import itertools
import json
import math
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from streamaudio.align.base import AlignmentFailure
from streamaudio.align.g2p import arpabet
from streamaudio.sources import get_adapter, write_manifest

torch = pytest.importorskip("torch")
from streamaudio.align.ctc import ctc_viterbi  # noqa: E402


@pytest.fixture(scope="module")
def librispeech(fixture_root, tmp_path_factory):
    out = tmp_path_factory.mktemp("ls") / "ls.parquet"
    write_manifest(get_adapter("librispeech"), fixture_root, out)
    rows = pq.read_table(out).to_pylist()
    truth = {j["id"]: j["words"] for j in map(json.loads, (fixture_root / "_truth" / "librispeech_words.jsonl").read_text().splitlines())}
    return out, rows, truth


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    pytest.importorskip("transformers")
    from streamaudio.align.models import write_random_wav2vec2

    return write_random_wav2vec2(tmp_path_factory.mktemp("tiny-w2v2"), "tiny", seed=0)


def _peaked(labels, C, p=0.9):
    x = np.full((len(labels), C), (1 - p) / (C - 1))
    for t, c in enumerate(labels):
        x[t, c] = p
    return torch.log(torch.tensor(x, dtype=torch.float32))


def test_ctc_viterbi_recovers_known_boundaries():
    lab = [0, 0, 1, 1, 1, 0, 2, 2, 0, 2, 2, 0, 3, 3, 3, 3, 0, 0]
    spans = ctc_viterbi(_peaked(lab, 5), torch.tensor([1, 2, 2, 3]), blank=0)
    assert spans == [(0, 2, 5), (1, 6, 8), (2, 9, 11), (3, 12, 16)]


def test_ctc_viterbi_batch_with_padding_matches_single_items():
    a = _peaked([0, 1, 1, 0, 2, 2, 2, 0, 3, 0], 5)
    b = _peaked([1, 1, 0, 0, 4, 4], 5)
    lp = torch.full((2, 10, 5), -3.0)
    lp[0], lp[1, :6] = a, b
    both = ctc_viterbi(lp, torch.tensor([[1, 2, 3], [1, 4, 0]]), 0, torch.tensor([10, 6]), torch.tensor([3, 2]))
    assert both == [ctc_viterbi(a, torch.tensor([1, 2, 3]), 0), ctc_viterbi(b, torch.tensor([1, 4]), 0)]


def test_ctc_viterbi_repeated_token_needs_a_blank_and_too_short_has_no_path():
    # "aa" needs a blank between the two a's, even where the blank is unlikely
    assert ctc_viterbi(_peaked([1, 1, 1], 3), torch.tensor([1, 1]), 0) == [(0, 0, 1), (1, 2, 3)]
    assert ctc_viterbi(_peaked([1, 1], 3), torch.tensor([1, 1]), 0) is None
    assert ctc_viterbi(_peaked([1, 2], 4), torch.tensor([1, 2, 3]), 0) is None


def _path_score(lp, states, ext):
    return sum(float(lp[t, ext[s]]) for t, s in enumerate(states))


@pytest.mark.parametrize("seed", range(8))
def test_ctc_viterbi_is_optimal_against_brute_force(seed):
    g = torch.Generator().manual_seed(seed)
    T, C = 6, 3
    lp = torch.log_softmax(torch.randn(T, C, generator=g) * 2, dim=-1)
    target = [1, 2] if seed % 2 else [1, 1]
    ext = [0, target[0], 0, target[1], 0]
    best, best_states = -math.inf, None
    for states in itertools.product(range(5), repeat=T):
        if states[0] not in (0, 1) or states[-1] not in (3, 4):
            continue
        ok = all(b - a in (0, 1) or (b - a == 2 and ext[b] != 0 and ext[b] != ext[a]) for a, b in zip(states, states[1:]))
        if ok and _path_score(lp, states, ext) > best:
            best, best_states = _path_score(lp, states, ext), states
    spans = ctc_viterbi(lp, torch.tensor(target), 0)
    states = [0] * T
    for j, f0, f1 in spans:
        for t in range(f0, f1):
            states[t] = 2 * j + 1
    # blanks: whichever blank state lies between tokens; score only needs the emitted symbol
    got = sum(float(lp[t, target[(s - 1) // 2] if s % 2 else 0]) for t, s in enumerate(states))
    assert got == pytest.approx(best, abs=1e-4)


def test_ctc_aligner_end_to_end_with_a_tiny_random_model(tiny_model, librispeech):
    from streamaudio.align.ctc import CTCAligner
    from streamaudio.audio import load_clip

    aligner = CTCAligner(tiny_model, device="cpu")
    _, rows, _ = librispeech
    audios = [load_clip(r) for r in rows[:4]]
    res = aligner.align_batch(audios, [r["text"] for r in rows[:4]], ["en"] * 4)
    for r, a, al in zip(rows[:4], audios, res):
        assert [w.text for w in al.words] == r["text"].split()
        starts = [w.start_s for w in al.words]
        assert starts == sorted(starts) and al.words[-1].end_s <= len(a) / 16000 + 0.021
        assert all(w.end_s > w.start_s for w in al.words) and 0 < al.score <= 1
    # batching does not change results
    single = aligner.align(audios[1], rows[1]["text"], "en")
    assert [(w.start_s, w.end_s) for w in single.words] == [(w.start_s, w.end_s) for w in res[1].words]
    with pytest.raises(AlignmentFailure, match="cannot spell"):
        aligner.align(audios[0], "你好 世界", "zh")


def test_pocketsphinx_boundaries_against_fixture_truth(librispeech):
    from streamaudio.align.pocketsphinx_backend import PocketsphinxAligner
    from streamaudio.audio import load_clip

    _, rows, truth = librispeech
    aligner = PocketsphinxAligner()
    errors = []
    for r in rows[:12]:
        try:
            al = aligner.align(load_clip(r), r["text"], "en")
        except AlignmentFailure:
            continue
        assert [w.text for w in al.words] == r["text"].split()
        pos = 0
        for w in truth[r["id"].split(":", 1)[1]]:
            n = len(w["text"].split())  # espeak-ng voices some pairs as one word ("on the")
            group = al.words[pos:pos + n]
            pos += n
            errors += [abs(group[0].start_s - w["start_s"]), abs(group[-1].end_s - w["end_s"])]
    assert len(errors) > 100
    assert np.median(errors) <= 0.03 and np.percentile(errors, 90) <= 0.1


def test_pocketsphinx_results_do_not_depend_on_what_was_aligned_before(librispeech):
    from streamaudio.align.pocketsphinx_backend import PocketsphinxAligner
    from streamaudio.audio import load_clip

    _, rows, _ = librispeech

    def run(order):
        aligner, out = PocketsphinxAligner(), {}
        for i in order:
            try:
                out[i] = [(w.start_s, w.end_s) for w in aligner.align(load_clip(rows[i]), rows[i]["text"], "en").words]
            except AlignmentFailure as exc:
                out[i] = str(exc)
        return out

    assert run(range(6)) == run(reversed(range(6)))


def test_g2p_gives_out_of_dictionary_words_a_pronunciation(librispeech):
    assert arpabet("zyxquor")[:2] == ["Z", "IH"]
    assert arpabet("judge") == ["JH", "AH", "JH"]
    from streamaudio.align.pocketsphinx_backend import PocketsphinxAligner
    from streamaudio.audio import load_clip

    _, rows, _ = librispeech
    r = next(r for r in rows if "MARGARET" in r["text"] or "HARBOUR" in r["text"])
    aligner = PocketsphinxAligner()
    al = aligner.align(load_clip(r), r["text"], "en")
    assert len(al.words) == len(r["text"].split())


@pytest.mark.parametrize("case,reason", [
    ("empty", "empty transcript"), ("french", "not supported"), ("silence", "silent"),
    ("clipped", "clipped"), ("short", "too short"),
])
def test_bad_input_is_a_reason_not_a_crash(case, reason, librispeech):
    from streamaudio.align.pocketsphinx_backend import PocketsphinxAligner
    from streamaudio.audio import load_clip

    _, rows, _ = librispeech
    audio, text, lang = load_clip(rows[0]), rows[0]["text"], "en"
    if case == "empty":
        text = "  "
    elif case == "french":
        lang = "fr"
    elif case == "silence":
        audio = np.zeros_like(audio)
    elif case == "clipped":
        audio = np.sign(audio) * (np.abs(audio) > 0.001)
    elif case == "short":
        audio = audio[:3200]
    with pytest.raises(AlignmentFailure, match=reason):
        PocketsphinxAligner().align(audio, text, lang)


def _manifest(rows, path):
    from streamaudio.sources import CLIP_SCHEMA

    pq.write_table(pa.Table.from_pylist(rows, CLIP_SCHEMA), path)
    return path


def test_align_cli_resumes_and_rejects_corrupt_files(librispeech, tmp_path, tiny_model):
    import subprocess
    import sys

    _, rows, _ = librispeech
    bad = tmp_path / "corrupt.flac"
    bad.write_bytes(Path(rows[0]["path"]).read_bytes()[:2000])
    subset = rows[:5] + [{**rows[0], "id": "x:corrupt", "path": str(bad)}]
    src = _manifest(subset, tmp_path / "in.parquet")
    out = tmp_path / "out.parquet"
    # a previous, interrupted run left results for two clips
    from streamaudio.align.stage import RESULT_SCHEMA

    parts = tmp_path / "out.parquet.parts"
    parts.mkdir()
    prior = [{"id": r["id"], "words": [{"text": "PRIOR", "start_s": 0.0, "end_s": 0.1}], "align_score": 1.0,
              "reason": "", "aligner": "earlier-run"} for r in rows[:2]]
    pq.write_table(pa.Table.from_pylist(prior, RESULT_SCHEMA), parts / "part-000000.parquet")
    cli = subprocess.run([sys.executable, "-m", "streamaudio", "align", "--clips", str(src), "--out", str(out),
                          "--num-cpus", "2", "--no-progress", "--cache-dir", str(tmp_path / "cache")],
                         capture_output=True, text=True)
    assert cli.returncode == 0, cli.stderr
    res = json.loads(cli.stderr[cli.stderr.index('{"clips"'):].replace("\n", ""))
    assert res["resumed"] == 2 and res["aligned"] + res["rejected"] == 6
    ok = pq.read_table(out).to_pylist()
    assert [r["id"] for r in ok] == [r["id"] for r in subset if r["id"] != "x:corrupt"]
    assert ok[0]["words"][0]["text"] == "PRIOR" and ok[3]["words"][0]["text"] == rows[3]["text"].split()[0]
    assert set(pq.read_table(out).column_names) >= set(subset[0]) | {"words", "align_score"}
    rej = pq.read_table(tmp_path / "out.rejects.parquet").to_pylist()
    assert [r["id"] for r in rej] == ["x:corrupt"]
    assert "cannot read" in rej[0]["reason"], rej[0]["reason"]
    assert not parts.exists()
    # ctc backend, same CLI
    out2 = tmp_path / "ctc.parquet"
    cli = subprocess.run([sys.executable, "-m", "streamaudio", "align", "--clips", str(src), "--out", str(out2),
                          "--backend", "ctc", "--model-dir", str(tiny_model), "--num-cpus", "1", "--no-progress"],
                         capture_output=True, text=True)
    assert cli.returncode == 0, cli.stderr
    assert pq.read_table(out2).num_rows == 5


def test_align_worker_cache_is_keyed_by_content(librispeech, tmp_path):
    from streamaudio.align.stage import AlignWorker

    _, rows, _ = librispeech
    table = pa.Table.from_pylist([{k: r[k] for k in ("id", "path", "offset_s", "duration_s", "sample_rate", "text", "language")} for r in rows[:2]])
    w = AlignWorker("pocketsphinx", None, str(tmp_path))
    first = w(table).to_pylist()

    def boom(*a, **k):
        raise AssertionError("cache miss")

    w2 = AlignWorker("pocketsphinx", None, str(tmp_path))
    w2.aligner.align = boom
    assert w2(table).to_pylist() == first
    changed = table.set_column(table.column_names.index("text"), "text", pa.array(["ANOTHER TEXT", rows[1]["text"]]))
    with pytest.raises(AssertionError, match="cache miss"):
        w2(changed)
