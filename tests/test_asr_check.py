import subprocess
import sys

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from streamaudio.speech.asr_check import AsrCheckWorker, word_error_rate
from streamaudio.sources import CLIP_SCHEMA, get_adapter, write_manifest


def test_word_error_rate():
    assert word_error_rate("The cat sat.", "the cat sat") == 0.0
    assert word_error_rate("the cat sat", "the dog sat") == pytest.approx(1 / 3)
    assert word_error_rate("the cat", "") == 1.0
    assert word_error_rate("", "") == 0.0


@pytest.fixture(scope="module")
def clips(fixture_root, tmp_path_factory):
    out = tmp_path_factory.mktemp("asr") / "ls.parquet"
    write_manifest(get_adapter("librispeech"), fixture_root, out)
    return pq.read_table(out).slice(0, 4)


def test_the_right_transcript_scores_better_than_a_wrong_one(clips):
    worker = AsrCheckWorker()
    cols = ["id", "path", "offset_s", "duration_s", "sample_rate", "text", "language"]
    right = worker(clips.select(cols)).to_pylist()
    wrong_text = pa.array(["PLEASE CALL STELLA ASK HER TO BRING THESE THINGS WITH HER FROM THE STORE"] * clips.num_rows)
    wrong = worker(clips.select(cols).set_column(cols.index("text"), "text", wrong_text)).to_pylist()
    assert all(r["reason"] == "" and r["asr_text"] for r in right)
    assert sum(r["wer"] for r in right) < sum(r["wer"] for r in wrong)
    french = worker(clips.select(cols).set_column(cols.index("language"), "language", pa.array(["fr"] * clips.num_rows)))
    assert all("no recogniser" in r["reason"] for r in french.to_pylist())


def test_asr_check_cli(clips, tmp_path):
    src = tmp_path / "in.parquet"
    pq.write_table(clips, src)
    cli = subprocess.run([sys.executable, "-m", "streamaudio", "asr-check", "--clips", str(src), "--out",
                          str(tmp_path / "out.parquet"), "--num-cpus", "1", "--no-progress"], capture_output=True, text=True)
    assert cli.returncode == 0, cli.stderr
    out = pq.read_table(tmp_path / "out.parquet")
    assert out.column_names[: len(CLIP_SCHEMA)] == CLIP_SCHEMA.names
    assert out.column("id").to_pylist() == clips.column("id").to_pylist()
    # the WER column is the WER of what was heard against the transcript, clip by clip
    got = out.to_pylist()
    assert all(r["asr_reason"] == "" and r["asr_text"] for r in got)
    assert [r["wer"] for r in got] == pytest.approx([word_error_rate(r["text"], r["asr_text"]) for r in got])
