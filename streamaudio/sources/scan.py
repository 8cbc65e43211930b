"""The scan stage: a corpus folder -> a clip manifest (Arrow) and its rejects.

The adapter's work units run as Ray tasks (in batches, results gathered in unit
order, so the manifest is the same on any number of workers). The stage's cache
key holds the adapter's version, its options and the (path, size, mtime) of
every file under its listing roots, so a rebuild or a resume never rescans an
unchanged corpus.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pyarrow as pa

from ..progress import progress_bar
from ..stages import BuildEnv, SourceStage, SourceState, register_stage
from .base import CLIP_SCHEMA, LayoutError, Reject, get_adapter, listing_key

UNITS_PER_TASK_TARGET = 4  # tasks per CPU: enough to balance uneven units, few enough to stay cheap


def scan_units(corpus: str, root: str, options: dict, units: list[Any]) -> tuple[pa.Table, list[dict], float]:
    """Rows and rejects (stage, item, reason) of some units, in order, and the CPU seconds it took."""
    c0 = time.process_time()
    adapter = get_adapter(corpus)
    rows, rejects = [], []
    for unit in units:
        for item in adapter.scan_unit(Path(root), options, unit):
            if isinstance(item, Reject):
                rejects.append({"stage": item.stage, "item": item.item, "reason": item.reason})
            else:
                rows.append(item)
    return pa.Table.from_pylist(rows, CLIP_SCHEMA), rejects, time.process_time() - c0


def scan(corpus: str, root: Path, options: dict, *, use_ray: bool, progress=None,
         cpu: list | None = None) -> tuple[pa.Table, list[dict]]:
    """The whole corpus: its units as Ray tasks (``use_ray``: Ray must be initialised) or here.
    The CPU seconds the units took are appended to ``cpu``."""
    adapter = get_adapter(corpus)
    root = Path(root)
    if not root.exists():
        raise LayoutError(f"{corpus}: {root} does not exist. Expected layout: {adapter.expected_layout}")
    adapter.check_layout(root, options)
    units = adapter.units(root, options)
    if not use_ray or len(units) <= 1:
        table, rejects, spent = scan_units(corpus, str(root), options, units)
        if cpu is not None:
            cpu.append(spent)
        if progress:
            progress(len(units))
        return table, rejects
    import ray

    cpus = max(1, int(ray.cluster_resources().get("CPU", 1)))
    n_tasks = min(len(units), cpus * UNITS_PER_TASK_TARGET)
    size = -(-len(units) // n_tasks)
    remote = ray.remote(num_cpus=1)(scan_units)
    batches = [units[i:i + size] for i in range(0, len(units), size)]
    refs = [remote.remote(corpus, str(root), options, b) for b in batches]
    results: dict = {}
    pending = list(refs)
    while pending:
        done, pending = ray.wait(pending, num_returns=1)
        for ref in done:
            results[ref] = ray.get(ref)
            if progress:
                progress(len(batches[refs.index(ref)]))
    tables, rejects = [], []
    for ref in refs:  # unit order, whatever order the tasks finished in
        t, r, spent = results[ref]
        if cpu is not None:
            cpu.append(spent)
        tables.append(t)
        rejects += r
    return pa.concat_tables(tables).combine_chunks(), rejects


@register_stage
class Scan(SourceStage):
    """Read the corpus in its published layout (always the first stage)."""
    name = "source"
    order = 0
    version = "4"  # 3: clip rows gained dialogue, turn, translation columns; 4: channel

    def cache_config(self, state: SourceState, env: BuildEnv) -> Any:
        adapter = get_adapter(state.spec.corpus)
        root = Path(state.spec.root)
        if not root.exists():
            raise LayoutError(f"{adapter.corpus}: {root} does not exist. Expected layout: {adapter.expected_layout}")
        adapter.check_layout(root, state.spec.options)
        return [adapter.corpus, adapter.version, str(root), state.spec.options,
                listing_key(adapter, root, state.spec.options)]

    def run(self, state: SourceState, env: BuildEnv) -> None:
        adapter = get_adapter(state.spec.corpus)
        with progress_bar(f"scan {state.name}", None, env.show_progress) as advance:
            if env.use_ray:
                env.ray()
            spent: list[float] = []
            table, rejects = scan(adapter.corpus, state.spec.root, state.spec.options, use_ray=env.use_ray,
                                  progress=advance, cpu=spent)
            state.remote_cpu_s += sum(spent)
        state.table = table
        for r in rejects:
            state.reject(r["stage"], r["item"], r["reason"])
        state.report.update({"corpus": adapter.corpus, "root": str(state.spec.root), "seen": table.num_rows + len(rejects),
                             "license": adapter.license_for(state.spec.options)})
        state.kind = adapter.kind_for(state.spec.options)
        state.provides = set(adapter.provides_for(state.spec.options))
