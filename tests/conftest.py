import os
from pathlib import Path

import pytest

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def fixture_root(tmp_path_factory) -> Path:
    """The offline stand-in corpora, written once per test session."""
    from streamaudio.fixtures import write_all

    root = tmp_path_factory.mktemp("fixtures")
    write_all(root)
    return root


def demo_catalog(tmp: Path, fixture_root: Path, **overrides) -> Path:
    """The demo catalog pointed at this session's fixtures."""
    import yaml

    cat = yaml.safe_load((REPO / "manifests" / "demo.yaml").read_text())
    for name, src in cat["sources"].items():
        rel = Path(src["root"]).relative_to("../build/fixtures")
        src["root"] = str(fixture_root / rel)
    cat.update(overrides)
    path = tmp / "catalog.yaml"
    path.write_text(yaml.safe_dump(cat))
    return path


def run_build(catalog: Path, out: Path, num_cpus: int, cache_dir: Path | None = None, **kw) -> dict:
    import ray

    from streamaudio.build.builder import build

    ray.shutdown()
    try:
        return build(catalog, out, num_cpus=num_cpus, show_progress=False, cache_dir=cache_dir, **kw)
    finally:
        ray.shutdown()


@pytest.fixture(scope="session")
def built(tmp_path_factory, fixture_root):
    """Two builds of the demo catalog: one worker and two workers."""
    tmp = tmp_path_factory.mktemp("build")
    cat = demo_catalog(tmp, fixture_root)
    # separate caches: the second build must reach the same bytes on its own, not by reading the first's
    one = run_build(cat, tmp / "one", num_cpus=1, cache_dir=tmp / "cache-one")
    two = run_build(cat, tmp / "two", num_cpus=2, cache_dir=tmp / "cache-two")
    return {"catalog": cat, "one": tmp / "one", "two": tmp / "two", "build_one": one, "build_two": two}


# ---------------------------------------------------------------- clip pools from the fixtures
# What each fixture pool is and which facts its rows carry: the conformance suite maps every
# recipe pool (kind + requires) to the first of these that fits.
FIXTURE_POOLS = {
    "librispeech": ("speech", {"text", "speaker"}),
    "aligned": ("speech", {"text", "speaker", "words"}),
    "spoken": ("speech", {"text", "speaker", "words", "response"}),
    "sound": ("sound", {"labels", "active_span"}),
    "noise": ("noise", set()),
    "music": ("music", {"labels"}),
    "rir": ("rir", set()),
    "text": ("text", {"text", "response"}),
}


@pytest.fixture(scope="session")
def clip_pools(fixture_root, tmp_path_factory) -> dict[str, list[dict]]:
    """Clip rows of every fixture pool. "aligned" is the LibriSpeech stand-in with its true
    word timings (what an aligner would give, without running one); "spoken" is the
    UltraChat stand-in spoken by espeak-ng."""
    import json

    import pyarrow.parquet as pq

    from streamaudio.speech.espeak import load_voices
    from streamaudio.speech.spoken import pick_voice, speak_row
    from streamaudio.sources import get_adapter, write_manifest

    tmp = tmp_path_factory.mktemp("pools")
    truths = json.loads((fixture_root / "_truth" / "faults.json").read_text())
    out = {}
    for name, corpus in [("librispeech", "librispeech"), ("sound", "audioset"), ("noise", "musan"), ("text", "ultrachat"),
                         ("music", "fma"), ("rir", "dns_rir")]:
        res = write_manifest(get_adapter(corpus), fixture_root / truths[corpus]["root"], tmp / f"{name}.parquet",
                             truths[corpus].get("options"))
        out[name] = pq.read_table(res.path).to_pylist()
    truth = {j["id"]: j["words"] for j in map(json.loads, (fixture_root / "_truth" / "librispeech_words.jsonl").read_text().splitlines())}
    out["aligned"] = [{**r, "words": truth[r["id"].split(":", 1)[1]], "words_by": "fixture-truth"} for r in out["librispeech"]]
    voices = load_voices()
    out["spoken"] = [speak_row(r, pick_voice(voices, r["split_group"]), tmp / "tts") for r in out["text"][:10]]
    return out


def pool_for(spec) -> str:
    """The fixture pool that fits a recipe PoolSpec."""
    for name, (kind, facts) in FIXTURE_POOLS.items():
        if kind in spec.kinds and set(spec.requires) <= facts:
            return name
    raise LookupError(f"no fixture pool gives {spec}: add one to tests/conftest.py FIXTURE_POOLS")


# A throwaway recipe (instr_spoken) that fails where {condition} holds, with {raise_}: a
# PlanError (a reject) or any other exception (a bug that must stop the build).
FAILING_RECIPE = '''
from streamaudio.plan import EpisodePlan, PlanError, PoolSpec, Recipe, SegmentPlan, TurnPlan

def plan(ctx):
    if {condition}:
        {raise_}
    clip = ctx.pools["speech"].choice(ctx.rng)
    seg = SegmentPlan(clip=clip, start_s=0.4, kind="speech", role="user")
    return EpisodePlan(segments=[seg], turns=[TurnPlan(trigger_s=0.4 + clip["duration_s"], kind="respond",
                                                       text="ok", evidence=[seg])])

RECIPE = Recipe(subtask="instr_spoken", ability="instruction_following", version="1",
                pools={{"speech": PoolSpec("speech")}}, plan=plan, description="test recipe")
'''
