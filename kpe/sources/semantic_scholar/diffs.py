"""Incremental updates: the ordered steps of a Datasets API diff list (``plan_diff``) and diff delete files.

``plan_diff`` is a library API, used from notebooks together with ``kpe.sources.s2_api.S2Client.diffs``: the
pipeline does not call the S2 API while planning inputs. A diff's update and delete files (``DiffStep.url``) are
ingested like any other S2 input, one diff per ``kpe ingest --s2 ...`` run (a run applies its delete files after
its update files).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from urllib.parse import unquote, urlsplit

from kpe.records import BadRecord, Deletion, SourceItem
from kpe.sources.semantic_scholar.jsonl import SOURCE, counted, records_with_corpus_id

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class DiffStep:
    """One file to apply, in order: ``update`` files upsert records, ``delete`` files delete them."""

    dataset: str
    from_release: str
    to_release: str
    action: Literal["update", "delete"]
    url: str

    @property
    def filename(self) -> str:
        """A local file name unique within a diff list (S3 names such as ``20241018_1.gz`` repeat)."""
        base = unquote(urlsplit(self.url).path.rstrip("/").rsplit("/", 1)[-1]) or "file"
        return f"{self.dataset}-{self.from_release}_to_{self.to_release}-{self.action}-{base}"

    @property
    def name(self) -> str:
        """Stable unit name for the watermark (no query string: presigned links change)."""
        return self.filename


def plan_diff(diff_json: dict[str, Any]) -> list[DiffStep]:
    """The ordered steps of a ``/datasets/v1/diffs/{start}/to/{end}/{dataset}`` answer.

    For each diff in order: its ``update_files`` then its ``delete_files`` (S2's documented order). Raises
    ``ValueError`` when the answer is malformed, when the first diff does not start at ``start_release``,
    or when the diffs do not chain (``to_release`` of one == ``from_release`` of the next): a gap would
    silently lose updates. A last ``to_release`` other than ``end_release`` is logged as a warning.
    """
    if not isinstance(diff_json, dict) or not isinstance(diff_json.get("diffs"), list):
        raise ValueError("not a Datasets API diff answer: expected an object with a 'diffs' list")
    dataset = str(diff_json.get("dataset") or "dataset")
    steps: list[DiffStep] = []
    previous_to = diff_json.get("start_release")
    for position, diff in enumerate(diff_json["diffs"]):
        if not isinstance(diff, dict) or "from_release" not in diff or "to_release" not in diff:
            raise ValueError(f"diff #{position} has no from_release / to_release")
        start, end = str(diff["from_release"]), str(diff["to_release"])
        if previous_to is not None and start != str(previous_to):
            raise ValueError(f"diff #{position} starts at {start} but the previous release is {previous_to}: "
                             "the diff list has a gap")
        for action, key in (("update", "update_files"), ("delete", "delete_files")):
            urls = diff.get(key) or []
            if not isinstance(urls, list):
                raise ValueError(f"diff #{position}: {key} is not a list")
            steps.extend(DiffStep(dataset, start, end, action, str(url)) for url in urls)  # type: ignore[arg-type]
        previous_to = end
    end_release = diff_json.get("end_release")
    if diff_json["diffs"] and end_release is not None and str(previous_to) != str(end_release):
        log.warning("diff list for %s ends at %s, not at end_release %s", dataset, previous_to, end_release)
    return steps


def iter_s2_delete_file(path: Path) -> Iterator[SourceItem]:
    """A diff delete file (JSONL of ``{"corpusid": N}``) as ``Deletion`` items; bad lines as ``BadRecord``."""
    return counted(_iter_deletes(Path(path)))


def _iter_deletes(path: Path) -> Iterator[SourceItem]:
    for item in records_with_corpus_id(path, "delete"):
        yield item if isinstance(item, BadRecord) else Deletion(SOURCE, str(item[0]))

