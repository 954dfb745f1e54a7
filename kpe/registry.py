"""Model versions: how they are named, where their files live, and which model extraction uses.

A version is ``<kind>-<YYYYMMDD>-<HHMM>-<6 hex>`` (UTC), e.g. ``tagger-20261123-0215-ab12cd``; its files
live in ``settings.models_dir/<version>/``. The rows themselves are kept by ``warehouse.models`` (all the
SQL); a task reads the production row there and hands it to this module, which opens no database.

``current_extraction_model(production)`` is the one answer to "which model does nightly extraction use?"::

    with connect(path, read_only=True) as con:
        model = current_extraction_model(warehouse.models.production_model(con))

the production model when one is promoted, otherwise the packaged all-MiniLM-L6-v2 encoder with the ``kpe``
method (or the encoder named by ``settings.encoder``). Its ``version`` string is what extraction state
records, so a promotion or a rollback changes it and the next nightly re-extracts.
"""

from __future__ import annotations

import datetime as dt
import re
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from kpe.encoders import DEFAULT_ENCODER_NAME, packaged_encoder_path, resolve_encoder
from kpe.settings import Settings, get_settings

DEFAULT_METHOD = "kpe"
PACKAGED_VERSION = f"{DEFAULT_ENCODER_NAME}@packaged"
VERSION_PATTERN = re.compile(r"^(?P<kind>[a-z][a-z0-9_]*)-(?P<date>\d{8})-(?P<time>\d{4})-(?P<token>[0-9a-f]{6})$")


@dataclass(frozen=True, slots=True)
class ExtractionModel:
    """What nightly extraction runs: a method name (``kpe.extract.methods.METHODS``) and its model files."""

    version: str
    method: str
    model_path: str | None


class ProductionRecord(Protocol):
    """What this module reads of a registry row (``warehouse.models.ModelRecord``)."""

    version: str
    method: str
    path: str


def new_version(kind: str, now: dt.datetime | None = None, token: str | None = None) -> str:
    """A fresh, sortable model version name such as ``tagger-20261123-0215-ab12cd``."""
    if not re.fullmatch(r"[a-z][a-z0-9_]*", kind):
        raise ValueError(f"model kind must be lowercase letters/digits/underscores, got {kind!r}")
    now = now or dt.datetime.now(dt.UTC)
    if now.tzinfo is not None:
        now = now.astimezone(dt.UTC)
    token = token if token is not None else secrets.token_hex(3)
    version = f"{kind}-{now:%Y%m%d}-{now:%H%M}-{token}"
    if not VERSION_PATTERN.match(version):
        raise ValueError(f"token must be 6 lowercase hex digits, got {token!r}")
    return version


def is_version(name: str) -> bool:
    """Whether ``name`` looks like a version made by ``new_version``."""
    return VERSION_PATTERN.match(name) is not None


def model_dir(version: str, models_dir: Path | str | None = None) -> Path:
    """Where the files of ``version`` live: ``<models_dir>/<version>/`` (``settings.models_dir`` by default)."""
    if not version or "/" in version or "\\" in version or version in (".", ".."):
        raise ValueError(f"not a usable model version name: {version!r}")
    root = Path(models_dir) if models_dir is not None else get_settings().models_dir
    return root / version


def base_model_name(base_model: str | None) -> str:
    """What the registry records as a model's base: ``all-MiniLM-L6-v2`` for the packaged one, else the path/id."""
    resolved = resolve_encoder(base_model)
    return DEFAULT_ENCODER_NAME if resolved == packaged_encoder_path() else resolved


def default_extraction_model(settings: Settings | None = None) -> ExtractionModel:
    """The model used while none is promoted: ``settings.encoder`` (packaged MiniLM when empty) with ``kpe``."""
    settings = settings or get_settings()
    path = resolve_encoder(settings.encoder or None)
    if path == packaged_encoder_path():
        return ExtractionModel(version=PACKAGED_VERSION, method=DEFAULT_METHOD, model_path=path)
    return ExtractionModel(version=f"{settings.encoder.strip()}@encoder", method=DEFAULT_METHOD, model_path=path)


def current_extraction_model(record: ProductionRecord | None) -> ExtractionModel:
    """The production model (the registry row ``warehouse.models.production_model`` read), or the default
    encoder when none is promoted (``None``).

    A production model whose directory is gone is an error, not a silent fallback: restore the files or run
    ``kpe models rollback``.
    """
    if record is None:
        return default_extraction_model()
    path = record.path or None
    if path is not None and not Path(path).exists():
        raise FileNotFoundError(
            f"production model {record.version} points at {path}, which does not exist; "
            "restore it or run `kpe models rollback`"
        )
    return ExtractionModel(version=record.version, method=record.method, model_path=path)
