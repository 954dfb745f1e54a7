"""Turn command-line inputs (paths, globs, folders, https URLs) into ordered, serialisable ingest specs."""

from __future__ import annotations

import glob
from pathlib import Path

from pydantic import BaseModel

from kpe.ingest import InputUnit

MEDLINE_PATTERNS = ("*.xml.gz", "*.xml")


class InputSpec(BaseModel):
    """A unit to ingest, as plain data (it travels through Prefect task parameters)."""

    source: str  # pubmed | s2
    name: str
    uri: str
    paths: list[str]
    kind: str = "medline"  # reader: medline, or an S2 kind from kpe.sources.semantic_scholar


def _is_url(spec: str) -> bool:
    return spec.startswith(("https://", "http://"))


def expand_local(specs: list[str], patterns: tuple[str, ...]) -> list[Path]:
    """Files named by paths, globs and folders (searched recursively for ``patterns``); missing -> error."""
    found: list[Path] = []
    for spec in specs:
        path = Path(spec).expanduser()
        if any(ch in spec for ch in "*?["):
            matches = sorted(Path(p) for p in glob.glob(str(path), recursive=True))
            if not matches:
                raise FileNotFoundError(f"no file matches {spec!r}")
            found.extend(m for m in matches if m.is_file())
        elif path.is_dir():
            matches = sorted({m for pattern in patterns for m in path.rglob(pattern)})
            if not matches:
                raise FileNotFoundError(f"no {' or '.join(patterns)} file under {path}")
            found.extend(matches)
        elif path.is_file():
            found.append(path)
        else:
            raise FileNotFoundError(f"input not found: {spec}")
    return found


def pubmed_specs(specs: list[str], download_dir: Path, **http: object) -> list[InputSpec]:
    """MEDLINE inputs in ingest order: by file name, so baseline files come before later update files."""
    from kpe.sources.http import resolve_input

    paths: list[tuple[str, Path]] = []
    for spec in specs:
        if _is_url(spec):
            paths.append((spec, resolve_input(spec, download_dir, **http)))
        else:
            paths.extend((str(p.resolve()), p) for p in expand_local([spec], MEDLINE_PATTERNS))
    unique = {p.resolve(): uri for uri, p in paths}
    ordered = sorted(unique.items(), key=lambda item: (item[0].name, str(item[0])))
    return [InputSpec(source="pubmed", name=path.name, uri=uri, paths=[str(path)]) for path, uri in ordered]


def unit_from_spec(spec: InputSpec) -> InputUnit:
    """The readable unit behind a spec."""
    paths = [Path(p) for p in spec.paths]
    if spec.source == "pubmed":
        from kpe.sources.pubmed import iter_medline

        return InputUnit(spec.source, spec.name, spec.uri, paths, lambda: iter_medline(paths[0]))
    from kpe.sources.semantic_scholar import read_s2_unit

    return InputUnit(spec.source, spec.name, spec.uri, paths, lambda: read_s2_unit(spec.kind, paths))


def s2_specs(specs: list[str], download_dir: Path, **http: object) -> list[InputSpec]:
    """Semantic Scholar inputs (files, folders, globs, URLs) as ingest specs, in a stable order."""
    from kpe.sources.http import resolve_input
    from kpe.sources.semantic_scholar import expand_s2_inputs

    local: list[str] = []
    urls: dict[str, str] = {}
    for spec in specs:
        if _is_url(spec):
            path = str(resolve_input(spec, download_dir, **http))
            urls[path] = spec
            local.append(path)
        else:
            local.append(spec)
    return [
        InputSpec(source="s2", name=unit.name, uri=urls.get(str(unit.paths[0]), unit.uri) if len(unit.paths) == 1
                  else unit.uri, paths=[str(p) for p in unit.paths], kind=unit.kind)
        for unit in expand_s2_inputs(local)
    ]
