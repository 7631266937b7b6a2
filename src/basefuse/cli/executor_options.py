"""The executor options, defined once for every command that runs an experiment (`experiment`, `demo`)."""
from __future__ import annotations

from typing import Annotated, Optional

import typer

ExecutorName = Annotated[str, typer.Option("--executor", help="local (in-process; with --workers > 1, processes), "
                                           "process (N processes), or ray.")]
Workers = Annotated[int, typer.Option("--workers", help="Jobs in flight at once (process/ray); e.g. 8 on one GPU.")]
Threads = Annotated[Optional[int], typer.Option("--threads", min=1, help="CPU threads per job (default: all cores for "
                                                "local, cores // workers for process; CPUs each job reserves on "
                                                "ray, default 1).")]
Device = Annotated[Optional[str], typer.Option("--device", help="cpu or cuda (default: cuda when available); "
                                               "the process executor gives each worker its own GPU in turn.")]
RayAddress = Annotated[Optional[str], typer.Option("--ray-address", help="Ray cluster address for --executor ray.")]
GpusPerJob = Annotated[float, typer.Option("--gpus-per-job", help="GPUs each job reserves on Ray, e.g. 0.125 "
                                           "for 8 per GPU.")]
