"""Reliability under faults and concurrency: Ray addresses, a busy OUT, silent sources and
empty splits, endpoints that stop answering, secrets in URLs, bad input, damaged shards."""
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml

from conftest import FAILING_RECIPE, REPO



def small_catalog(tmp: Path, fixture_root: Path, subtasks: dict | None = None, **top) -> Path:
    cat = {"name": "small", "seed": 9, "shard_size": 4, "splits": {"train": 0.8, "validation": 0.1, "test": 0.1},
           "sources": {"librispeech": {"corpus": "librispeech", "root": str(fixture_root)},
                       "musan_noise": {"corpus": "musan", "root": str(fixture_root)}},
           "subtasks": subtasks or {"asr_utterance": {"count": 3, "pools": {"speech": "librispeech",
                                                                            "noise": "musan_noise"}}},
           **top}
    path = tmp / "small.yaml"
    path.write_text(yaml.safe_dump(cat))
    return path


def cli(*args, env=None, timeout=300, cwd=None):
    return subprocess.run([sys.executable, "-m", "streamaudio", *map(str, args)], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=timeout, cwd=cwd)


# ---------------------------------------------------------------- 1. Ray: private by default, bounded connect
def test_a_default_build_never_joins_a_cluster_it_was_not_asked_to(tmp_path, fixture_root):
    # RAY_ADDRESS names a cluster that is gone: a default build must not try to reach it
    r = cli("build", "--catalog", small_catalog(tmp_path, fixture_root), "--out", tmp_path / "o", "--num-cpus", 1,
            "--no-progress", env={"RAY_ADDRESS": "127.0.0.1:1"}, timeout=180)
    assert r.returncode == 0, r.stderr[-2000:]


def test_an_unreachable_cluster_is_a_clear_error_at_once(tmp_path, fixture_root):
    t0 = time.time()
    r = cli("build", "--catalog", small_catalog(tmp_path, fixture_root), "--out", tmp_path / "o",
            "--ray-address", "127.0.0.1:1", "--no-progress", timeout=120)
    assert r.returncode == 2 and "cannot reach the Ray cluster" in r.stderr and "Traceback" not in r.stderr
    assert time.time() - t0 < 60
    assert not (tmp_path / "o").exists()


RAY_PROCESSES = f'''
import json, os, sys
sys.path.insert(0, {str(REPO)!r})
from streamaudio.parallel import init_ray

def tree(root):
    kids = {{}}
    for d in filter(str.isdigit, os.listdir("/proc")):
        try:
            stat = open(f"/proc/{{d}}/stat").read()
            argv = open(f"/proc/{{d}}/cmdline", "rb").read().replace(b"\\0", b" ").decode()
        except OSError:
            continue
        kids.setdefault(int(stat[stat.rindex(")") + 2:].split()[1]), []).append((int(d), argv))
    out, todo = [], [root]
    while todo:
        for pid, argv in kids.get(todo.pop(), []):
            out.append((pid, argv))
            todo.append(pid)
    return out

ray = init_ray(num_cpus=1)
assert ray.get(ray.remote(lambda: 7).remote()) == 7
print(json.dumps(tree(os.getpid())))
if sys.argv[1] == "shutdown":
    ray.shutdown()
    print(json.dumps(tree(os.getpid())))
'''


