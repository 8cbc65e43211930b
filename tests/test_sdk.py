"""The recipe and adapter SDK: registries, recipe folders as packages with their own
tables, pool checks when a catalog loads, resume fingerprints, errors and the reject
gate, re-rendering from stored plans, and an installed (non-editable) wheel."""
import hashlib
import json
import re
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml

from conftest import FAILING_RECIPE, REPO, demo_catalog, run_build

RECIPE = '''
"""agent_addressee: a text system instruction sets the task; one utterance; the reply
follows the instruction when the utterance ends."""
from streamaudio.plan import EpisodePlan, InstructionBank, PoolSpec, Recipe, SegmentPlan, TurnPlan, background_bed, pick

from ._util import LEAD_S, reply_for

def plan(ctx):
    rng = ctx.rng
    clip = ctx.pools["speech"].choice(rng)
    seg = SegmentPlan(clip=clip, start_s=LEAD_S, kind="speech", role="user")
    bed = background_bed(ctx.pools["noise"].choice(rng), -30.0)
    prompt = pick(rng, ctx.tables["instructions"]["system_prompts"])
    return EpisodePlan(segments=[bed, seg],
                       turns=[TurnPlan(trigger_s=LEAD_S + clip["duration_s"], kind="respond",
                                       text=reply_for(clip["text"]), evidence=[seg])],
                       language="en", system_prompt=prompt, min_duration_s=LEAD_S + clip["duration_s"] + 0.8)

RECIPE = Recipe(subtask="agent_addressee", ability="environment_agent", version="1",
                pools={"speech": PoolSpec("speech"), "noise": PoolSpec("noise")},
                tables={"instructions": InstructionBank("tables/agent_addressee.yaml")},
                plan=plan, description=__doc__, replaces=True)
'''
UTIL = '''
LEAD_S = 0.6

def reply_for(text):
    return "Word count: " + str(len(text.split()))
'''
TABLE = {"system_prompts": [f"Count the words of what you hear ({i})." for i in range(20)]}


def recipe_folder(where: Path) -> Path:
    d = where / "myrecipes"
    (d / "tables").mkdir(parents=True)
    (d / "agent_addressee.py").write_text(RECIPE)
    (d / "_util.py").write_text(UTIL)
    (d / "tables" / "agent_addressee.yaml").write_text(yaml.safe_dump(TABLE))
    return d


def sdk_catalog(tmp: Path, fixture_root: Path, recipes: Path | None, subtasks: dict | None = None, **top) -> Path:
    cat = {
        "name": "sdk", "seed": 5, "shard_size": 2, "splits": {"train": 1.0},
        "sources": {"librispeech": {"corpus": "librispeech", "root": str(fixture_root)},
                    "musan_noise": {"corpus": "musan", "root": str(fixture_root)},
                    "musan_two": {"corpus": "musan", "root": str(fixture_root)}},
        "subtasks": subtasks or {
            "asr_utterance": {"count": 4, "pools": {"speech": "librispeech", "noise": "musan_noise"}},
            "agent_addressee": {"count": 4, "pools": {"speech": "librispeech", "noise": "musan_two"}}},
        **({"recipe_dirs": [str(recipes)]} if recipes else {}), **top,
    }
    path = tmp / "sdk.yaml"
    path.write_text(yaml.safe_dump(cat))
    return path


