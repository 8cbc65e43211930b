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

    from streamaudio.fixtures.pools import point_at_fixtures

    cat = yaml.safe_load((REPO / "manifests" / "demo.yaml").read_text())
    point_at_fixtures(cat, fixture_root)
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
# streamaudio/fixtures/pools.py says what each pool is; the conformance suite maps every
# recipe pool (kind + requires) to the first that fits (pool_for).
from streamaudio.fixtures.pools import FIXTURE_POOLS, pool_for  # noqa: E402,F401


@pytest.fixture(scope="session")
def clip_pools(fixture_root, tmp_path_factory) -> dict[str, list[dict]]:
    """Clip rows of every fixture pool (streamaudio.fixtures.pools.fixture_pools)."""
    from streamaudio.fixtures.pools import fixture_pools

    return fixture_pools(fixture_root, tmp_path_factory.mktemp("pools"))


# A throwaway recipe (in place of the built-in agent_scene_qa) that fails where {condition} holds, with {raise_}: a
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

RECIPE = Recipe(subtask="agent_scene_qa", ability="environment_agent", version="1",
                pools={{"speech": PoolSpec("speech")}}, plan=plan, description="test recipe", replaces=True)
'''


def built_rows(request, subtask: str) -> list[dict]:
    """Every stored row of a sub-task in the demo build (the session's `built` fixture); skips,
    before building anything, when manifests/demo.yaml does not list the sub-task."""
    import pyarrow.parquet as pq
    import yaml

    demo = yaml.safe_load((REPO / "manifests" / "demo.yaml").read_text())
    if subtask not in (demo.get("subtasks") or {}):
        pytest.skip(f"{subtask} is not in manifests/demo.yaml")
    built = request.getfixturevalue("built")
    files = sorted((Path(built["one"]) / "data" / subtask).glob("*.parquet"))
    assert files, f"{subtask} is in the demo catalog but the build wrote no shard"
    return [r for f in files for r in pq.read_table(f).to_pylist()]


# The renderer settles a reply that waits for a whole utterance where the utterance stops being
# heard (its tail, a room's reverberation): at or a little after the aligned last word's end.
SETTLE_MAX_S = 0.5


def due_after_last_word(t_s: float, last_end_s: float, tol: float = 2e-3) -> bool:
    return last_end_s - tol <= t_s <= last_end_s + SETTLE_MAX_S


def noise_track(seg: dict) -> bool:
    """A segment of the noise tracks the build lays under every stream (not a recipe's)."""
    import json

    return "track" in json.loads(seg.get("attrs") or "{}")