@pytest.mark.parametrize("end", ["exit", "shutdown"])
def test_the_private_ray_runs_no_monitors_and_goes_with_its_driver(tmp_path, end):
    # a single node never scales and log_to_driver is off: the autoscaler monitor and the log
    # monitor would only cost CPU (~0.9 s a build); what is started is stopped by ray.shutdown()
    # and when the driver exits
    script = tmp_path / "ray_processes.py"
    script.write_text(RAY_PROCESSES)
    r = subprocess.run([sys.executable, str(script), end], capture_output=True, text=True, timeout=180,
                       env={k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"})
    assert r.returncode == 0, r.stderr[-2000:]
    lines = r.stdout.strip().splitlines()
    started = json.loads(lines[0])
    argv = " ".join(a for _, a in started)
    assert "raylet" in argv and "gcs_server" in argv, argv[:2000]
    assert "monitor.py" not in argv  # neither autoscaler/_private/monitor.py nor _private/log_monitor.py
    if end == "shutdown":
        assert json.loads(lines[1]) == []

    def running(pid):
        try:
            return open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[0] != "Z"
        except OSError:
            return False

    deadline = time.time() + 30
    while any(running(p) for p, _ in started) and time.time() < deadline:
        time.sleep(0.2)
    assert not [a[:80] for p, a in started if running(p)]


# ---------------------------------------------------------------- 2. one build per OUT
def test_a_busy_out_is_refused_and_a_dead_builds_lock_is_not(tmp_path, fixture_root):
    from streamaudio.build.lock import BuildLock

    cat, out = small_catalog(tmp_path, fixture_root), tmp_path / "o"
    with BuildLock(out):  # another build holds OUT
        r = cli("build", "--catalog", cat, "--out", out, "--num-cpus", 1, "--no-progress")
    assert r.returncode == 2 and "is being built by pid" in r.stderr and str(os.getpid()) in r.stderr
    # a build killed with -9 leaves its lock file, but no process holds it any more
    (tmp_path / "o.lock").write_text(json.dumps({"pid": 999999, "host": "gone", "started": "yesterday"}))
    r = cli("build", "--catalog", cat, "--out", out, "--num-cpus", 1, "--no-progress")
    assert r.returncode == 0, r.stderr[-2000:]
    assert not (tmp_path / "o.lock").exists()


# ---------------------------------------------------------------- 3. an empty split fails the build
def test_a_split_that_loses_its_episodes_fails_the_build_and_validate_says_so(tmp_path, fixture_root):
    d = tmp_path / "rec"
    d.mkdir()
    (d / "agent_scene_qa.py").write_text(FAILING_RECIPE.format(condition='ctx.split == "validation"',
                                                              raise_='raise PlanError("nothing fits in this split")'))
    subtasks = {"agent_scene_qa": {"count": 40, "pools": {"speech": "librispeech"}}}
    # 2 of 40 episodes (5%) are rejected: within a 5% gate for the sub-task, but all of its validation split
    cat = small_catalog(tmp_path, fixture_root, subtasks, recipe_dirs=[str(d)],
                        splits={"train": 0.9, "validation": 0.05, "test": 0.05})
    r = cli("build", "--catalog", cat, "--out", tmp_path / "o", "--num-cpus", 2, "--no-progress")
    assert r.returncode == 3, r.stderr[-2000:]
    assert "validation: 2 of 2 rejected, 0 written" in r.stderr
    # the dataset was written all the same; validate sees the configured split without an episode
    v = cli("validate", tmp_path / "o")
    assert v.returncode == 1 and "split validation has no episode" in v.stderr


# ---------------------------------------------------------------- 5. endpoints
def test_a_burst_of_speech_requests_on_a_cold_dev_server(tmp_path):
    """32 requests at once on a server whose espeak-ng engine does not exist yet (a new process)."""
    script = f'''
import json, sys, threading, urllib.request
sys.path.insert(0, {str(REPO)!r})
from streamaudio.text.devserver import DevServer
srv = DevServer().start()
codes = []
def one(i):
    req = urllib.request.Request(srv.base_url + "/audio/speech", headers={{"Content-Type": "application/json"}},
                                 data=json.dumps({{"model": "m", "voice": "en-us", "input": f"number {{i}}"}}).encode())
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            codes.append(r.status if r.read()[:4] == b"RIFF" else -1)
    except Exception as exc:
        codes.append(repr(exc))
ts = [threading.Thread(target=one, args=(i,)) for i in range(32)]
[t.start() for t in ts]
[t.join() for t in ts]
print(json.dumps(codes))
'''
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    assert json.loads(r.stdout.strip().splitlines()[-1]) == [200] * 32


def test_an_endpoint_that_never_answers_fails_the_build_unless_fallback_is_allowed(tmp_path, fixture_root):
    cat = small_catalog(tmp_path, fixture_root, llm={"base_url": "http://user:SECRETKEY@127.0.0.1:1/v1",
                                                     "model": "m", "max_retries": 0, "timeout_s": 2})
    r = cli("build", "--catalog", cat, "--out", tmp_path / "o", "--num-cpus", 1, "--no-progress")
    assert r.returncode == 5, r.stderr[-2000:]
    assert "table instructions: offline table (LLM failed" in r.stderr
    b = json.loads((tmp_path / "o" / "build.json").read_text())
    assert b["endpoint_fallbacks"] and b["tables"]["asr_utterance"]["instructions"].startswith("offline table (LLM")
    ok = cli("build", "--catalog", cat, "--out", tmp_path / "o", "--num-cpus", 1, "--no-progress", "--allow-fallback")
    assert ok.returncode == 0, ok.stderr[-2000:]
    # 6. the key in the URL is nowhere the build publishes or prints
    for text in [(tmp_path / "o" / "build.json").read_text(), (tmp_path / "o" / "README.md").read_text(),
                 r.stderr, ok.stderr]:
        assert "SECRETKEY" not in text
    assert b["llm"]["base_url"] == "http://***@127.0.0.1:1/v1"


def test_urls_are_redacted_for_publishing():
    from streamaudio.build.builder import redact_url

    assert redact_url("https://api.example.com/v1") == "https://api.example.com/v1"
    assert redact_url("http://u:p@h:8000/v1?api_key=abc&model=x&sig=1") == "http://***@h:8000/v1?api_key=%2A%2A%2A&model=x&sig=%2A%2A%2A"
    assert redact_url(None) is None


# ---------------------------------------------------------------- 7. bad input: one line, exit 2
def test_bad_input_is_a_one_line_error(tmp_path, fixture_root):
    binary = tmp_path / "cat.yaml"
    binary.write_bytes(b"\x89PNG\r\n\x1a\n\x00\xff\xfe" * 10)
    r = cli("build", "--catalog", binary, "--out", tmp_path / "o", "--no-progress")
    assert r.returncode == 2 and "not a text file" in r.stderr and "Traceback" not in r.stderr
    (tmp_path / "afile").write_text("I am a file")
    for out in (tmp_path / "afile", tmp_path / "x"):
        if out.name == "x":
            (tmp_path / "x.work").write_text("a file where the work folder goes")
        r = cli("build", "--catalog", small_catalog(tmp_path, fixture_root), "--out", out, "--no-progress")
        assert r.returncode == 2 and "is not a folder" in r.stderr and "Traceback" not in r.stderr
    # a corpus folder that is not the corpus: the error, and no OUT folders left behind
    cat = yaml.safe_load(small_catalog(tmp_path, fixture_root).read_text())
    cat["sources"]["librispeech"]["root"] = str(fixture_root / "musan")
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(cat))
    r = cli("build", "--catalog", tmp_path / "bad.yaml", "--out", tmp_path / "never", "--no-progress")
    assert r.returncode == 2 and "Expected layout" in r.stderr
    assert not any(p.name.startswith("never") for p in tmp_path.iterdir())


# ---------------------------------------------------------------- 8. validate goes on past a damaged shard
def test_validate_reports_a_damaged_shard_and_goes_on(built, tmp_path):
    import random

    from streamaudio.audit.validate import validate

    out = tmp_path / "copy"
    shutil.copytree(built["one"], out)
    shards = sorted((out / "data").rglob("*.parquet"))
    victim = shards[3]
    meta = pq.ParquetFile(victim).metadata
    names = [meta.schema.column(i).path for i in range(meta.num_columns)]
    chunk = meta.row_group(0).column(names.index("segments.list.element.text"))  # a zstd page
    data = bytearray(victim.read_bytes())
    rnd = random.Random(4)
    start = chunk.data_page_offset
    for _ in range(40):  # bit flips inside the page; the footer is intact, so the file opens
        i = start + 20 + rnd.randrange(max(1, chunk.total_compressed_size - 40))
        data[i] ^= 1 << rnd.randrange(8)
    victim.write_bytes(bytes(data))
    rep = validate(out)
    mine = [p for p in rep.problems if victim.name in p and victim.parent.name in p]
    assert any("sha256 differs from build.json" in p for p in mine)
    assert any("unreadable after" in p for p in mine), mine  # the damaged page, as a line of the report
    assert rep.shards == len(shards)  # every other shard was still checked
    others = [p for p in rep.problems if victim.name not in p]
    # what else is said follows from the lost shard: counts, and its split now without an episode
    assert all(p.startswith("build.json: says") or "has no episode" in p for p in others), others
    v = cli("validate", out)
    assert v.returncode == 1 and "Traceback" not in v.stderr


# ---------------------------------------------------------------- scale: estimate a full build from a measured one
def test_estimate_scales_the_measured_rates(built, tmp_path):
    from streamaudio.build.estimate import estimate

    ref = json.loads((built["one"] / "build.json").read_text())
    cat = yaml.safe_load(built["catalog"].read_text())
    for spec in cat["subtasks"].values():
        spec["count"] *= 100
    # a reference build that never built agent_scene_qa: it has no rate to scale
    unmeasured = {**ref, "subtasks": {k: v for k, v in ref["subtasks"].items() if k != "agent_scene_qa"}}
    (tmp_path / "reference.json").write_text(json.dumps(unmeasured))
    (tmp_path / "big.yaml").write_text(yaml.safe_dump(cat))
    e = estimate(tmp_path / "big.yaml", tmp_path / "reference.json",
                 {"librispeech": 10 * ref["inputs"]["librispeech"]["seen"]})
    assert "agent_scene_qa" not in e["subtasks"]
    for st, v in e["subtasks"].items():
        m = ref["subtasks"][st]
        hours = sum(s["hours"] for s in m["splits"].values())
        assert v["episodes"] == 100 * m["planned"]
        assert v["hours"] == pytest.approx(100 * hours * m["planned"] / m["written"])
        assert v["storage_gb"] == pytest.approx(v["hours"] / hours * m["bytes"] / 1e9)
        assert v["render_core_h"] == pytest.approx(v["hours"] * m["render_cpu_per_audio_s"]) and v["render_core_h"] > 0
    assert e["not_estimated"] == ["sub-task agent_scene_qa: no measured episodes in the reference build"]
    align = ref["inputs"]["librispeech"]["stage_costs"]["align"]
    assert align["cpu_s"] > 0 and align["rows_in"] > 0
    assert e["sources"]["librispeech"]["stages"]["align"]["core_h"] == pytest.approx(10 * align["cpu_s"] / 3600, rel=1e-6)
    tts = ref["inputs"]["ultrachat"]["stage_costs"]["tts"]
    assert tts["cpu_s"] > 0 and tts["rows_in"] > 0  # measured in the workers, forked engines included
    assert e["sources"]["ultrachat"]["stages"]["tts"]["core_h"] == pytest.approx(tts["cpu_s"] / 3600, rel=1e-6)
    out = cli("estimate", tmp_path / "big.yaml", "--from", tmp_path / "reference.json", "--source-clips", "librispeech=1000")
    assert out.returncode == 0 and "| asr_utterance |" in out.stdout and "not estimated: sub-task agent_scene_qa" in out.stdout
