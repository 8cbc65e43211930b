"""Build catalogs: which sub-tasks, how many episodes, from which sources.

A catalog is YAML (see manifests/demo.yaml); it is checked against the catalog
schema, completed from the registries (corpus adapters, source stages, the
taxonomy), so a typo fails fast with the offending key. Relative paths resolve
against the catalog file's folder.
"""
from __future__ import annotations

import copy
import hashlib
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import jsonschema
import yaml

from ..format import CHUNK_S, SPLITS, taxonomy
from ..plan.tracks import NoiseTrackSettings
from ..render.tfjp import DEFAULT_TFJP, TfjpSettings
from ..resources import SCHEMAS_DIR

DEFAULT_MAX_REJECT_RATE = 0.05


class CatalogError(ValueError):
    pass


@dataclass(frozen=True)
class SourceSpec:
    name: str
    corpus: str
    root: Path
    options: dict = field(default_factory=dict)
    stages: dict = field(default_factory=dict)  # stage config key -> settings (spoken, align, asr_check, ...)

    def stage_config(self, key: str):
        return self.stages.get(key)


@dataclass(frozen=True)
class SubtaskSpec:
    name: str
    count: int
    pools: dict[str, tuple[str, ...]]  # recipe pool name -> the catalog sources it draws from together
    shard_size: int
    options: dict = field(default_factory=dict)
    max_reject_rate: float = DEFAULT_MAX_REJECT_RATE


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
    fingerprint: str  # hash of the catalog's resolved content
    cache_dir: Path | None = None
    llm: dict | None = None  # base_url, model, concurrency, timeout_s, max_retries, ...
    tts: dict | None = None  # backend, base_url, model, voice
    raw: dict = field(default_factory=dict, compare=False)
    # how clips are prepared and joined (EpisodePlan.render): tfjp settings (and per corpus where a
    # source says otherwise), noise tracks
    render: dict = field(default_factory=lambda: {"tfjp": dict(DEFAULT_TFJP)})

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

    def needed_sources(self) -> list[str]:
        """Every source some sub-task draws from."""
        tracks = (self.render.get("noise_tracks") or {}).get("sources", [])
        return sorted({src for spec in self.subtasks.values() for srcs in spec.pools.values() for src in srcs}
                      | set(tracks))

    def subtask_settings(self, subtask: str) -> dict:
        """What of the catalog decides a sub-task's episodes (part of its shards' fingerprint)."""
        spec = self.subtasks[subtask]
        return {"seed": self.seed, "chunk_s": self.chunk_s, "splits": self.splits, "count": spec.count,
                "shard_size": spec.shard_size, "options": spec.options,
                "pools": {p: list(v) for p, v in spec.pools.items()}, "render": self.render}


def catalog_schema() -> dict:
    """The catalog schema with the registries' names and the stages' settings filled in."""
    from ..sources.base import ADAPTERS
    from ..stages import ordered_stages

    schema = copy.deepcopy(json.loads((SCHEMAS_DIR / "catalog.schema.json").read_text()))
    src = schema["properties"]["sources"]["additionalProperties"]
    src["properties"]["corpus"]["enum"] = ADAPTERS.names()
    for stage in ordered_stages():
        if stage.config_key and stage.config_schema:
            src["properties"][stage.config_key] = stage.config_schema
    schema["properties"]["subtasks"]["propertyNames"] = {"enum": sorted(taxonomy().subtasks)}
    return schema


def _read_yaml(path: Path, what: str) -> dict:
    if not path.is_file():
        raise CatalogError(f"{what} not found: {path}")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:
        raise CatalogError(f"{path}: not a text file (byte {exc.start} is not UTF-8); a {what} is YAML") from None
    except yaml.YAMLError as exc:
        raise CatalogError(f"{path}: not valid YAML: {' '.join(str(exc).split())}") from None
    if not isinstance(raw, dict):
        raise CatalogError(f"{path}: a {what} is a YAML mapping, not {type(raw).__name__}")
    return raw


VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def _expand(value: str, variables: dict, where: str, overrides: dict | None = None) -> str:
    """``${name}`` from the command line (``overrides``: ``--data-root`` sets data_root), the
    environment (STREAMAUDIO_<NAME>) or the catalog's ``vars``, in that order."""
    def sub(m):
        name = m.group(1)
        if overrides and overrides.get(name) is not None:
            return str(overrides[name])
        env = os.environ.get(f"STREAMAUDIO_{name.upper()}")
        if env is not None:
            return env
        if name in variables:
            return str(variables[name])
        raise CatalogError(f"{where}: ${{{name}}} is not set (set STREAMAUDIO_{name.upper()} or vars.{name})")
    return VAR.sub(sub, value)


