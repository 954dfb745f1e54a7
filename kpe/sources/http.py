"""Robust HTTP downloads of NLM / Semantic Scholar files, and the retry policy the S2 API client shares.

``download`` streams to ``<dest>/<name>.part`` and renames into place only when the transfer is complete
(and, when an md5 is published, verified), so a file at its final name is always whole. It resumes a
``.part`` with ``Range`` requests, retries transient failures (timeouts, dropped connections, 429, 5xx)
with exponential backoff and jitter, and fails at once with a clear error on any other 4xx.

Secrets: request headers (an S2 ``x-api-key``) are never logged nor put into exceptions; URLs are logged
with signature-like query values (presigned S3 links) masked by ``redact_url``.

Usage::

    path = download("https://ftp.ncbi.nlm.nih.gov/pubmed/updatefiles/pubmed25n1275.xml.gz", cache / "downloads",
                    retries=5, backoff_s=1.0, timeout_s=60.0)
    local = resolve_input(spec, cache_dir)   # a URL is downloaded, a local path comes back as is
"""

from __future__ import annotations

import hashlib
import logging
import os
import random
import re
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Literal, TypeVar
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit
from urllib.request import url2pathname

import httpx
from tqdm import tqdm

log = logging.getLogger(__name__)

T = TypeVar("T")

CHUNK_BYTES = 1 << 20
MAX_RETRY_AFTER_S = 300.0
_SENSITIVE_QUERY_KEYS = re.compile(
    r"(signature|credential|security-token|accesskey|api[_-]?key|^key$|^sig$|password|secret)", re.I
)
_MD5_NLM = re.compile(r"^\s*MD5\s*\((?P<name>[^)]*)\)\s*=\s*(?P<md5>[0-9a-fA-F]{32})\s*$")
_MD5_COREUTILS = re.compile(r"^\s*(?P<md5>[0-9a-fA-F]{32})(?:\s+\*?(?P<name>\S.*?))?\s*$")


class HTTPRequestError(RuntimeError):
    """A request failed for good: a 4xx answer (other than 429), or every retry used up.

    ``url`` is redacted (see ``redact_url``) and ``status`` is the last HTTP status, if any.
    The message never includes request headers.
    """

    def __init__(self, message: str, *, url: str, status: int | None = None) -> None:
        super().__init__(message)
        self.url = redact_url(url)
        self.status = status


class ChecksumError(ValueError):
    """A download does not match its published md5 (the download was deleted), or the md5 file is unreadable."""


class TransientHTTPError(Exception):
    """A failure worth retrying: HTTP 429 / 5xx, an incomplete body. ``retry_after`` from the server, if any."""

    def __init__(self, problem: str, *, status: int | None = None, retry_after: float | None = None) -> None:
        super().__init__(problem)
        self.status = status
        self.retry_after = retry_after


_TRANSIENT_HTTPX = (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError)


def redact_url(url: str) -> str:
    """``url`` with the values of signature / credential / key query parameters replaced by ``***``."""
    try:
        parts = urlsplit(str(url))
    except ValueError:
        return "<unparseable url>"
    netloc = parts.netloc.rsplit("@", 1)[-1]  # drop user:password@
    if not parts.query:
        return urlunsplit((parts.scheme, netloc, parts.path, "", ""))
    query = [
        (k, "***" if _SENSITIVE_QUERY_KEYS.search(k) else v)
        for k, v in parse_qsl(parts.query, keep_blank_values=True)
    ]
    return urlunsplit((parts.scheme, netloc, parts.path, urlencode(query, safe="*"), ""))


