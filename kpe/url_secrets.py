"""Credentials in input URLs: kept out of flow parameters, artifacts and rows.

A URL may carry a secret (``?api_key=…``, ``user:password@``, a presigned signature). Prefect stores every flow
parameter, so the command line replaces each secret value with a reference, ``${KPE_SECRET_URL_<id>}``, and puts
the value in this process's environment (:func:`hide_url_secrets`); the download expands the reference right
before the request (:func:`expand_url_secrets`). Users write such references themselves in ``prefect.yaml``
parameters or ``KPE_PUBMED_SOURCES``, with the value in the worker's environment::

    https://example.org/pubmed/updatefiles/pubmed26n1400.xml.gz?api_key=${KPE_SECRET_NCBI}

Only variables named ``KPE_SECRET_*`` (and ``NCBI_API_KEY``, ``S2_API_KEY``) can be expanded, so a URL given as a
parameter cannot read any other variable of the worker's environment.
"""

from __future__ import annotations

import hashlib
import os
import re
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

SECRET_PREFIX = "KPE_SECRET_"
ALSO_EXPANDABLE = frozenset({"NCBI_API_KEY", "S2_API_KEY"})
_REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_SENSITIVE_KEY = re.compile(
    r"(signature|credential|security-token|accesskey|access_token|token|api[_-]?key|^key$|^sig$|password|secret)",
    re.I,
)


def _is_url(text: str) -> bool:
    return text.startswith(("https://", "http://"))


def _reference(value: str) -> str:
    """A stable environment name for a secret value (the same value gives the same name on every run)."""
    name = f"{SECRET_PREFIX}URL_{hashlib.sha256(value.encode('utf-8')).hexdigest()[:12].upper()}"
    os.environ[name] = value
    return "${" + name + "}"


def hide_url_secrets(inputs: list[str]) -> list[str]:
    """``inputs`` with every secret in a URL (sensitive query values, a password) replaced by a reference whose
    value is set in this process's environment. Paths and URLs without secrets come back unchanged."""
    return [hide_secrets_in(text) for text in inputs]


def hide_secrets_in(text: str) -> str:
    """One input with its URL secrets replaced by references (see :func:`hide_url_secrets`)."""
    if not _is_url(text):
        return text
    parts = urlsplit(text)
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, host = netloc.rsplit("@", 1)
        user, sep, password = userinfo.partition(":")
        if sep and password and not _REFERENCE.fullmatch(password):
            netloc = f"{user}:{_reference(password)}@{host}"
    query = parts.query
    if query:
        pairs = [(k, v if (not v or _REFERENCE.fullmatch(v) or not _SENSITIVE_KEY.search(k))
                  else _reference(quote(v, safe='')))
                 for k, v in parse_qsl(query, keep_blank_values=True)]
        query = urlencode(pairs, safe="${}*:/", quote_via=quote)
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def expand_url_secrets(text: str) -> str:
    """``text`` with each ``${NAME}`` replaced by that environment variable; a missing or disallowed name is a
    ``ValueError`` that names it (never the value)."""

    def value(match: re.Match[str]) -> str:
        name = match.group(1)
        if not (name.startswith(SECRET_PREFIX) or name in ALSO_EXPANDABLE):
            raise ValueError(f"an input URL refers to ${{{name}}}: only KPE_SECRET_* variables (and "
                             f"{', '.join(sorted(ALSO_EXPANDABLE))}) can be used in URLs")
        if name not in os.environ:
            raise ValueError(f"an input URL refers to ${{{name}}}, which is not set in this process's environment")
        return os.environ[name]

    return _REFERENCE.sub(value, text)