def hashes(out: Path, subtask: str | None = None) -> dict:
    return {str(p.relative_to(out)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted((out / "data").rglob("*.parquet")) if subtask is None or p.parent.name == subtask}


def test_a_recipe_folder_adds_a_subtask_and_an_edit_invalidates_only_it(tmp_path, fixture_root):
    from streamaudio.audit.validate import validate

    folder = recipe_folder(tmp_path)
    cat = sdk_catalog(tmp_path, fixture_root, folder)
    out, cache = tmp_path / "out", tmp_path / "cache"
    b = run_build(cat, out, num_cpus=2, cache_dir=cache)
    assert validate(out).ok
    assert b["subtasks"]["agent_addressee"]["written"] == 4 and b["run"]["shards"] == 4
    rows = [r for f in (out / "data" / "agent_addressee").glob("*.parquet") for r in pq.read_table(f).to_pylist()]
    assert all(r["system_prompt"] in TABLE["system_prompts"] for r in rows)  # the folder's own table
    assert all(r["turns"][0]["text"].startswith("Word count: ") for r in rows)  # the folder's own helper
    # "drawn" counts the clips each source gave, even when two sources read one corpus
    used = {st: {s["clip_id"] for f in (out / "data" / st).glob("*.parquet")
                 for r in pq.read_table(f).to_pylist() for s in r["segments"] if s["corpus"] == "musan"}
            for st in ("asr_utterance", "agent_addressee")}
    assert b["inputs"]["musan_noise"]["drawn"] == len(used["asr_utterance"])
    assert b["inputs"]["musan_two"]["drawn"] == len(used["agent_addressee"])
    asr = hashes(out, "asr_utterance")

    again = run_build(cat, out, num_cpus=2, cache_dir=cache)
    assert again["run"]["shards_reused"] == 4
    assert again["inputs"]["librispeech"]["stages_reused"] == ["source"]  # not scanned again

    for what, edit in [("recipe", lambda: (folder / "agent_addressee.py").write_text(RECIPE.replace('-30.0', '-33.0'))),
                       ("helper", lambda: (folder / "_util.py").write_text(UTIL.replace("0.6", "0.8"))),
                       ("table", lambda: (folder / "tables" / "agent_addressee.yaml").write_text(
                           yaml.safe_dump({"system_prompts": [p.upper() for p in TABLE["system_prompts"]]})))]:
        before = hashes(out, "agent_addressee")
        edit()
        # a fresh interpreter, as a user's next build is: the edited module is imported anew
        cli = subprocess.run([sys.executable, "-m", "streamaudio", "build", "--catalog", str(cat), "--out", str(out),
                              "--cache-dir", str(cache), "--num-cpus", "2", "--no-progress"],
                             capture_output=True, text=True)
        assert cli.returncode == 0, cli.stderr[-3000:]
        b = json.loads((out / "build.json").read_text())
        assert b["run"]["shards_reused"] == 2, what  # asr_utterance's two shards, nothing of the edited sub-task
        assert hashes(out, "asr_utterance") == asr, what
        assert hashes(out, "agent_addressee") != before, what


def importers_of(helper: str) -> set[str]:
    """The built-in recipes whose module imports ``helper``, directly or through another helper
    of their folder, read off the source text (not the fingerprint's own import walk, which is
    what the test checks)."""
    def imports(p, name):
        return re.search(rf"^from \.{name} import", p.read_text(), re.M) is not None

    helpers = {helper} | {p.stem for p in (REPO / "recipes").glob("_*.py") if imports(p, helper)}
    return {p.stem for p in (REPO / "recipes").glob("[!_]*.py") if any(imports(p, h) for h in helpers)}


def test_editing_render_code_invalidates_every_shard(built, monkeypatch):
    import streamaudio.plan.recipes as recipes
    from streamaudio.build.builder import Builder
    from streamaudio.build.catalog import load_catalog
    from streamaudio.build.shards import finished_summary

    def builder():
        return Builder(load_catalog(built["catalog"]), built["one"], show_progress=False,
                       cache_dir=built["one"].parent / "cache-one")

    tasks = builder().prepare()["tasks"]
    assert tasks and all(finished_summary(t) for t in tasks)  # unchanged code: every shard resumes
    real = recipes._source_bytes
    for module, affected in [("render/mix.py", None), ("render/label.py", None), ("audio.py", None),
                             (str(REPO / "recipes" / "asr_incremental.py"), {"asr_incremental"}),
                             (str(REPO / "recipes" / "_speech.py"), importers_of("_speech"))]:
        target = Path(module) if module.startswith("/") else recipes.PACKAGE_ROOT / module
        monkeypatch.setattr(recipes, "_source_bytes",
                            lambda p, t=target: real(p) + (b"\n# edited\n" if Path(p) == t else b""))
        tasks = builder().prepare()["tasks"]
        stale = {t.subtask for t in tasks if finished_summary(t) is None}
        kept = {t.subtask for t in tasks if finished_summary(t) is not None}
        if affected is None:  # shared rendering code: every shard of every sub-task
            assert not kept and stale == {t.subtask for t in tasks}, module
        else:
            assert stale == affected and kept == {t.subtask for t in tasks} - affected, module




def _crash_build(tmp_path, fixture_root, raise_, **top):
    d = tmp_path / "crashy"
    d.mkdir()
    (d / "agent_scene_qa.py").write_text(FAILING_RECIPE.format(condition='ctx.episode_id.endswith("-000002")',
                                                              raise_=raise_))
    cat = sdk_catalog(tmp_path, fixture_root, d, {"agent_scene_qa": {"count": 4, "pools": {"speech": "librispeech"}}}, **top)
    return subprocess.run([sys.executable, "-m", "streamaudio", "build", "--catalog", str(cat), "--out", str(tmp_path / "o"),
                           "--num-cpus", "1", "--no-progress"], capture_output=True, text=True)


def test_a_recipe_bug_stops_the_build_with_its_traceback(tmp_path, fixture_root):
    cli = _crash_build(tmp_path, fixture_root, 'raise KeyError("no such table")')
    assert cli.returncode == 4, cli.stderr[-2000:]
    assert "recipe 'agent_scene_qa'" in cli.stderr and "agent_scene_qa-train-000002" in cli.stderr
    assert "KeyError" in cli.stderr and "Traceback" in cli.stderr and "agent_scene_qa.py" in cli.stderr


def test_the_reject_gate_fails_the_build_but_keeps_the_dataset(tmp_path, fixture_root):
    cli = _crash_build(tmp_path, fixture_root, 'raise PlanError("pool too small for this one")')
    assert cli.returncode == 3, cli.stderr[-2000:]
    assert "agent_scene_qa: 1 of 4 episodes rejected" in cli.stderr
    b = json.loads((tmp_path / "o" / "build.json").read_text())
    assert b["subtasks"]["agent_scene_qa"]["gate"] == {"max_reject_rate": 0.05, "crossed": True, "splits_crossed": ["train"]}
    rej = [r for r in pq.read_table(tmp_path / "o" / "rejects.parquet").to_pylist() if r["stage"] == "plan"]
    assert [r["item"] for r in rej] == ["agent_scene_qa-train-000002"] and "pool too small" in rej[0]["reason"]
    shutil.rmtree(tmp_path / "crashy")
    ok = _crash_build(tmp_path, fixture_root, 'raise PlanError("pool too small for this one")', max_reject_rate=0.3)
    assert ok.returncode == 0, ok.stderr[-2000:]


@pytest.mark.parametrize("subtask,pools,drop,needle", [
    ("asr_incremental", {"speech": "librispeech", "noise": "musan_noise"}, ("librispeech", "align"),
     "needs ['words'] on its clips, which source 'librispeech' (librispeech) does not give (add `align:"),
    ("chat_single_turn", {"speech": "ultrachat", "noise": "musan_noise"}, ("ultrachat", "spoken"),
     "pool 'speech' needs speech clips, but source 'ultrachat' (ultrachat) gives text"),
    ("asr_utterance", {"speech": "audioset", "noise": "musan_noise"}, None, "needs speech clips, but source 'audioset'"),
    ("asr_utterance", {"speech": "librispeech"}, None, "recipe needs pools ['noise']"),
])
def test_pools_are_checked_when_the_catalog_loads(tmp_path, fixture_root, subtask, pools, drop, needle):
    from streamaudio.build.builder import BuildError, Builder
    from streamaudio.build.catalog import load_catalog

    cat = yaml.safe_load(demo_catalog(tmp_path, fixture_root).read_text())
    cat["subtasks"] = {subtask: {"count": 2, "pools": pools}}
    if drop:
        cat["sources"][drop[0]].pop(drop[1])
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cat))
    with pytest.raises(BuildError) as exc:
        Builder(load_catalog(tmp_path / "c.yaml"), tmp_path / "o")
    assert needle in str(exc.value)


