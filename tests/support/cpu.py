"""Markers for tests that depend on the kind of CPU the suite runs on."""

from __future__ import annotations

import pytest

from kpe.extract.encoder import cpu_has_native_bf16

needs_native_bf16 = pytest.mark.skipif(
    not cpu_has_native_bf16(), reason="this CPU has no native bf16 (AVX512-BF16/AMX; or KPE_NATIVE_BF16=no): "
    "precision auto is fp32 here, and emulated bf16 is too slow to test")