def scrub(text: str, secrets: Iterable[str | None]) -> str:
    """``text`` with every non-empty secret replaced by ``***`` (for server messages that might echo one)."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text


def is_transient_status(status: int) -> bool:
    """429 and every 5xx are retried; other statuses are final."""
    return status == 429 or 500 <= status <= 599


def _retry_after_seconds(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None  # an HTTP date: fall back to our own backoff


def raise_for_transient(response: httpx.Response) -> None:
    """Raise ``TransientHTTPError`` when ``response`` is a 429 or 5xx (the caller then retries)."""
    if is_transient_status(response.status_code):
        raise TransientHTTPError(
            f"HTTP {response.status_code} {response.reason_phrase}".strip(),
            status=response.status_code,
            retry_after=_retry_after_seconds(response),
        )


def retry_delay(attempt: int, backoff_s: float, retry_after: float | None = None) -> float:
    """Seconds to wait before retry number ``attempt + 1``: ``backoff_s * 2**attempt`` plus up to 10% jitter,
    at least the server's ``Retry-After`` (capped at 5 minutes)."""
    delay = backoff_s * (2**attempt)
    delay += random.uniform(0, 0.1 * delay) if delay > 0 else 0.0
    if retry_after is not None:
        delay = max(delay, min(retry_after, MAX_RETRY_AFTER_S))
    return delay


def call_with_retries(func: Callable[[int], T], *, retries: int, backoff_s: float, what: str, url: str) -> T:
    """Call ``func(attempt)`` until it returns, retrying ``TransientHTTPError`` and httpx timeouts /
    connection errors up to ``retries`` times with ``retry_delay`` between tries.

    Any other exception (a 4xx error, a checksum error) propagates at once. When the retries are used up
    raises ``HTTPRequestError`` naming ``what`` (a short, secret-free description such as
    ``"GET https://host/path"``) and the last problem.
    """
    for attempt in range(retries + 1):
        try:
            return func(attempt)
        except TransientHTTPError as exc:
            problem, status, retry_after = str(exc), exc.status, exc.retry_after
        except _TRANSIENT_HTTPX as exc:
            problem, status, retry_after = f"{type(exc).__name__}: {exc}", None, None
        if attempt >= retries:
            raise HTTPRequestError(
                f"{what}: gave up after {attempt + 1} attempt(s); last problem: {problem}", url=url, status=status
            ) from None
        delay = retry_delay(attempt, backoff_s, retry_after)
        log.warning("%s: %s; retry %d/%d in %.2fs", what, problem, attempt + 1, retries, delay)
        time.sleep(delay)
    raise AssertionError("unreachable")  # pragma: no cover


def file_md5(path: Path) -> str:
    """Hex md5 of a file, read in 1 MiB chunks."""
    digest = hashlib.md5()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(CHUNK_BYTES), b""):
            digest.update(chunk)
    return digest.hexdigest()


def parse_md5_file(text: str) -> tuple[str, str | None]:
    """``(md5, file name or None)`` from an NLM ``MD5(name)= hex`` line or a coreutils ``hex  name`` line."""
    for line in text.splitlines():
        if not line.strip():
            continue
        match = _MD5_NLM.match(line) or _MD5_COREUTILS.match(line)
        if match:
            return match.group("md5").lower(), (match.group("name") or None)
        break
    raise ChecksumError(f"unreadable md5 file (expected 'MD5(name)= <32 hex>' or '<32 hex>  name'): {text[:80]!r}")


def _name_from_url(url: str) -> str:
    name = unquote(urlsplit(url).path.rstrip("/").rsplit("/", 1)[-1])
    if not name or name in (".", ".."):
        raise ValueError(f"cannot derive a file name from {redact_url(url)}; pass filename=")
    return name


def _md5_url_for(url: str) -> str | None:
    parts = urlsplit(url)
    if parts.query:  # presigned / API links: no sibling .md5 is published
        return None
    return urlunsplit((parts.scheme, parts.netloc, parts.path + ".md5", "", ""))


