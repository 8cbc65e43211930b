"""Build catalogs: which sub-tasks, how many episodes, from which sources.

A catalog is YAML (see manifests/demo.yaml); it is checked against
schemas/catalog.schema.json so a typo fails fast with the offending key.
Relative paths resolve against the catalog file's folder.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import jsonschema
import yaml

from .format import CHUNK_S, SCHEMAS_DIR, SPLITS


class CatalogError(ValueError):
    pass


@dataclass(frozen=True)
class SourceSpec:
    name: str
    corpus: str
    root: Path
    options: dict = field(default_factory=dict)
    spoken: dict | None = None  # text sources: turn into speech with TTS before planning
    align: dict | None = None  # speech without word timings: align (backend, model_dir, actors, gpus_per_actor)
    asr_check: dict | None = None  # decode and reject clips above max_wer


@dataclass(frozen=True)
class SubtaskSpec:
    name: str
    count: int
    pools: dict[str, str]  # recipe pool name -> catalog source name
    shard_size: int
    options: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Catalog:
    name: str
    seed: int
    chunk_s: float
    splits: dict[str, float]
    sources: dict[str, SourceSpec]
    subtasks: dict[str, SubtaskSpec]
    recipe_dirs: tuple[Path, ...]
    path: Path
    fingerprint: str  # hash of the catalog's resolved content: resume only reuses shards of the same catalog
    cache_dir: Path | None = None
    llm: dict | None = None  # base_url, model, concurrency, timeout_s, max_retries, ...
    tts: dict | None = None  # backend, base_url, model, voice

    def split_counts(self, count: int) -> dict[str, int]:
        """Episodes per split: largest-remainder rounding, at least one per split
        with a non-zero fraction when there are enough episodes."""
        fr = {s: f for s, f in self.splits.items() if f > 0}
        total = sum(fr.values())
        exact = {s: count * f / total for s, f in fr.items()}
        out = {s: int(v) for s, v in exact.items()}
        for s in sorted(fr, key=lambda s: (-(exact[s] - out[s]), SPLITS.index(s)))[: count - sum(out.values())]:
            out[s] += 1
        if count >= len(fr):
            for s in fr:
                while out[s] == 0:
                    donor = max(out, key=lambda k: out[k])
                    out[donor] -= 1
                    out[s] += 1
        return out


def load_catalog(path: str | Path) -> Catalog:
    path = Path(path).resolve()
    if not path.is_file():
        raise CatalogError(f"catalog not found: {path}")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise CatalogError(f"{path}: not valid YAML: {exc}") from None
    schema = json.loads((SCHEMAS_DIR / "catalog.schema.json").read_text())
    errors = sorted(jsonschema.Draft202012Validator(schema).iter_errors(raw), key=lambda e: list(e.path))
    if errors:
        lines = [f"  at {'/'.join(map(str, e.path)) or '(top)'}: {e.message}" for e in errors]
        raise CatalogError(f"{path}: catalog does not match schemas/catalog.schema.json:\n" + "\n".join(lines))
    base = path.parent
    sources = {}
    for name, s in raw["sources"].items():
        align = dict(s["align"]) if s.get("align") else None
        if align and align.get("model_dir"):
            align["model_dir"] = str((base / align["model_dir"]).resolve())
        sources[name] = SourceSpec(name=name, corpus=s["corpus"], root=(base / s["root"]).resolve(),
                                   options=s.get("options", {}), spoken=s.get("spoken"), align=align,
                                   asr_check=s.get("asr_check"))
    subtasks = {}
    for name, t in raw["subtasks"].items():
        pools = t.get("pools", {})
        for pool, src in pools.items():
            if src not in sources:
                raise CatalogError(f"{path}: subtasks/{name}/pools/{pool} names unknown source {src!r}; "
                                   f"sources are {sorted(sources)}")
        subtasks[name] = SubtaskSpec(name=name, count=t["count"], pools=pools,
                                     shard_size=t.get("shard_size", raw.get("shard_size", 256)),
                                     options=t.get("options", {}))
    splits = raw.get("splits", {"train": 0.8, "validation": 0.1, "test": 0.1})
    if abs(sum(splits.values()) - 1.0) > 1e-6:
        raise CatalogError(f"{path}: split fractions must sum to 1, got {sum(splits.values())}")
    resolved = json.dumps({"raw": raw, "roots": {n: str(s.root) for n, s in sources.items()}}, sort_keys=True)
    return Catalog(
        name=raw.get("name", path.stem), seed=int(raw["seed"]), chunk_s=float(raw.get("chunk_s", CHUNK_S)),
        splits=splits, sources=sources, subtasks=subtasks,
        recipe_dirs=tuple((base / d).resolve() for d in raw.get("recipe_dirs", [])), path=path,
        cache_dir=(base / raw["cache_dir"]).resolve() if raw.get("cache_dir") else None,
        llm=raw.get("llm"), tts=raw.get("tts"),
        fingerprint=hashlib.sha256(resolved.encode()).hexdigest()[:16],
    )
