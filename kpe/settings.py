"""All settings in one place: environment variables ``KPE_*`` and an optional ``kpe.toml``.

Precedence (highest first): explicit arguments, ``KPE_*`` environment variables, ``kpe.toml`` in the
working directory (or the file named by ``KPE_CONFIG``), then the defaults below.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict, TomlConfigSettingsSource


class Settings(BaseSettings):
    """Pipeline settings; every field can be set as ``KPE_<FIELD>`` or in ``kpe.toml``."""

    model_config = SettingsConfigDict(env_prefix="KPE_", extra="ignore")

    lake_dir: Path = Field(Path("data/lake"), description="Root of the immutable Parquet lake")
    warehouse_path: Path = Field(Path("data/warehouse.duckdb"), description="DuckDB database file")
    shared_data_dir: Path = Field(Path("../shared/data"), description="Shared real sample data (read only)")
    cache_dir: Path = Field(Path("data/cache"), description="Downloads, wheels and embedding caches")
    models_dir: Path = Field(Path("data/models"), description="Trained model versions")

    # Sources used by `kpe nightly` when none are given on the command line.
    pubmed_sources: list[str] = Field(default_factory=list, description="MEDLINE paths, globs or https URLs")
    s2_sources: list[str] = Field(default_factory=list, description="Semantic Scholar paths, globs or https URLs")

    # Cleaning and sharding
    min_abstract_words: int = Field(5, ge=0, description="An abstract shorter than this is quarantined")
    max_title_chars: int = Field(4_000, ge=1, description="A longer title (after cleaning) is quarantined")
    max_abstract_chars: int = Field(100_000, ge=1, description="A longer abstract (after cleaning) is quarantined")
    batch_size: int = Field(5000, ge=1, description="Records per ingest batch (one shard, one transaction)")
    max_shard_bytes: int = Field(64 * 1024 * 1024, ge=1024, description="Upper bound on one Parquet shard")

    # HTTP
    http_retries: int = Field(5, ge=0)
    http_backoff_s: float = Field(1.0, ge=0)
    http_timeout_s: float = Field(60.0, gt=0)
    s2_api_base: str = Field("https://api.semanticscholar.org")

    # Extraction
    encoder: str = Field("", description="Encoder for extraction when no model is promoted (empty: packaged MiniLM)")
    extract_batch_size: int = Field(256, ge=1, description="Documents per extraction batch (one transaction)")
    native_bf16: Literal["auto", "yes", "no"] = Field(
        "auto", description="Whether the CPU counts as computing bf16 natively (precision auto -> bf16): auto = "
        "detect AVX512-BF16/AMX; yes/no = force it, e.g. to run the tests as the other kind of machine does")

    # MeSH classification (model kind `classify`): its labels are the descriptors of at least this many
    # training documents.
    mesh_min_docs: int = Field(20, ge=1, description="A MeSH descriptor is a label when in this many training docs")

    # Scale-out: where extraction batches run. "threads" (default, in the flow's process) or "dask"
    # (prefect-dask DaskTaskRunner: a local cluster, or the scheduler at dask_address). Writes to DuckDB always
    # stay in the flow's process: one writer.
    task_runner: str = Field("threads", pattern="^(threads|dask)$")
    dask_address: str = Field("", description="tcp://host:8786 of an existing Dask scheduler (empty: local cluster)")
    dask_workers: int = Field(2, ge=1, description="Workers of the local Dask cluster when no address is given")
    extract_parallelism: int = Field(1, ge=1, description="Extraction batches in flight at once")

    # Re-extraction for a model or config change runs after the new and changed documents, as a budgeted
    # backfill, so a promotion never holds back the next morning's new papers (None: no limit).
    backfill_max_docs: int | None = Field(None, ge=0, description="Re-extracted documents per run at most")
    backfill_max_minutes: float | None = Field(240.0, ge=0, description="Minutes of re-extraction per run at most")

    # Sharing the warehouse file between processes (see warehouse/db.py).
    read_wait_s: float = Field(60.0, ge=0, description="How long a reader waits for a writer's commit to finish")
    write_wait_s: float = Field(900.0, ge=0, description="How long a writer's commit waits for readers to finish")
    writer_wait_s: float = Field(0.0, ge=0, description="How long a second nightly/ingest run waits for the first "
                                 "before it refuses")
    sql_timeout_s: float = Field(300.0, gt=0, description="`kpe sql`: a statement running longer is stopped")
    sql_memory_limit: str = Field("4GB", description="`kpe sql`: DuckDB memory_limit of the sandboxed connection")

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        toml_file = Path(os.environ.get("KPE_CONFIG", "kpe.toml"))
        return (init_settings, env_settings, TomlConfigSettingsSource(settings_cls, toml_file=toml_file))

    def s2_api_key(self) -> str | None:
        """The Semantic Scholar API key (``S2_API_KEY``); never logged."""
        return os.environ.get("S2_API_KEY") or None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Process-wide settings (cached; call ``get_settings.cache_clear()`` after changing the environment)."""
    return Settings()
