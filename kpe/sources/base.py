"""What every source is and builds on: the ``Source`` interface, the ``InputSpec`` it plans, and the two ways an
input reaches a local file (a download, or a path / folder / glob).

A source turns command-line inputs into ordered, serialisable ingest specs (``expand``) and reads one spec's
items (``read``)::

    class Source(Protocol):
        name: str                      # "pubmed", "s2": InputSpec.source, the shards' source=, the CLI option
        file_patterns: tuple[str, ...]  # file names that are this source's when given without --<name>
        def expand(self, inputs, download_dir, **http) -> list[InputSpec]: ...
        def read(self, spec) -> Iterator[SourceItem]: ...

One bad input never stops the others: an input that cannot be planned (missing, a symlink loop, unreadable, not
a supported file, a download that failed) becomes a spec with ``error`` set, naming the input by its full path
(or redacted URL), which is reported failed and never read.
"""

from __future__ import annotations

import glob
import os
import re
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, NamedTuple, Protocol, runtime_checkable

from pydantic import BaseModel

from kpe.records import SourceItem


class InputSpec(BaseModel):
    """A unit to ingest, as plain data (it travels through Prefect task parameters)."""

    source: str  # a key of kpe.sources.SOURCES: pubmed | s2
    name: str
    uri: str
    paths: list[str]
    kind: str = "medline"  # reader: medline, or an S2 kind from kpe.sources.semantic_scholar
    error: str | None = None  # set when the input cannot be ingested at all (it is reported as failed)


@runtime_checkable
class Source(Protocol):
    """One source format family: plans its inputs and reads its specs (see the module docstring)."""

    name: str
    file_patterns: tuple[str, ...]

    def expand(self, inputs: Sequence[str], download_dir: Path, **http: Any) -> list[InputSpec]:
        """Paths, globs, folders and https URLs (downloaded into ``download_dir`` with ``http`` settings:
        ``retries``, ``backoff_s``, ``timeout_s``) -> ingest specs in ingest order; an input that cannot be used
        is a failed spec (``error`` set), placed first."""
        ...

    def read(self, spec: InputSpec) -> Iterator[SourceItem]:
        """The items of one planned spec (``spec.error`` is ``None``): records, deletions, bad records; a
        ``SourceFileError`` after every complete item when the end of a file cannot be read."""
        ...


def failed_spec(source: str, where: str | Path, error: str) -> InputSpec:
    """A spec for an input that cannot be ingested; ``error`` names it by its full path or (redacted) URL."""
    where = str(where)
    return InputSpec(source=source, name=Path(where).name or where, uri=where, paths=[], error=error)


# --- URLs ------------------------------------------------------------------------------------------------------

_URL_IN_TEXT = re.compile(r"https?://\S+")


def is_url(spec: str) -> bool:
    return spec.startswith(("https://", "http://"))


class Downloaded(NamedTuple):
    """A URL input fetched to a local file; ``uri`` is the URL without its credentials (what is stored)."""

    uri: str
    path: Path


def download_input(source: str, spec: str, download_dir: Path, **http: Any) -> Downloaded | InputSpec:
    """Download a URL input (``${KPE_SECRET_*}`` references expanded right before the request; retries, md5
    check, cache in ``download_dir``); a failed spec when that fails, with no credential in its message."""
    from kpe.sources.http import redact_url, resolve_input
    from kpe.url_secrets import expand_url_secrets

    expanded = expand_url_secrets(spec)
    try:
        return Downloaded(redact_url(spec), resolve_input(expanded, download_dir, **http))
    except Exception as exc:  # noqa: BLE001 - reported as this input's failure
        return _download_failed(source, spec, expanded, exc)


def localize_inputs(source: str, inputs: Sequence[str], download_dir: Path,
                    **http: Any) -> tuple[list[str], dict[str, str], list[InputSpec]]:
    """Inputs with every URL downloaded (:func:`download_input`): the local inputs in order, each downloaded
    file's path -> its URL without credentials (what is stored), and a failed spec per failed download."""
    local: list[str] = []
    urls: dict[str, str] = {}
    failed: list[InputSpec] = []
    for spec in inputs:
        if not is_url(spec):
            local.append(spec)
            continue
        got = download_input(source, spec, download_dir, **http)
        if isinstance(got, InputSpec):
            failed.append(got)
        else:
            urls[str(got.path)] = got.uri
            local.append(str(got.path))
    return local, urls, failed


def _download_failed(source: str, spec: str, expanded: str, exc: Exception) -> InputSpec:
    """A failed spec for a URL input; no credential of the URL appears in the message."""
    from kpe.sources.http import redact_url, scrub

    message = _URL_IN_TEXT.sub(lambda m: redact_url(m.group(0)), scrub(str(exc), [expanded]))
    return failed_spec(source, redact_url(spec), f"{redact_url(spec)}: download failed: {message}")


# --- local files ------------------------------------------------------------------------------------------------

def absolute(path: str | Path) -> str:
    """The full path as given (not resolved: a symlink loop cannot be resolved)."""
    return os.path.abspath(Path(path).expanduser())


def dangling(path: Path) -> bool:
    """A symlink whose target cannot be reached (a loop, a broken link): reported, not silently skipped."""
    return path.is_symlink() and not path.exists()


def unreadable(path: Path) -> str | None:
    """Why ``path`` cannot be read as a regular file (a symlink loop, no permission...), or ``None``."""
    try:
        with open(path, "rb"):
            pass
    except OSError as exc:
        return exc.strerror or str(exc)
    return None if os.path.isfile(path) else "not a regular file"


def local_files(spec: str | Path, patterns: tuple[str, ...] = ("*",)) -> tuple[list[Path], bool]:
    """The files one local input names, and whether they were searched for (a folder or a glob).

    A file is itself; a folder is searched recursively for ``patterns`` (hidden files and folders skipped,
    symlinked folders not followed, so a folder loop ends); a glob gives the files it matches. Symlinks that lead
    nowhere (loops, broken links) are included, so that reading them reports them. A folder without a matching
    file gives ``[]``; a glob that matches no file, or a path that does not exist, raises ``FileNotFoundError``
    (a folder that cannot be listed: ``OSError``).
    """
    path = Path(spec).expanduser()
    if path.is_file() or dangling(path):
        return [path], False
    if path.is_dir():
        matches = {m for pattern in patterns for m in path.rglob(pattern)}
        return sorted(m for m in matches if (m.is_file() or dangling(m))
                      and not any(part.startswith(".") for part in m.relative_to(path).parts)), True
    if glob.has_magic(str(spec)):
        matches = sorted(Path(p) for p in glob.glob(os.path.expanduser(str(spec)), recursive=True))
        files = [m for m in matches if m.is_file() or dangling(m)]
        if not files:
            raise FileNotFoundError(f"no file matches {absolute(spec)}")
        return files, True
    raise FileNotFoundError(f"input not found: {absolute(spec)}")
