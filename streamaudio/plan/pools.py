"""Clip pools: the clips of one source in one split, as Arrow.

A pool is an Arrow table plus a label index, built once on the driver and put
in Ray's object store; shard tasks get the pools of their own sub-task only,
zero-copy (Arrow buffers and numpy arrays are mapped, not copied), and rows
become Python dicts only when a planner draws them. So a shard's cost does not
grow with the pool: a 5M-clip pool costs a worker what a 50k one does
(benchmarks/bench_pools.py).
"""
from __future__ import annotations

import bisect
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .types import PlanError


@dataclass
class PoolData:
    """What travels through the object store: the clips and their label index."""
    name: str  # "<source>/<split>"
    table: pa.Table
    labels: dict[str, np.ndarray] = field(default_factory=dict)  # label -> row indices (ascending)

    @classmethod
    def build(cls, name: str, table: pa.Table) -> "PoolData":
        # chunks kept as they are: combining a multi-GB table would copy it for nothing
        return cls(name=name, table=table, labels=label_index(table))


def label_index(table: pa.Table) -> dict[str, np.ndarray]:
    """label -> ascending row indices of the clips that carry it (vectorised)."""
    if "labels" not in table.column_names or table.num_rows == 0:
        return {}
    col = table.column("labels").combine_chunks()
    flat = pc.list_flatten(col)
    if len(flat) == 0:
        return {}
    parents = pc.list_parent_indices(col).to_numpy()
    codes = pc.dictionary_encode(flat).combine_chunks() if isinstance(flat, pa.ChunkedArray) else pc.dictionary_encode(flat)
    keys = codes.dictionary.to_pylist()
    idx = codes.indices.to_numpy()
    order = np.lexsort((parents, idx))  # by label, then row
    idx, parents = idx[order], parents[order]
    bounds = np.searchsorted(idx, np.arange(len(keys) + 1))
    out = {}
    for k, label in enumerate(keys):
        rows = np.unique(parents[bounds[k]:bounds[k + 1]])
        out[label] = rows.astype(np.int64)
    return out