def _published_md5(
    client: httpx.Client,
    url: str,
    md5_url: str | None,
    *,
    auto: bool,
    expected_name: str,
    retries: int,
    backoff_s: float,
) -> str | None:
    """The md5 published beside ``url``; ``None`` when there is none (``auto``: the ``.md5`` answers 4xx)."""
    if md5_url is None:
        return None
    what = f"GET {redact_url(md5_url)}"

    def fetch(_attempt: int) -> str | None:
        response = client.get(md5_url)
        raise_for_transient(response)
        if response.status_code >= 400:
            if auto:
                log.info("%s: HTTP %d, no md5 published; the download is not checksummed", what, response.status_code)
                return None
            raise HTTPRequestError(f"{what}: HTTP {response.status_code} (md5 file not available)", url=md5_url,
                                   status=response.status_code)
        return response.text

    text = call_with_retries(fetch, retries=retries, backoff_s=backoff_s, what=what, url=md5_url)
    if text is None:
        return None
    md5, name = parse_md5_file(text)
    if name is not None and Path(name.strip()).name != expected_name:
        raise ChecksumError(f"{redact_url(md5_url)} is the md5 of {name!r}, not of {expected_name!r}")
    return md5


def _fetch_to_part(
    client: httpx.Client, url: str, part: Path, *, retries: int, backoff_s: float, progress: bool, label: str
) -> int:
    """Stream ``url`` into ``part``, resuming an existing ``.part`` with ``Range``; returns its final size."""
    what = f"GET {redact_url(url)}"

    def attempt(_n: int) -> int:
        offset = part.stat().st_size if part.exists() else 0
        headers = {"Accept-Encoding": "identity"}
        if offset:
            headers["Range"] = f"bytes={offset}-"
        with client.stream("GET", url, headers=headers) as response:
            if response.status_code == 416 and offset:
                part.unlink(missing_ok=True)
                raise TransientHTTPError("HTTP 416 for the resume range; restarting from zero", status=416)
            raise_for_transient(response)
            if response.status_code >= 400:
                raise HTTPRequestError(f"{what}: HTTP {response.status_code} {response.reason_phrase} (not retried)",
                                       url=url, status=response.status_code)
            mode, start = "wb", 0
            if response.status_code == 206 and offset:
                content_range = response.headers.get("content-range", "")
                match = re.match(r"bytes\s+(\d+)-", content_range)
                if not match or int(match.group(1)) != offset:
                    part.unlink(missing_ok=True)
                    raise TransientHTTPError(f"unexpected Content-Range {content_range!r}; restarting from zero")
                mode, start = "ab", offset
                log.info("%s: resuming at byte %d", what, offset)
            elif offset:
                log.info(
                    "%s: server ignored the resume range (HTTP %d); restarting from zero", what, response.status_code
                )
            length = response.headers.get("content-length")
            total = start + int(length) if length and length.isdigit() else None
            with open(part, mode) as fh, tqdm(total=total, initial=start, unit="B", unit_scale=True, desc=label,
                                               disable=not progress, leave=False) as bar:
                for chunk in response.iter_raw():  # no chunk_size: a chunker would hold back bytes a drop then loses
                    fh.write(chunk)
                    bar.update(len(chunk))
        size = part.stat().st_size
        if total is not None and size != total:
            raise TransientHTTPError(f"incomplete body: {size} of {total} bytes")
        return size

    return call_with_retries(attempt, retries=retries, backoff_s=backoff_s, what=what, url=url)


