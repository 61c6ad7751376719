"""`generate --backend ray`: Ray Data spreads a run's pending prompts over engine workers.

The driver (refusaldata.generate.generate) has already picked the run, recorded it and
listed the pending prompts of its shard. Here they become a Ray dataset cut into batches
of --chunk-size. Each of --ray-workers actors loads the engine once (vllm or
transformers, the same code a local run uses), answers a batch and appends it to the
store itself, so every chunk is stored as soon as it is done and a killed job resumes
like any other. The run id is the engine's, the same as a local run of that engine.

The store must be one every worker reaches: s3://…, or a folder on a shared file system.
`ray.init()` joins the cluster that RAY_ADDRESS names, or starts a local one.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from pathlib import Path

from refusaldata.errors import BackendError
from refusaldata.store import Store


class ChunkWorker:
    """A Ray actor: one engine, loaded once, answering and storing one batch per call."""

    def __init__(self, store_root: str, options, engine: str, run_id: str):
        from refusaldata.generate import make_backend

        self.store = Store(store_root)
        self.backend = make_backend(options, engine)
        self.engine = self.backend.open()
        self.run_id = run_id
        self.n = options.n

    def __call__(self, batch: dict) -> dict:
        from refusaldata.generate import Prompt, answer_chunk

        chunk = [Prompt(str(pid), str(text)) for pid, text in zip(batch["prompt_id"], batch["text"], strict=True)]
        result = answer_chunk(self.store, self.backend, self.engine, self.run_id, chunk, self.n)
        return {name: [value] for name, value in dataclasses.asdict(result).items()}


def _portable(options):
    """Options whose local paths (a model folder, an adapter) are absolute, since Ray workers
    do not run in the driver's working folder."""
    changes = {}
    if Path(options.model).exists():
        changes["model"] = str(Path(options.model).resolve())
    if options.adapter and Path(options.adapter).exists():
        changes["adapter"] = str(Path(options.adapter).resolve())
    return dataclasses.replace(options, **changes)


def generate_with_ray(store: Store, options, engine: str, run_id: str, pending: list, summary, progress) -> None:
    """Answer `pending` on Ray workers; `summary` and `progress` see each stored chunk."""
    try:
        import ray
    except ImportError:
        raise BackendError("--backend ray needs Ray: pip install -e '.[ray]' in the refusaldata checkout") from None
    from refusaldata.generate import ChunkResult

    root = str(store.root) if store.remote else str(Path(store.root).resolve())
    started_here = not ray.is_initialized()
    if started_here:
        quiet = {"include_dashboard": False, "log_to_driver": False, "logging_level": logging.WARNING}
        if os.environ.get("RAY_ADDRESS"):
            ray.init(**quiet)
        else:  # a local cluster sized for the workers asked for, not the whole machine
            ray.init(num_cpus=options.ray_workers + 1, **quiet)
    logging.getLogger("ray.data").setLevel(logging.WARNING)
    try:
        ray.data.DataContext.get_current().enable_progress_bars = False
        prompts = ray.data.from_items([{"prompt_id": p.prompt_id, "text": p.text} for p in pending],
                                      override_num_blocks=max(1, -(-len(pending) // options.chunk_size)))
        done = prompts.map_batches(
            ChunkWorker, batch_size=options.chunk_size, concurrency=options.ray_workers, num_cpus=1,
            num_gpus=options.ray_gpus_per_worker or None,
            fn_constructor_kwargs={"store_root": root, "options": _portable(options), "engine": engine,
                                   "run_id": run_id})
        for row in done.iter_rows():
            summary.add(ChunkResult(**{field.name: row[field.name] for field in dataclasses.fields(ChunkResult)}))
            if progress is not None:
                progress(summary)
    finally:
        if started_here:
            ray.shutdown()
