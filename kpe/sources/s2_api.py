"""A small client for the Semantic Scholar Graph API and Datasets API (httpx, the retry policy of ``http.py``).

Usage::

    with S2Client.from_settings() as s2:                  # key from S2_API_KEY, sent as ``x-api-key``
        paper = s2.paper("CorpusId:14636783", "title,abstract,externalIds")
        for item in s2.search_bulk("kubernetes", "title,abstract,externalIds,corpusId"):
            ...                                           # follows the continuation ``token``
        links = s2.dataset(s2.releases()[-1], "papers")["files"]
        steps = plan_diff(s2.diffs("2024-10-08", "2024-10-22", "papers"))   # semantic_scholar.diffs

A 404 raises ``S2NotFoundError``; 429 and 5xx are retried with backoff (``Retry-After`` honoured);
another 4xx raises ``S2APIError`` at once. The API key never appears in logs, errors or ``repr``.

A library API for notebooks and scripts, not a source: ingest plans local files and URLs only (``kpe ingest
--s2 FILE_OR_URL``), so the pipeline never calls the S2 API itself. Save an answer (``json.dump``) and ingest the
file, or pass a diff's update and delete file URLs (``DiffStep.url``) to ``--s2``, one diff per run (a run
applies its delete files after its update files).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import httpx

from kpe.sources.http import HTTPRequestError, call_with_retries, raise_for_transient, redact_url, scrub

log = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://api.semanticscholar.org"


class S2APIError(HTTPRequestError):
    """The S2 API answered with a final error (4xx other than 429), or retries were used up."""


class S2NotFoundError(S2APIError):
    """The S2 API answered 404: no such paper, release, dataset or diff."""


class S2Client:
    """Graph API (``/graph/v1``) and Datasets API (``/datasets/v1``) calls returning parsed JSON."""

    def __init__(
        self,
        base_url: str = DEFAULT_BASE_URL,
        api_key: str | None = None,
        retries: int = 5,
        backoff_s: float = 1.0,
        timeout_s: float = 60.0,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.retries = retries
        self.backoff_s = backoff_s
        self._api_key = api_key or None
        headers = {"x-api-key": self._api_key} if self._api_key else {}
        self._client = httpx.Client(base_url=self.base_url, headers=headers, timeout=httpx.Timeout(timeout_s),
                                    follow_redirects=True)

    @classmethod
    def from_settings(cls, settings: Any = None) -> S2Client:
        """A client configured from ``kpe.settings`` (base URL, retries, backoff, timeout, ``S2_API_KEY``)."""
        if settings is None:
            from kpe.settings import get_settings

            settings = get_settings()
        return cls(settings.s2_api_base, settings.s2_api_key(), settings.http_retries, settings.http_backoff_s,
                   settings.http_timeout_s)

    def __repr__(self) -> str:
        return f"S2Client(base_url={self.base_url!r}, api_key={'<set>' if self._api_key else None})"

    def __enter__(self) -> S2Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the underlying HTTP connections."""
        self._client.close()

    def get_json(self, path: str, params: dict[str, Any] | None = None) -> Any:
        """GET ``base_url + path`` and return the parsed JSON body (with retries and clear errors)."""
        params = {k: v for k, v in (params or {}).items() if v is not None}
        url = str(self._client.build_request("GET", path, params=params).url)
        what = f"GET {redact_url(url)}"

        def attempt(_n: int) -> Any:
            response = self._client.get(path, params=params)
            raise_for_transient(response)
            if response.status_code >= 400:
                detail = scrub(response.text[:300].strip(), [self._api_key])
                error = S2NotFoundError if response.status_code == 404 else S2APIError
                raise error(f"{what}: HTTP {response.status_code} {response.reason_phrase}: {detail}", url=url,
                            status=response.status_code)
            try:
                return response.json()
            except ValueError as exc:
                raise S2APIError(f"{what}: the answer is not JSON ({exc})", url=url,
                                 status=response.status_code) from None

        try:
            return call_with_retries(attempt, retries=self.retries, backoff_s=self.backoff_s, what=what, url=url)
        except S2APIError:
            raise
        except HTTPRequestError as exc:  # retries used up
            raise S2APIError(str(exc), url=url, status=exc.status) from None

    # Graph API -----------------------------------------------------------------------------------------
    def paper(self, paper_id: str, fields: str) -> dict:
        """``/graph/v1/paper/{paper_id}``: ``paper_id`` as S2 accepts it
        (sha, ``CorpusId:N``, ``DOI:x``, ``PMID:n``)."""
        return self.get_json(f"/graph/v1/paper/{quote(str(paper_id), safe=':/')}", {"fields": fields})

    def search_bulk_pages(
        self, query: str, fields: str, *, max_pages: int | None = None, **params: Any
    ) -> Iterator[dict]:
        """``/graph/v1/paper/search/bulk`` pages (``{"total", "token", "data"}``), following ``token`` until
        a page has none (or ``max_pages`` pages were read). Extra ``params``: ``year``, ``sort``,
        ``publicationTypes``, ``fieldsOfStudy``..."""
        token: str | None = None
        pages = 0
        while max_pages is None or pages < max_pages:
            page = self.get_json(
                "/graph/v1/paper/search/bulk", {"query": query, "fields": fields, **params, "token": token}
            )
            pages += 1
            log.debug(
                "bulk search page %d: %d papers", pages, len(page.get("data") or []) if isinstance(page, dict) else 0
            )
            yield page
            token = page.get("token") if isinstance(page, dict) else None
            if not token:
                return

    def search_bulk(self, query: str, fields: str, *, max_pages: int | None = None, **params: Any) -> Iterator[dict]:
        """Every paper of a bulk search (the ``data`` items of ``search_bulk_pages``), in order."""
        for page in self.search_bulk_pages(query, fields, max_pages=max_pages, **params):
            yield from page.get("data") or []

    # Datasets API --------------------------------------------------------------------------------------
    def releases(self) -> list[str]:
        """Every release id (``YYYY-MM-DD``), oldest first."""
        return list(self.get_json("/datasets/v1/release/"))

    def release(self, release_id: str) -> dict:
        """One release: ``release_id``, ``README`` and its ``datasets`` (name, description)."""
        return self.get_json(f"/datasets/v1/release/{quote(release_id)}")

    def dataset(self, release_id: str, name: str) -> dict:
        """One dataset of a release with its download links (``files``; needs an API key)."""
        return self.get_json(f"/datasets/v1/release/{quote(release_id)}/dataset/{quote(name)}")

    def diffs(self, start_release: str, end_release: str, name: str) -> dict:
        """Incremental diffs of dataset ``name`` from ``start_release`` to ``end_release`` (see ``plan_diff``)."""
        return self.get_json(f"/datasets/v1/diffs/{quote(start_release)}/to/{quote(end_release)}/{quote(name)}")
