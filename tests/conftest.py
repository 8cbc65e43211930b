import os
import shutil
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


def run_build(catalog: Path, out: Path, num_cpus: int, cache_dir: Path | None = None) -> dict:
    import ray

    from streamaudio.build import build

    ray.shutdown()
    try:
        return build(catalog, out, num_cpus=num_cpus, show_progress=False, cache_dir=cache_dir)
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
