"""A catalog that uses every corpus adapter at least once (manifests/all-corpora.yaml over
manifests/sources.yaml) builds and validates from the fixtures."""
import json

import yaml

from conftest import REPO, run_build
from streamaudio.audit.validate import validate
from streamaudio.build.catalog import load_catalog
from streamaudio.fixtures.pools import point_at_fixtures
from streamaudio.sources import ADAPTERS


def test_every_corpus_builds_and_validates(tmp_path, fixture_root):
    raw = yaml.safe_load((REPO / "manifests" / "all-corpora.yaml").read_text())
    raw["sources_from"] = str(REPO / "manifests" / "sources.yaml")
    raw["vars"]["data_root"] = str(fixture_root)
    point_at_fixtures(raw, fixture_root)
    cat = tmp_path / "all.yaml"
    cat.write_text(yaml.safe_dump(raw))
    catalog = load_catalog(cat)
    used_corpora = {catalog.sources[s].corpus for s in catalog.needed_sources()}
    assert used_corpora == set(ADAPTERS.names())  # every registered adapter, at least once
    b = run_build(cat, tmp_path / "out", num_cpus=2, cache_dir=tmp_path / "cache")
    assert validate(tmp_path / "out").ok
    assert b["episodes"]["written"] == sum(s.count for s in catalog.subtasks.values())
    for name, src in b["inputs"].items():
        assert src["seen"] == src["used"] + src["rejected"] and src["used"] > 0, name
    assert b["inputs"]["dns_rir"]["drawn"] > 0  # rooms are drawn too (asr_noisy's optional rir pool)
    built = json.loads((tmp_path / "out" / "build.json").read_text())
    assert {"en", "fr"} <= set(built["languages"])
