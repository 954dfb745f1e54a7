"""The task runner that extraction batches run on: in-process threads, or Dask (local or remote cluster)."""

from __future__ import annotations

from prefect.task_runners import TaskRunner, ThreadPoolTaskRunner

from kpe.settings import Settings, get_settings


def extraction_task_runner(settings: Settings | None = None) -> TaskRunner:
    """``KPE_TASK_RUNNER=dask`` maps extraction over a Dask cluster (``KPE_DASK_ADDRESS`` or a local one)."""
    settings = settings or get_settings()
    if settings.task_runner == "dask":
        from prefect_dask import DaskTaskRunner

        if settings.dask_address:
            return DaskTaskRunner(address=settings.dask_address)
        return DaskTaskRunner(cluster_kwargs={"n_workers": settings.dask_workers, "threads_per_worker": 1,
                                              "processes": True})
    return ThreadPoolTaskRunner(max_workers=settings.extract_parallelism)