def _with_sources_from(raw: dict, path: Path) -> tuple[dict, dict]:
    """The catalog's sources after ``sources_from`` (a file of shared source descriptions: the
    catalog's own entries win), and the variables for ``${...}`` with the folder each source's
    relative paths resolve against."""
    sources, bases = {}, {}
    variables = {}
    if raw.get("sources_from"):
        spath = (path.parent / raw["sources_from"]).resolve()
        shared = _read_yaml(spath, "sources file")
        if not isinstance(shared.get("sources"), dict):
            raise CatalogError(f"{spath}: a sources file has a `sources:` mapping")
        variables.update(shared.get("vars") or {})
        for name, s in shared["sources"].items():
            sources[name], bases[name] = s, spath.parent
    variables.update(raw.get("vars") or {})
    for name, s in (raw.get("sources") or {}).items():
        sources[name], bases[name] = s, path.parent
    return {"sources": sources, "bases": bases}, variables


def load_catalog(path: str | Path, variables: dict | None = None) -> Catalog:
    """A catalog, checked and resolved. ``variables`` override its ``${name}`` variables
    (e.g. ``{"data_root": "/data"}``), ahead of STREAMAUDIO_<NAME> and ``vars``."""
    from ..stages import ordered_stages

    overrides = {k: v for k, v in (variables or {}).items() if v is not None}
    path = Path(path).resolve()
    raw = _read_yaml(path, "catalog")
    merged, variables = _with_sources_from(raw, path)
    if raw.get("sources_from"):
        raw = {**raw, "sources": merged["sources"]}
    errors = sorted(jsonschema.Draft202012Validator(catalog_schema()).iter_errors(raw), key=lambda e: list(e.path))
    if errors:
        lines = [f"  at {'/'.join(map(str, e.path)) or '(top)'}: {e.message}" for e in errors]
        raise CatalogError(f"{path}: catalog does not match the catalog schema "
                           f"(`streamaudio catalog-schema` prints it):\n" + "\n".join(lines))
    stage_keys = {s.config_key for s in ordered_stages() if s.config_key}
    sources = {}
    for name, s in raw["sources"].items():
        base = merged["bases"][name]
        where = f"{path}: sources/{name}"
        stages = {k: copy.deepcopy(v) for k, v in s.items() if k in stage_keys}
        align = stages.get("align")
        if align and align.get("model_dir"):
            align["model_dir"] = str((base / _expand(align["model_dir"], variables, where, overrides)).resolve())
        sources[name] = SourceSpec(name=name, corpus=s["corpus"],
                                   root=(base / _expand(s["root"], variables, where, overrides)).resolve(),
                                   options=s.get("options", {}), stages=stages)
    subtasks = {}
    default_gate = raw.get("max_reject_rate", DEFAULT_MAX_REJECT_RATE)
    for name, t in raw["subtasks"].items():
        pools = {p: (v,) if isinstance(v, str) else tuple(v) for p, v in t.get("pools", {}).items()}
        for pool, srcs in pools.items():
            for src in srcs:
                if src not in sources:
                    raise CatalogError(f"{path}: subtasks/{name}/pools/{pool} names unknown source {src!r}; "
                                       f"sources are {sorted(sources)}")
        subtasks[name] = SubtaskSpec(name=name, count=t["count"], pools=pools,
                                     shard_size=t.get("shard_size", raw.get("shard_size", 256)),
                                     options=t.get("options", {}), max_reject_rate=t.get("max_reject_rate", default_gate))
    render = _render_settings(raw, sources, path)
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
        fingerprint=hashlib.sha256(resolved.encode()).hexdigest()[:16], raw=raw, render=render,
    )


def _render_settings(raw: dict, sources: dict, path: Path) -> dict:
    """The catalog's ``render:`` block resolved: TFJP settings (defaults filled in; a source's own
    ``tfjp:`` applies to its corpus's clips) and the noise tracks (their sources checked)."""
    block = raw.get("render") or {}
    try:
        default = TfjpSettings.from_dict(block.get("tfjp", True)).to_dict()
        out: dict = {"tfjp": default}
        by_corpus: dict[str, dict] = {}
        for name, s in raw["sources"].items():
            if "tfjp" not in s:
                continue
            own = TfjpSettings.from_dict(s["tfjp"] if isinstance(s["tfjp"], bool) else {**default, **s["tfjp"]}).to_dict()
            corpus = sources[name].corpus
            if by_corpus.get(corpus, own) != own:
                raise CatalogError(f"{path}: sources/{name}/tfjp differs from another {corpus!r} source's; "
                                   "clips are matched to TFJP settings by corpus")
            by_corpus[corpus] = own
        if by_corpus:
            out["tfjp_by_corpus"] = dict(sorted(by_corpus.items()))
        tracks = NoiseTrackSettings.from_dict(block.get("noise_tracks"))
    except ValueError as exc:
        raise CatalogError(f"{path}: render: {exc}") from None
    if tracks is not None:
        for src in tracks.sources:
            if src not in sources:
                raise CatalogError(f"{path}: render/noise_tracks/sources names unknown source {src!r}; "
                                   f"sources are {sorted(sources)}")
        out["noise_tracks"] = tracks.to_dict()
    return out
