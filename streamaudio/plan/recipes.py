"""Recipes: one module per sub-task, registered by the folder it lives in.

A recipe module defines ``RECIPE = Recipe(...)``: its sub-task, the pools it
draws from (with the kind of clips and the facts it needs), the tables it reads
(typed providers, see streamaudio.text.tables) and a pure planning function
``plan(ctx) -> EpisodePlan``. The built-in recipes are the toolkit's recipes/
folder; a catalog's ``recipe_dirs`` add folders of its own. Each folder is
imported as a package, so its recipes can share helpers (modules whose names
start with ``_`` are helpers, not recipes) and ship their tables beside them.

Resume fingerprints (``code_fingerprint``) hash the import closure of a
recipe together with the shard runner's: editing render code invalidates every
shard, editing one recipe (or a helper it imports) only its own.
"""
from __future__ import annotations

import ast
import hashlib
import importlib
import importlib.util
import json
import sys
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable

from ..format import taxonomy
from ..resources import BUILTIN_RECIPES_DIR, MANIFESTS_DIR, PACKAGE_ROOT
from .types import EpisodePlan, PlanContext


class RecipeError(ValueError):
    """A recipe folder or module is not usable (named with its path)."""


@dataclass(frozen=True)
class PoolSpec:
    """What a recipe pool must hold: the clips' kind (after the source stages: a text
    source spoken by TTS is speech) and facts its rows must carry (``words``: word
    timings, ``response``: a chat reply, ``labels``: sound classes, ...)."""
    kind: str | tuple[str, ...]
    requires: tuple[str, ...] = ()
    description: str = ""
    optional: bool = False  # a catalog may leave it out; the planner then finds no such key in ctx.pools

    @property
    def kinds(self) -> tuple[str, ...]:
        return (self.kind,) if isinstance(self.kind, str) else tuple(self.kind)


@dataclass(frozen=True)
class Recipe:
    subtask: str
    ability: str
    version: str
    pools: dict[str, Any]  # pool name -> PoolSpec, or a kind string
    plan: Callable[[PlanContext], EpisodePlan]
    tables: dict[str, Any] = field(default_factory=dict)  # table name -> TableProvider, or a YAML path
    description: str = ""
    # a user's recipe that deliberately takes the place of a built-in sub-task of the same
    # slug (their own version of it); without it a clash is an error, so nothing is replaced by accident
    replaces: bool = False
    module_path: str = ""  # filled in by the loader
    package: str = ""  # the import name of the recipe's folder package

    @property
    def folder(self) -> Path | None:
        return Path(self.module_path).parent if self.module_path else None

    def pool_specs(self) -> dict[str, PoolSpec]:
        return {k: v if isinstance(v, PoolSpec) else PoolSpec(v) for k, v in self.pools.items()}

    def providers(self) -> dict:
        from ..text.tables import as_provider

        return {k: as_provider(v) for k, v in self.tables.items()}

    def offline_tables(self, pools_by_split: dict | None = None, seed: int = 0) -> dict[str, Any]:
        """Every table resolved without an LLM (tests, tools); ``pools_by_split``
        (pool -> split -> Arrow clips) feeds providers that read pools."""
        from ..text.tables import TableEnv

        env = TableEnv(llm=None, subtask=self.subtask, ability=self.ability, description=self.description,
                       folder=self.folder, pools=pools_by_split or {}, seed=seed)
        for name, provider in self.providers().items():
            env.tables[name] = provider.resolve(env).value
        return env.tables


def _folder_package(folder: Path) -> str:
    """Import a recipe folder as a package (once per process) and return its name."""
    folder = folder.resolve()
    name = f"_streamaudio_recipes_{hashlib.sha1(str(folder).encode()).hexdigest()[:10]}"
    if name not in sys.modules:
        init = folder / "__init__.py"
        if init.is_file():
            spec = importlib.util.spec_from_file_location(name, init, submodule_search_locations=[str(folder)])
        else:
            spec = importlib.util.spec_from_loader(name, loader=None, is_package=True)
            spec.submodule_search_locations = [str(folder)]
        mod = importlib.util.module_from_spec(spec)
        mod.__path__ = [str(folder)]
        sys.modules[name] = mod
        if spec.loader is not None:
            spec.loader.exec_module(mod)
    return name


