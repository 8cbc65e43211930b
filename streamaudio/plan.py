"""Episode plans and the recipe registry.

A recipe is one module (in ``recipes/`` or a user folder) that defines
``RECIPE = Recipe(...)``: its sub-task, the pools it needs, the policy/text
tables it reads, and a pure planning function ``plan(ctx) -> EpisodePlan``.
Planning sees only clip rows, tables and a seeded generator: no files, no
clock, no global state. Loading, mixing, labelling and writing are shared.
"""
from __future__ import annotations

import hashlib
import importlib.util
import sys
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Callable

import numpy as np
import yaml

from .format import CHUNK_S, MANIFESTS_DIR, REPO_ROOT, taxonomy


class PlanError(ValueError):
    """A recipe cannot plan this episode (e.g. a pool is too small); becomes a reject."""


@dataclass
class SegmentPlan:
    clip: dict  # a clip-manifest row
    start_s: float  # where the segment starts in the episode
    kind: str  # speech, sound, music, noise
    role: str  # user, other, environment, background
    gain_db: float = 0.0  # level relative to the reference level every clip is normalised to
    clip_start_s: float = 0.0  # where in the clip to start (seconds after the row's offset_s)
    clip_dur_s: float | None = None  # None: to the end of the clip
    loop_to_end: bool = False  # background beds: repeat the clip until the episode ends
    text: str | None = None  # None: the clip's transcript
    labels: list[str] | None = None  # None: the clip's labels


def background_bed(clip: dict, gain_db: float) -> SegmentPlan:
    """A noise bed under the whole episode: starts at 0, loops to the end (with crossfades)."""
    return SegmentPlan(clip=clip, start_s=0.0, kind="noise", role="background", gain_db=gain_db, loop_to_end=True)


@dataclass
class TurnPlan:
    trigger_s: float
    kind: str  # respond or stay_silent
    text: str = ""
    emotion: str = "normal"
    tool_call: str = ""


@dataclass
class EpisodePlan:
    segments: list[SegmentPlan]
    turns: list[TurnPlan]
    language: str = ""
    system_prompt: str = ""
    min_duration_s: float = 0.0  # the renderer rounds up to whole chunks and past every segment/turn
    text_writer: str = ""
    tts: str = ""
    aligner: str = ""


class Pool:
    """The clips of one source in one split, in manifest order.

    Planning runs once per episode over pools of up to millions of clips, so
    ``where=`` is served by rejection sampling (expected O(1) when most clips fit)
    and only falls back to a full scan when few do; ``with_label`` is indexed.
    """

    TRIES = 32

    def __init__(self, name: str, rows: list[dict]):
        self.name, self.rows = name, rows
        self._by_label: dict[str, list[dict]] | None = None

    def __len__(self) -> int:
        return len(self.rows)

    def with_label(self, label: str) -> list[dict]:
        if self._by_label is None:
            self._by_label = {}
            for r in self.rows:
                for lab in r.get("labels") or []:
                    self._by_label.setdefault(lab, []).append(r)
        return self._by_label.get(label, [])

    def _fitting(self, where) -> list[dict]:
        rows = [r for r in self.rows if where(r)]
        if not rows:
            raise PlanError(f"pool {self.name!r} has no clip that fits")
        return rows

    def choice(self, rng: np.random.Generator, where: Callable[[dict], bool] | None = None) -> dict:
        if not self.rows:
            raise PlanError(f"pool {self.name!r} is empty")
        if where is None:
            return self.rows[int(rng.integers(len(self.rows)))]
        for _ in range(self.TRIES):
            r = self.rows[int(rng.integers(len(self.rows)))]
            if where(r):
                return r
        rows = self._fitting(where)
        return rows[int(rng.integers(len(rows)))]

    def sample(self, rng: np.random.Generator, k: int, where: Callable[[dict], bool] | None = None) -> list[dict]:
        """k distinct clips when the pool has them, otherwise with repeats."""
        if not self.rows:
            raise PlanError(f"pool {self.name!r} is empty")
        if where is None:
            idx = rng.choice(len(self.rows), size=k, replace=k > len(self.rows))
            return [self.rows[int(i)] for i in idx]
        picked: dict[int, dict] = {}
        if k <= len(self.rows) // 4:  # a big pool: draw until k distinct clips fit
            for _ in range(self.TRIES * k):
                i = int(rng.integers(len(self.rows)))
                if i not in picked and where(self.rows[i]):
                    picked[i] = self.rows[i]
                    if len(picked) == k:
                        return list(picked.values())
        rows = self._fitting(where)
        idx = rng.choice(len(rows), size=k, replace=k > len(rows))
        return [rows[int(i)] for i in idx]


