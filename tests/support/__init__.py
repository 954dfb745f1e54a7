"""Helpers the tests share: ingest through the library, a loopback HTTP server, a Prefect server, broken MEDLINE."""

from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]