def test_catalog_schema_and_listings_come_from_the_registries(tmp_path, fixture_root):
    from streamaudio.build.catalog import CatalogError, catalog_schema, load_catalog
    from streamaudio.sources import ADAPTERS
    from streamaudio.stages import ordered_stages

    schema = catalog_schema()
    src = schema["properties"]["sources"]["additionalProperties"]["properties"]
    assert src["corpus"]["enum"] == ADAPTERS.names()
    assert {s.config_key for s in ordered_stages() if s.config_schema} <= set(src)
    cat = yaml.safe_load(demo_catalog(tmp_path, fixture_root).read_text())
    cat["sources"]["musan_noise"]["corpus"] = "musen"
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cat))
    with pytest.raises(CatalogError, match="musen"):
        load_catalog(tmp_path / "c.yaml")
    out = subprocess.run([sys.executable, "-m", "streamaudio", "corpora"], capture_output=True, text=True).stdout
    assert [line.split()[0] for line in out.splitlines()] == ADAPTERS.names()
    printed = json.loads(subprocess.run([sys.executable, "-m", "streamaudio", "catalog-schema"],
                                        capture_output=True, text=True).stdout)
    assert printed == schema
    folder = recipe_folder(tmp_path)
    out = subprocess.run([sys.executable, "-m", "streamaudio", "recipes", "--recipe-dir", str(folder)],
                         capture_output=True, text=True).stdout
    assert {"asr_utterance", "agent_addressee", "proactive_household"} <= {ln.split()[0] for ln in out.splitlines()}