class Pool:
    """A planner's view of a pool: seeded draws by index, rows materialised lazily.

    Planning runs once per episode over pools of up to millions of clips, so
    ``where=`` is served by rejection sampling (expected O(1) when most clips fit)
    and only falls back to a full scan when few do; ``with_label`` is indexed.
    """

    TRIES = 32
    ROW_CACHE = 4096

    def __init__(self, name: str, data: "PoolData | list[dict] | pa.Table",
                 row_transform: Callable[[dict], dict] | None = None):
        if isinstance(data, list):  # tests and tools: plain rows
            data = PoolData.build(name, pa.Table.from_pylist(data) if data else pa.table({}))
        elif isinstance(data, pa.Table):
            data = PoolData.build(name, data)
        self.name = name
        self.data = data
        self._rows: OrderedDict[int, dict] = OrderedDict()
        self._scans: dict = {}
        self._by_value: dict[str, tuple] = {}  # column -> (sorted distinct values, row order, bounds): with_value
        self.handed: set[str] = set()  # ids of the clips given to a planner (build.json's "drawn")
        # applied to every row a planner sees (the build's TFJP silence_cut: clips as they will be heard)
        self.row_transform = row_transform

    def __len__(self) -> int:
        return self.data.table.num_rows

    @property
    def table(self) -> pa.Table:
        return self.data.table

    def _hand(self, r: dict) -> dict:
        self.handed.add(r["id"])
        return r

    def row(self, i: int) -> dict:
        return self._hand(self._row(i))

    def _row(self, i: int) -> dict:
        i = int(i)
        r = self._rows.get(i)
        if r is None:
            r = self.data.table.slice(i, 1).to_pylist()[0]
            if self.row_transform is not None:
                r = self.row_transform(r)
            self._rows[i] = r
            if len(self._rows) > self.ROW_CACHE:
                self._rows.popitem(last=False)
        else:
            self._rows.move_to_end(i)
        return r

    @property
    def rows(self) -> list[dict]:
        """Every row (a full materialisation: for small pools and tools, not planners)."""
        return [self.row(i) for i in range(len(self))]

    def labels(self) -> list[str]:
        return sorted(self.data.labels)

    def label_count(self, label: str) -> int:
        return len(self.data.labels.get(label, ()))

    def with_label(self, label: str) -> "Rows":
        """The clips carrying ``label``, in manifest order: a lazy sequence (a row becomes a
        dict only when read), so a label held by half a million clips costs nothing to ask for."""
        return Rows(self, self.data.labels.get(label, np.zeros(0, np.int64)))

    def with_value(self, column: str, value) -> "Rows":
        """The clips whose ``column`` equals ``value`` (e.g. every turn of one ``dialogue``), in
        manifest order: a lazy sequence like ``with_label``. The column's index is built on
        first use, once per pool, on Arrow without making rows: its distinct values (dictionary
        encoding, chunk by chunk: the column is not copied) sorted once, and the row numbers
        grouped by value with a stable sort. A lookup is then a binary search over the distinct
        values; a value the column lacks (or of another type) gives no rows."""
        index = self._by_value.get(column)
        if index is None:
            table = self.data.table
            col = table.column(column) if column in table.column_names else pa.chunked_array([], pa.null())
            enc = pc.dictionary_encode(col)
            enc = enc.unify_dictionaries() if isinstance(enc, pa.ChunkedArray) else pa.chunked_array([enc])
            values = enc.chunk(0).dictionary if enc.num_chunks else pa.array([], col.type)
            rank = np.empty(len(values), np.int64)  # a code -> the place of its value in sorted order
            by_value = pc.sort_indices(values).to_numpy()
            rank[by_value] = np.arange(len(values))
            codes = np.concatenate([np.asarray(pc.fill_null(c.indices, -1).to_numpy(zero_copy_only=False), np.int64)
                                    for c in enc.chunks] or [np.zeros(0, np.int64)])
            codes = np.where(codes >= 0, rank[np.maximum(codes, 0)], -1)  # nulls (-1) are in no group
            order = np.argsort(codes, kind="stable")  # by value, then manifest order
            bounds = np.searchsorted(codes[order], np.arange(len(values) + 1))
            index = self._by_value[column] = (values.take(pa.array(by_value)), order, bounds)
        values, order, bounds = index
        try:
            k = bisect.bisect_left(range(len(values)), value, key=lambda i: values[i].as_py())
            hit = k < len(values) and values[k].as_py() == value
        except TypeError:  # a value not comparable with the column's
            hit = False
        return Rows(self, order[bounds[k]:bounds[k + 1]] if hit else np.zeros(0, np.int64))

    def _random_fits(self, rng: np.random.Generator, where, k: int) -> list[int]:
        """Up to k distinct indices of rows that fit, found by walking the pool in a random
        order: uniform over the fitting rows, and about n / (fits + 1) rows read per hit instead
        of a scan of the whole pool. A predicate without state (no closure) is scanned once and
        remembered."""
        n = len(self)
        key = where.__code__ if getattr(where, "__closure__", True) is None and hasattr(where, "__code__") else None
        if key is not None and key not in self._scans:
            self._scans[key] = np.array([i for i in range(n) if where(self._row(i))], dtype=np.int64)
        if key is not None:
            fit = self._scans[key]
            if len(fit) <= k:
                return [int(i) for i in fit]
            return [int(fit[j]) for j in rng.choice(len(fit), size=k, replace=False)]
        found: list[int] = []
        for i in rng.permutation(n):
            if where(self._row(i)):
                found.append(int(i))
                if len(found) == k:
                    break
        return found

    def choice(self, rng: np.random.Generator, where: Callable[[dict], bool] | None = None) -> dict:
        n = len(self)
        if not n:
            raise PlanError(f"pool {self.name!r} is empty")
        if where is None:
            return self.row(rng.integers(n))
        for _ in range(self.TRIES):
            r = self._row(rng.integers(n))
            if where(r):
                return self._hand(r)
        found = self._random_fits(rng, where, 1)
        if not found:
            raise PlanError(f"pool {self.name!r} has no clip that fits")
        return self.row(found[0])

    def sample(self, rng: np.random.Generator, k: int, where: Callable[[dict], bool] | None = None,
               repeats: bool = True) -> list[dict]:
        """k distinct clips when the pool has them; otherwise with repeats, or (``repeats=False``)
        the fewer distinct clips there are: one sentence said four times in an episode is not
        what a small split should turn into."""
        n = len(self)
        if not n:
            raise PlanError(f"pool {self.name!r} is empty")
        if where is None:
            idx = rng.choice(n, size=k if repeats else min(k, n), replace=repeats and k > n)
            return [self.row(i) for i in idx]
        picked: dict[int, dict] = {}
        if k <= n // 4:  # a big pool: draw until k distinct clips fit
            for _ in range(self.TRIES * k):
                i = int(rng.integers(n))
                if i not in picked:
                    r = self._row(i)
                    if where(r):
                        picked[i] = self._hand(r)
                        if len(picked) == k:
                            return list(picked.values())
        found = self._random_fits(rng, where, k)
        if not found:
            raise PlanError(f"pool {self.name!r} has no clip that fits")
        if len(found) < k and repeats:  # fewer fit than asked for: repeats
            found = [found[int(j)] for j in rng.choice(len(found), size=k, replace=True)]
        return [self.row(i) for i in found]


class Rows(Sequence):
    """Some rows of a pool, by index, materialised only when read."""

    def __init__(self, pool: Pool, indices: np.ndarray):
        self.pool, self.indices = pool, indices

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, k):
        if isinstance(k, slice):
            return Rows(self.pool, self.indices[k])
        return self.pool.row(self.indices[k])

    def __eq__(self, other) -> bool:
        return list(self) == list(other)
