"""A loopback HTTP server for tests: recorded Semantic Scholar answers and programmable download routes.

It listens on 127.0.0.1 only (a free port), runs in a daemon thread, and stops when its ``with`` block
ends::

    with LoopbackServer() as server:
        server.add_recorded_api(shared_data / "semantic_scholar" / "graph_api_responses")
        route = server.add_file("/pubmed/updatefiles/x.xml.gz", path, fail_first=2)
        ... server.url("/pubmed/updatefiles/x.xml.gz") ...
        assert route.hits == 3 and server.requests[-1].headers["x-api-key"] == key

Recorded answers come from vcrpy cassettes (``*.yaml``: matched on method + path + query of the
recorded URI, with ``ignore_params`` left out of the comparison) and from the saved JSON answers
(``Paper.json``, ``Release.json``, ``Dataset.json``, ``DatasetDiff.json``). A request that matches nothing
gets a 404 ``{"error": "no recorded interaction ..."}``.
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
import socket
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import yaml

_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


@dataclass
class RecordedRequest:
    """What the server received (header names lowercased)."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]


@dataclass
class Route:
    """One programmable answer. ``hits`` counts requests that reached it (failures included)."""

    body: bytes = b""
    status: int = 200
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)
    fail_first: int = 0  # answer ``fail_status`` to this many requests first
    fail_status: int = 500
    drop_once_after: int | None = None  # send this many body bytes, then drop the connection (once)
    ranges: bool = False  # honour ``Range: bytes=N-``
    hits: int = 0
    _dropped: bool = False


def _query_key(query: str, ignore: Iterable[str]) -> tuple[tuple[str, str], ...]:
    ignored = set(ignore)
    return tuple(sorted((k, v) for k, v in parse_qsl(query, keep_blank_values=True) if k not in ignored))


@functools.lru_cache(maxsize=32)
def load_cassette(path: Path) -> dict[str, Any]:
    """A parsed cassette (cached: the big bulk-search recordings take a while to parse)."""
    return yaml.load(path.read_text(), Loader=_YAML_LOADER)  # a safe loader (C or Python)


def nlm_md5_line(name: str, data: bytes) -> str:
    """An md5 file in NLM's format: ``MD5(pubmed21n1298.xml.gz)= <hex>``."""
    return f"MD5({name})= {hashlib.md5(data).hexdigest()}\n"