def test_rerender_reproduces_an_episode_from_its_plan(built, tmp_path):
    out = tmp_path / "copy"
    shutil.copytree(built["one"], out)
    shutil.copytree(built["one"].with_name("one.work"), out.with_name("copy.work"))
    ids = [pq.read_table(f, columns=["id"]).column("id")[0].as_py() for f in sorted((out / "data").glob("*/train-00000-*"))]
    assert len(ids) == len(yaml.safe_load((REPO / "manifests" / "demo.yaml").read_text())["subtasks"])  # one per sub-task
    for eid in ids:
        cli = subprocess.run([sys.executable, "-m", "streamaudio", "rerender", str(out), "--id", eid,
                              "--write", str(tmp_path / "x.flac")], capture_output=True, text=True)
        assert cli.returncode == 0 and "identical" in cli.stderr, cli.stderr
    # a shard whose audio no longer matches its plan is caught
    shard = sorted((out / "data" / "asr_utterance").glob("train-00000-*"))[0]
    t = pq.read_table(shard)
    rows = t.to_pylist()
    x = bytearray(rows[0]["audio"]["bytes"])
    x[-100] ^= 0xFF
    rows[0]["audio"]["bytes"] = bytes(x)
    import pyarrow as pa
    pq.write_table(pa.Table.from_pylist(rows, schema=t.schema), shard)
    cli = subprocess.run([sys.executable, "-m", "streamaudio", "rerender", str(out), "--id", rows[0]["id"]],
                         capture_output=True, text=True)
    assert cli.returncode == 1 and "audio" in cli.stderr