def download(
    url: str,
    dest_dir: Path,
    *,
    md5_url: str | None | Literal["auto"] = "auto",
    retries: int,
    backoff_s: float,
    timeout_s: float,
    headers: dict[str, str] | None = None,
    progress: bool = True,
    filename: str | None = None,
) -> Path:
    """Download ``url`` into ``dest_dir/<filename or URL base name>`` and return that path.

    - ``md5_url="auto"``: use ``<url>.md5`` when it answers 200 (NLM publishes one beside every file);
      a string: that md5 file must exist; ``None``: no published checksum.
    - A published md5 is verified; a mismatch deletes the download and raises ``ChecksumError``.
    - A file already in ``dest_dir`` that matches its recorded ``<name>.md5`` sidecar (or, without a
      sidecar, the published md5) is reused with no download.
    - ``headers`` (e.g. ``{"x-api-key": ...}``) are sent but never logged.
    """
    dest_dir = Path(dest_dir)
    dest_dir.mkdir(parents=True, exist_ok=True)
    url_name = _name_from_url(url)
    name = filename or url_name
    final, part, sidecar = dest_dir / name, dest_dir / f"{name}.part", dest_dir / f"{name}.md5"
    safe_url = redact_url(url)
    auto = md5_url == "auto"
    resolved_md5_url = _md5_url_for(url) if auto else md5_url

    with httpx.Client(timeout=httpx.Timeout(timeout_s), headers=headers, follow_redirects=True) as client:
        if final.exists() and sidecar.exists():
            recorded, _ = parse_md5_file(sidecar.read_text())
            if file_md5(final) == recorded:
                log.info("reusing %s (md5 matches its sidecar)", final)
                return final
            log.warning("%s does not match its recorded md5; downloading it again", final)
            final.unlink()
            sidecar.unlink()

        expected = _published_md5(client, url, resolved_md5_url, auto=auto, expected_name=url_name,
                                  retries=retries, backoff_s=backoff_s)
        if final.exists():
            actual = file_md5(final)
            if expected is None or actual == expected:
                sidecar.write_text(f"MD5({name})= {actual}\n")
                log.info("reusing %s (%s)", final, "md5 verified" if expected else "no published md5")
                return final
            log.warning("%s does not match the published md5; downloading it again", final)
            final.unlink()

        log.info("downloading %s -> %s", safe_url, final)
        started = time.monotonic()
        size = _fetch_to_part(client, url, part, retries=retries, backoff_s=backoff_s, progress=progress, label=name)
        actual = file_md5(part)
        if expected is not None and actual != expected:
            part.unlink(missing_ok=True)
            raise ChecksumError(
                f"md5 mismatch for {name} from {safe_url}: published {expected}, downloaded {actual}; "
                "the download was deleted"
            )
        os.replace(part, final)
        sidecar.write_text(f"MD5({name})= {actual}\n")
        log.info("downloaded %s: %d bytes in %.1fs (%s)", final, size, time.monotonic() - started,
                 "md5 verified" if expected else "no published md5")
    return final


def resolve_input(spec: str, cache_dir: Path, **http_settings: object) -> Path:
    """A local file for an input spec: an ``http(s)://`` URL is downloaded into ``cache_dir/downloads``
    (``http_settings`` go to ``download``; retries / backoff / timeout default to the pipeline settings);
    a local path (or ``file://`` URL) is returned as is. Globs are expanded by the caller.

    Raises ``FileNotFoundError`` for a missing local path and ``ValueError`` for another URL scheme.
    """
    spec = str(spec)
    parts = urlsplit(spec)
    scheme = parts.scheme.lower()
    if scheme in ("http", "https"):
        if not {"retries", "backoff_s", "timeout_s"} <= http_settings.keys():
            from kpe.settings import get_settings

            settings = get_settings()
            http_settings.setdefault("retries", settings.http_retries)
            http_settings.setdefault("backoff_s", settings.http_backoff_s)
            http_settings.setdefault("timeout_s", settings.http_timeout_s)
        return download(spec, Path(cache_dir) / "downloads", **http_settings)  # type: ignore[arg-type]
    if scheme == "file":
        path = Path(url2pathname(parts.path))
    elif len(scheme) > 1:  # one letter is a Windows drive, not a scheme
        raise ValueError(f"unsupported input {redact_url(spec)!r}: use an https:// or http:// URL or a local path")
    else:
        path = Path(spec).expanduser()
    if not path.exists():
        raise FileNotFoundError(f"input not found: {path}")
    return path
