"""The sources: one module per source format family, registered in ``SOURCES`` below.

A source (:class:`kpe.sources.base.Source`) turns command-line inputs (paths, folders, globs, https URLs) into
ordered ingest specs (``expand``) and reads one spec's records (``read``); ``kpe.inputs`` plans and reads every
input through this table, in its order (which is also the order in which a file name given on the command line
without an option is matched against each source's ``file_patterns``).

A new source is one module (``kpe/sources/<name>.py``, with an object that has ``name``, ``file_patterns``,
``expand`` and ``read``) and one line here. Its inputs then reach it through ``kpe.inputs.plan_specs``; to take
them from the command line and the flows it also needs a ``--<name>`` option and a flow parameter (``--pubmed`` /
``--s2`` and ``pubmed`` / ``s2`` today).
"""

from __future__ import annotations

from kpe.sources.base import InputSpec, Source
from kpe.sources.pubmed import PUBMED
from kpe.sources.semantic_scholar import SEMANTIC_SCHOLAR

SOURCES: dict[str, Source] = {source.name: source for source in (PUBMED, SEMANTIC_SCHOLAR)}
"""Every source by name, in planning order (MEDLINE first, so its ``*.xml.gz`` wins over S2's ``*.gz``)."""

__all__ = ["SOURCES", "InputSpec", "Source"]
