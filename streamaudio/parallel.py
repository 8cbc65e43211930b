"""Ray: starting or joining it, and row-wise stages on Ray Data actors (one expensive
model per actor, reused for every batch: aligners, recognisers)."""
from __future__ import annotations

import logging
import os
from typing import Callable

import pyarrow as pa


def init_ray(address: str | None = None, num_cpus: int | None = None):
    """Join the cluster at ``address`` ('auto': the one `ray start` made on this machine), or,
    by default, start a private local Ray: a build never joins a cluster it was not asked to."""
    import ray
    from ray.data import DataContext

    if not ray.is_initialized():
        kw = dict(include_dashboard=False, log_to_driver=False, logging_level=logging.WARNING,
                  configure_logging=True)
        if address and address != "local":
            ray.init(address=address, **kw)
        else:
            os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
            ray.init(address="local", num_cpus=num_cpus, **kw)
    logging.getLogger("ray.data").setLevel(logging.WARNING)  # per-dataset INFO lines; our bars report progress
    ctx = DataContext.get_current()
    ctx.enable_progress_bars = False  # our own bars report progress; Ray's per-operator bars are noise here
    ctx.print_on_execution_start = False
    return ray


def map_rows_with_actors(rows: pa.Table, worker_cls, ctor_kwargs: dict, result_schema: pa.Schema, *,
                         batch_size: int, actors: int | None = None, gpus_per_actor: float = 0.0,
                         on_batch: Callable[[pa.Table], None] | None = None) -> None:
    """Run ``worker_cls(**ctor_kwargs)(batch) -> pa.Table`` over ``rows`` on Ray actors;
    ``on_batch`` receives each result table as it completes (in any order)."""
    import ray

    if rows.num_rows == 0:
        return
    cpus = int(ray.available_resources().get("CPU", 1)) or 1
    n_actors = actors or (1 if gpus_per_actor else max(1, min(cpus, -(-rows.num_rows // batch_size))))
    # blocks made here, not by a repartition: with every CPU held by an actor, a CPU
    # task for repartitioning would wait forever
    ds = ray.data.from_arrow([rows.slice(i, batch_size) for i in range(0, rows.num_rows, batch_size)])
    res = {"num_gpus": gpus_per_actor} if gpus_per_actor else {"num_cpus": 1}
    ds = ds.map_batches(worker_cls, fn_constructor_kwargs=ctor_kwargs, batch_format="pyarrow",
                        batch_size=batch_size, compute=ray.data.ActorPoolStrategy(size=n_actors), **res)
    for batch in ds.iter_batches(batch_format="pyarrow", batch_size=None):
        if on_batch is not None:
            on_batch(batch.cast(result_schema))