@dataclass
class PlanContext:
    episode_id: str
    subtask: str
    split: str
    rng: np.random.Generator
    pools: dict[str, Pool]
    tables: dict[str, dict]
    options: dict = field(default_factory=dict)
    chunk_s: float = CHUNK_S


@dataclass(frozen=True)
class Recipe:
    subtask: str
    ability: str
    version: str
    pools: dict[str, str]  # pool name -> clip kind it must hold (speech, sound, noise, text)
    plan: Callable[[PlanContext], EpisodePlan]
    tables: dict[str, str] = field(default_factory=dict)  # table name -> path under manifests/
    description: str = ""
    module_path: str = ""
    curation_pool: str = "events"  # with a "curation" table: the pool whose clips scenarios are grounded in

    def load_tables(self) -> dict[str, dict]:
        return {name: _load_table(rel) for name, rel in self.tables.items()}


@lru_cache(maxsize=None)
def _load_table(rel: str) -> dict:
    path = MANIFESTS_DIR / rel
    if not path.is_file():
        raise FileNotFoundError(f"recipe table not found: {path}")
    return yaml.safe_load(path.read_text())


def episode_seed(catalog_seed: int, episode_id: str) -> int:
    """Per-episode seed: independent of worker count, order and every other episode."""
    digest = hashlib.sha256(f"{catalog_seed}:{episode_id}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & (2**63 - 1)


BUILTIN_RECIPES = REPO_ROOT / "recipes"


class RecipeError(ValueError):
    pass


def _load_module(path: Path):
    name = f"streamaudio_recipes_{hashlib.sha1(str(path).encode()).hexdigest()[:8]}_{path.stem}"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


@lru_cache(maxsize=None)
def load_recipes(extra_dirs: tuple[Path, ...] = ()) -> dict[str, Recipe]:
    """Every recipe in ``recipes/`` plus the user's folders; a later folder may not
    silently replace an earlier recipe: a duplicate sub-task slug is an error."""
    tax = taxonomy().subtasks
    out: dict[str, Recipe] = {}
    for d in (BUILTIN_RECIPES, *extra_dirs):
        if not Path(d).is_dir():
            raise RecipeError(f"recipe folder not found: {d}")
        for path in sorted(Path(d).glob("*.py")):
            if path.name.startswith("_"):
                continue
            recipe = getattr(_load_module(path), "RECIPE", None)
            if not isinstance(recipe, Recipe):
                raise RecipeError(f"{path}: a recipe module must define RECIPE = streamaudio.plan.Recipe(...)")
            if recipe.subtask in out:
                raise RecipeError(f"{path}: sub-task {recipe.subtask!r} already defined by {out[recipe.subtask].module_path}")
            if recipe.subtask not in tax:
                raise RecipeError(f"{path}: {recipe.subtask!r} is not a sub-task of manifests/taxonomy.yaml")
            if tax[recipe.subtask] != recipe.ability:
                raise RecipeError(f"{path}: {recipe.subtask!r} belongs to ability {tax[recipe.subtask]!r}, not {recipe.ability!r}")
            out[recipe.subtask] = Recipe(**{**recipe.__dict__, "module_path": str(path)})
    return out