@lru_cache(maxsize=None)
def load_recipes(extra_dirs: tuple[Path, ...] = ()) -> dict[str, Recipe]:
    """Every recipe in the built-in folder plus the user's folders. A later folder may not
    silently replace an earlier recipe: a duplicate sub-task slug is an error, unless a user's
    recipe says ``replaces=True`` and what it replaces is built in."""
    tax = taxonomy().subtasks
    out: dict[str, Recipe] = {}
    replaced: set[str] = set()
    for d in (BUILTIN_RECIPES_DIR, *extra_dirs):
        d = Path(d)
        if not d.is_dir():
            raise RecipeError(f"recipe folder not found: {d}")
        pkg = _folder_package(d)
        for path in sorted(d.glob("*.py")):
            if path.name.startswith("_"):
                continue
            try:
                mod = importlib.import_module(f"{pkg}.{path.stem}")
            except Exception as exc:
                raise RecipeError(f"{path}: importing the recipe failed: {type(exc).__name__}: {exc}") from exc
            recipe = getattr(mod, "RECIPE", None)
            if not isinstance(recipe, Recipe):
                raise RecipeError(f"{path}: a recipe module must define RECIPE = streamaudio.plan.Recipe(...) "
                                  "(helper modules start with '_')")
            if recipe.subtask in out:
                prev = out[recipe.subtask].module_path
                builtin = Path(prev).parent == BUILTIN_RECIPES_DIR.resolve()
                if not (recipe.replaces and builtin and recipe.subtask not in replaced):
                    hint = (" (a user's recipe may take the place of the built-in one with Recipe(..., replaces=True))"
                            if builtin and not recipe.replaces else "")
                    raise RecipeError(f"{path}: sub-task {recipe.subtask!r} already defined by {prev}{hint}")
                replaced.add(recipe.subtask)
            if recipe.subtask not in tax:
                raise RecipeError(f"{path}: {recipe.subtask!r} is not a sub-task of manifests/taxonomy.yaml")
            if tax[recipe.subtask] != recipe.ability:
                raise RecipeError(f"{path}: {recipe.subtask!r} belongs to ability {tax[recipe.subtask]!r}, not {recipe.ability!r}")
            out[recipe.subtask] = Recipe(**{**recipe.__dict__, "module_path": str(path.resolve()), "package": pkg})
    return out


# ---------------------------------------------------------------- fingerprints
SHARD_RUNNER = PACKAGE_ROOT / "build" / "shards.py"


def _source_bytes(path: Path) -> bytes:
    """A file's content, as fingerprints see it (a seam for tests)."""
    return path.read_bytes()


def _module_file(name: str, roots: dict[str, Path]) -> Path | None:
    top, _, rest = name.partition(".")
    if top not in roots:
        return None
    base = roots[top].joinpath(*rest.split(".")) if rest else roots[top]
    for cand in (base.with_suffix(".py"), base / "__init__.py"):
        if cand.is_file():
            return cand
    return None


def _module_name(path: Path, roots: dict[str, Path]) -> str | None:
    for top, root in roots.items():
        try:
            rel = path.relative_to(root)
        except ValueError:
            continue
        parts = list(rel.with_suffix("").parts)
        if parts and parts[-1] == "__init__":
            parts = parts[:-1]
        return ".".join([top, *parts])
    return None


@lru_cache(maxsize=1024)
def _imports(source: bytes) -> tuple:
    """(level, module, names) of every import statement, functions' bodies included;
    level -1 for ``import a.b``. Cached by content: a build fingerprints many recipes
    whose closures share most files."""
    out = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            out += [(-1, a.name, ()) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            out.append((node.level, node.module, tuple(a.name for a in node.names)))
    return tuple(out)


def import_closure(starts: list[Path], roots: dict[str, Path]) -> set[Path]:
    """Files of every module ``starts`` import, directly or not (imports inside functions
    too), among the packages in ``roots`` (top-level name -> folder); parents' __init__ included."""
    seen: set[Path] = set()
    todo = [p.resolve() for p in starts]
    while todo:
        path = todo.pop()
        if path in seen or not path.is_file():
            continue
        seen.add(path)
        me = _module_name(path, roots) or ""
        is_pkg = path.name == "__init__.py"
        names: list[str] = []
        # every package above a module runs its __init__ when the module is imported
        parts = me.split(".")
        names += [".".join(parts[:k]) for k in range(1, len(parts))]
        for level, module, imported in _imports(_source_bytes(path)):
            if level == -1:  # `import a.b.c`
                p = module.split(".")
                names += [".".join(p[:k]) for k in range(1, len(p) + 1)]
                continue
            if level:
                pkg = me.split(".") if is_pkg else me.split(".")[:-1]
                pkg = pkg[: len(pkg) - (level - 1)]
                base = ".".join(pkg + ([module] if module else []))
            else:
                base = module or ""
            names.append(base)
            names += [f"{base}.{a}" for a in imported]
        for n in names:
            f = _module_file(n, roots)
            if f is not None and f.resolve() not in seen:
                todo.append(f.resolve())
    return seen


def code_files(recipe: Recipe) -> list[Path]:
    roots = {"streamaudio": PACKAGE_ROOT}
    starts = [SHARD_RUNNER]
    if recipe.module_path:
        roots[recipe.package or "_recipe"] = Path(recipe.module_path).parent
        starts.append(Path(recipe.module_path))
    return sorted(import_closure(starts, roots))


def code_fingerprint(recipe: Recipe) -> str:
    """sha256 over the code an episode of this recipe runs, the taxonomy and the versions of
    the libraries that decide its bytes (decoding, resampling, encoding, Parquet)."""
    import numpy
    import pyarrow
    import soundfile
    import soxr

    from .. import __version__

    h = hashlib.sha256()
    for p in code_files(recipe):
        where = p.relative_to(PACKAGE_ROOT) if p.is_relative_to(PACKAGE_ROOT) else Path("<recipe-folder>") / p.name
        h.update(f"{where}\0".encode())
        h.update(hashlib.sha256(_source_bytes(p)).digest())
    h.update(_source_bytes(MANIFESTS_DIR / "taxonomy.yaml"))
    h.update(json.dumps([__version__, numpy.__version__, pyarrow.__version__, soundfile.__version__,
                         soundfile.__libsndfile_version__, soxr.__version__]).encode())
    return h.hexdigest()