class LoopbackServer:
    """A ``ThreadingHTTPServer`` on 127.0.0.1 answering from recorded and programmed routes."""

    def __init__(self) -> None:
        # (method, path) -> list of (query key or None for "any query", ignored params, route)
        self._routes: dict[tuple[str, str], list[tuple[tuple[tuple[str, str], ...] | None, frozenset[str], Route]]] = {}
        self._lock = threading.Lock()
        self.requests: list[RecordedRequest] = []
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # Lifecycle ----------------------------------------------------------------------------------------
    def __enter__(self) -> LoopbackServer:
        server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        server.daemon_threads = True
        server.loopback = self  # type: ignore[attr-defined]
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._server is not None and self._thread is not None
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    @property
    def base_url(self) -> str:
        assert self._server is not None, "use the server inside its with block"
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def url(self, path: str) -> str:
        return self.base_url + path

    # Routes ---------------------------------------------------------------------------------------------
    def add(self, path: str, *, method: str = "GET", query: str | None = None, ignore_params: Iterable[str] = (),
            **route: Any) -> Route:
        """Answer ``method path`` (with exactly ``query``, minus ``ignore_params``; ``None``: any query)."""
        entry = Route(**route)
        ignored = frozenset(ignore_params)
        key = None if query is None else _query_key(query, ignored)
        with self._lock:
            self._routes.setdefault((method.upper(), path), []).insert(0, (key, ignored, entry))
        return entry

    def add_json(self, path: str, payload: Any, **route: Any) -> Route:
        body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        return self.add(path, body=body, **route)

    def add_file(self, path: str, file: Path, *, md5: str | None = "good", **route: Any) -> Route:
        """Serve ``file`` at ``path`` (Range honoured) and, unless ``md5`` is None, ``path + ".md5"`` in NLM
        format: ``"good"`` is the file's md5, ``"bad"`` the md5 of other bytes."""
        data = Path(file).read_bytes()
        route.setdefault("ranges", True)
        route.setdefault("content_type", "application/octet-stream")
        served = self.add(path, body=data, **route)
        name = path.rsplit("/", 1)[-1]
        if md5 is not None:
            md5_data = data if md5 == "good" else data + b"tampered"
            self.add(path + ".md5", body=nlm_md5_line(name, md5_data).encode(), content_type="text/plain")
        return served

    def add_cassette(self, cassette: Path, *, ignore_params: Iterable[str] = ()) -> list[Route]:
        """Every interaction of a vcrpy cassette (both vcrpy body layouts are understood)."""
        doc = load_cassette(Path(cassette).resolve())
        routes = []
        for interaction in doc.get("interactions", []):
            request, response = interaction["request"], interaction["response"]
            uri = urlsplit(request["uri"])
            body = response.get("body", {}).get("string") if isinstance(response.get("body"), dict) else None
            if body is None:
                body = response.get("content", "")
            status = (response["status"]["code"] if isinstance(response.get("status"), dict)
                      else response.get("status_code", 200))
            content_type = next((v[0] if isinstance(v, list) else v for k, v in (response.get("headers") or {}).items()
                                 if k.lower() == "content-type"), "application/json")
            routes.append(self.add(uri.path, method=request["method"], query=uri.query, ignore_params=ignore_params,
                                   body=body.encode() if isinstance(body, str) else body, status=int(status),
                                   content_type=content_type))
        return routes

    def add_recorded_api(self, folder: Path, *, ignore_params: Iterable[str] = ("offset", "limit")) -> None:
        """All cassettes in ``folder`` plus its saved JSON answers at the paths the real API serves them.

        ``offset`` / ``limit`` are ignored by default: the recording client sent them to bulk search,
        which pages with ``token`` only.
        """
        folder = Path(folder)
        for cassette in sorted(folder.glob("*.yaml")):
            self.add_cassette(cassette, ignore_params=ignore_params)
        paper = json.loads((folder / "Paper.json").read_text())
        self.add(f"/graph/v1/paper/{paper['paperId']}", body=(folder / "Paper.json").read_bytes())
        self.add(f"/graph/v1/paper/CorpusId:{paper['corpusId']}", body=(folder / "Paper.json").read_bytes())
        release = json.loads((folder / "Release.json").read_text())
        self.add(f"/datasets/v1/release/{release['release_id']}", body=(folder / "Release.json").read_bytes())
        dataset = json.loads((folder / "Dataset.json").read_text())
        self.add(f"/datasets/v1/release/{release['release_id']}/dataset/{dataset['name']}",
                 body=(folder / "Dataset.json").read_bytes())
        diff = json.loads((folder / "DatasetDiff.json").read_text())
        self.add(f"/datasets/v1/diffs/{diff['start_release']}/to/{diff['end_release']}/{diff['dataset']}",
                 body=(folder / "DatasetDiff.json").read_bytes())

    def route_for(self, path: str, method: str = "GET") -> Route:
        """The most recently added route for ``method path`` (to program failures on a recorded answer)."""
        return self._routes[(method.upper(), path)][0][2]

    def hits(self, path: str) -> int:
        """Requests received for ``path`` (any method, any query)."""
        return sum(1 for r in self.requests if r.path == path)

    def _match(self, method: str, path: str, query: str) -> Route | None:
        candidates = self._routes.get((method, path), [])
        for key, ignored, route in candidates:
            if key is not None and key == _query_key(query, ignored):
                return route
        for key, _ignored, route in candidates:
            if key is None:
                return route
        return None


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: ThreadingHTTPServer

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - quiet test output
        pass

    def do_GET(self) -> None:
        self._answer("GET")

    def do_POST(self) -> None:
        self._answer("POST")

    def do_HEAD(self) -> None:
        self._answer("HEAD")

    def _send(self, status: int, body: bytes, content_type: str, extra: dict[str, str] | None = None,
              head: bool = False) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (extra or {}).items():
            self.send_header(name, value)
        self.end_headers()
        if not head:
            self.wfile.write(body)

    def _answer(self, method: str) -> None:
        loopback: LoopbackServer = self.server.loopback  # type: ignore[attr-defined]
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        split = urlsplit(self.path)
        match_method = "GET" if method == "HEAD" else method
        with loopback._lock:
            loopback.requests.append(RecordedRequest(method, split.path, dict(parse_qsl(split.query)),
                                                     {k.lower(): v for k, v in self.headers.items()}))
            route = loopback._match(match_method, split.path, split.query)
            if route is not None:
                route.hits += 1
                failing = route.hits <= route.fail_first
                drop = route.drop_once_after is not None and not route._dropped and not failing
                if drop:
                    route._dropped = True
        head = method == "HEAD"
        if route is None:
            message = json.dumps({"error": f"no recorded interaction for {method} {self.path}"}).encode()
            self._send(404, message, "application/json", head=head)
            return
        if failing:
            self._send(route.fail_status, b'{"message": "Internal Server Error"}', "application/json",
                       {"Retry-After": "0"} if route.fail_status == 429 else None, head=head)
            return
        body, status, extra = route.body, route.status, dict(route.headers)
        range_header = self.headers.get("Range")
        if route.ranges:
            extra["Accept-Ranges"] = "bytes"
            match = re.fullmatch(r"bytes=(\d+)-(\d*)", range_header or "")
            if match:
                start = int(match.group(1))
                end = int(match.group(2)) if match.group(2) else len(body) - 1
                if start >= len(body):
                    self._send(416, b"", route.content_type, {"Content-Range": f"bytes */{len(body)}"}, head=head)
                    return
                end = min(end, len(body) - 1)
                extra["Content-Range"] = f"bytes {start}-{end}/{len(body)}"
                body, status = body[start : end + 1], 206
        if drop and not head:
            # Promise the whole body, send part of it, then drop the connection.
            self.send_response(status)
            self.send_header("Content-Type", route.content_type)
            self.send_header("Content-Length", str(len(body)))
            for name, value in extra.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(body[: route.drop_once_after])
            self.wfile.flush()
            self.close_connection = True
            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            return
        self._send(status, body, route.content_type, extra, head=head)