def test_an_installed_wheel_builds_from_any_directory(tmp_path, fixture_root):
    """`pip install .` (not editable): recipes, tables and schemas travel inside the package."""
    wheels, site, elsewhere = tmp_path / "wheels", tmp_path / "site", tmp_path / "elsewhere"
    elsewhere.mkdir()
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(wheels),
                    str(REPO)], check=True, capture_output=True)
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(site),
                    *map(str, wheels.glob("*.whl"))], check=True, capture_output=True)
    env = {**os.environ, "PYTHONPATH": str(site)}
    where = subprocess.run([sys.executable, "-c", "import streamaudio.resources as r; print(r.MANIFESTS_DIR, r.BUILTIN_RECIPES_DIR)"],
                           capture_output=True, text=True, env=env, cwd=elsewhere).stdout.split()
    assert all(Path(p).is_relative_to(site) for p in where), where
    sdk_catalog(elsewhere, fixture_root, None, {  # elsewhere/sdk.yaml, named relative to the cwd below
        "asr_utterance": {"count": 2, "pools": {"speech": "librispeech", "noise": "musan_noise"}}})
    cli = subprocess.run([sys.executable, "-m", "streamaudio", "build", "--catalog", "sdk.yaml", "--out", "out",
                          "--num-cpus", "1", "--no-progress"], capture_output=True, text=True, env=env, cwd=elsewhere)
    assert cli.returncode == 0, cli.stderr[-3000:]
    v = subprocess.run([sys.executable, "-m", "streamaudio", "validate", "out"], capture_output=True, text=True,
                       env=env, cwd=elsewhere)
    assert v.returncode == 0, v.stderr


def test_a_source_is_rescanned_only_when_its_files_change(tmp_path, fixture_root):
    import ray

    from streamaudio.build.builder import Builder
    from streamaudio.build.catalog import load_catalog

    noise = tmp_path / "noise"
    shutil.copytree(fixture_root / "musan", noise / "musan")
    cat = sdk_catalog(tmp_path, fixture_root, None, {
        "asr_utterance": {"count": 2, "pools": {"speech": "librispeech", "noise": "musan_noise"}}})
    raw = yaml.safe_load(cat.read_text())
    raw["sources"]["musan_noise"]["root"] = str(noise)
    cat.write_text(yaml.safe_dump(raw))

    def reused():
        ray.shutdown()
        try:
            states = Builder(load_catalog(cat), tmp_path / "o", cache_dir=tmp_path / "cache", show_progress=False,
                             num_cpus=1).prepare()["states"]
        finally:
            ray.shutdown()
        return {name: s.report["stages_reused"] for name, s in states.items()}, states

    first, _ = reused()
    assert first == {"librispeech": [], "musan_noise": []}
    again, _ = reused()
    assert again == {"librispeech": ["source"], "musan_noise": ["source"]}
    victim = sorted((noise / "musan" / "noise" / "free-sound").glob("*.wav"))[0]
    victim.write_bytes(b"RIFF\x00\x00")  # a file changed on disk (here: broken by a bad copy)
    after, states = reused()
    assert after == {"librispeech": ["source"], "musan_noise": []}
    rej = [r for r in states["musan_noise"].rejects if r["item"] == f"musan:{victim.stem}"]
    assert len(rej) == 1 and "corrupt" in rej[0]["reason"]


PLUGIN = '''
"""A corpus adapter from outside the toolkit: a folder of audio files and clips.tsv."""
from pathlib import Path

from streamaudio.sources import Adapter, LayoutError, Reject, clip_row, register_adapter
from streamaudio.sources.base import ProbeError, probe_audio


@register_adapter
class TsvSpeech(Adapter):
    corpus, kind, license = "tsv_speech", "speech", "CC0"
    provides = frozenset({"text", "speaker"})
    expected_layout = "clips.tsv (path<TAB>speaker<TAB>text) next to the audio files"

    def check_layout(self, root, options):
        if not (Path(root) / "clips.tsv").is_file():
            raise LayoutError(f"tsv_speech: no clips.tsv in {root}. Expected layout: {self.expected_layout}")

    def units(self, root, options):
        lines = (Path(root) / "clips.tsv").read_text().splitlines()
        return [lines[i:i + 4] for i in range(0, len(lines), 4)]

    def scan_unit(self, root, options, unit):
        for line in unit:
            path, speaker, text = line.split("\\t")
            cid = f"tsv_speech:{Path(path).stem}"
            try:
                info = probe_audio(Path(root) / path)
            except ProbeError as exc:
                yield Reject(cid, str(exc))
                continue
            yield clip_row(id=cid, corpus=self.corpus, kind="speech", path=str((Path(root) / path).resolve()),
                           duration_s=info.duration_s, sample_rate=info.sample_rate, language="en", text=text,
                           speaker=speaker, license=self.license, split_group=f"tsv_speech:{speaker}")
'''


