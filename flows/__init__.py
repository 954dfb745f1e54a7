"""Prefect flows and the ``kpe`` command line."""

from flows.environment import apply_defaults

apply_defaults()