def test_a_corpus_adapter_plugs_in_from_its_own_package(tmp_path, fixture_root):
    """A third-party adapter: its own module, announced by an entry point; nothing in the toolkit changes."""
    site = tmp_path / "site"
    (site / "tsv_speech_plugin-0.1.dist-info").mkdir(parents=True)
    (site / "tsv_speech_plugin.py").write_text(PLUGIN)
    (site / "tsv_speech_plugin-0.1.dist-info" / "METADATA").write_text("Metadata-Version: 2.1\nName: tsv-speech-plugin\nVersion: 0.1\n")
    (site / "tsv_speech_plugin-0.1.dist-info" / "entry_points.txt").write_text(
        "[streamaudio.adapters]\ntsv_speech = tsv_speech_plugin\n")
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    lines = []
    for k, f in enumerate(sorted((fixture_root / "LibriSpeech" / "dev-clean").rglob("*.flac"))[:12]):
        shutil.copy(f, corpus / f"c{k:02d}.flac")
        lines.append(f"c{k:02d}.flac\tspk{k % 4}\tTHE FIXTURE SENTENCE NUMBER {k}")
    lines.append("missing.flac\tspk9\tA FILE THAT IS NOT THERE")
    (corpus / "clips.tsv").write_text("\n".join(lines) + "\n")
    env = {**os.environ, "PYTHONPATH": str(site)}
    listed = subprocess.run([sys.executable, "-m", "streamaudio", "corpora"], capture_output=True, text=True, env=env).stdout
    assert "tsv_speech" in listed.split()
    cat = {"seed": 3, "shard_size": 2, "splits": {"train": 1.0},
           "sources": {"mine": {"corpus": "tsv_speech", "root": str(corpus)},
                       "musan_noise": {"corpus": "musan", "root": str(fixture_root)}},
           "subtasks": {"asr_utterance": {"count": 3, "pools": {"speech": "mine", "noise": "musan_noise"}}}}
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cat))
    cli = subprocess.run([sys.executable, "-m", "streamaudio", "build", "--catalog", str(tmp_path / "c.yaml"),
                          "--out", str(tmp_path / "o"), "--num-cpus", "2", "--no-progress"],
                         capture_output=True, text=True, env=env)
    assert cli.returncode == 0, cli.stderr[-3000:]
    b = json.loads((tmp_path / "o" / "build.json").read_text())
    assert b["inputs"]["mine"]["seen"] == 13 and b["inputs"]["mine"]["used"] == 12 and b["inputs"]["mine"]["drawn"] > 0
    rej = [r for r in pq.read_table(tmp_path / "o" / "rejects.parquet").to_pylist() if r["source"] == "mine"]
    assert [r["item"] for r in rej] == ["tsv_speech:missing"] and "missing" in rej[0]["reason"]
    segs = [s for f in (tmp_path / "o" / "data").rglob("*.parquet") for r in pq.read_table(f).to_pylist()
            for s in r["segments"] if s["kind"] == "speech"]
    assert segs and all(s["corpus"] == "tsv_speech" and s["text"].startswith("THE FIXTURE SENTENCE") for s in segs)
