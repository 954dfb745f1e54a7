"""What a GPU call carries (``benchmarks/gpu_carry.py``) comes back usable: the encoder staged in fp16 is fp32 again
with the same vectors, and the staged abstracts are the texts the extraction benchmark reads from the XML."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from safetensors.torch import load_file
from sentence_transformers import SentenceTransformer

from benchmarks.extract import medline_abstracts
from benchmarks.gpu_carry import stage_abstracts, stage_encoder, unpack
from kpe.encoders import packaged_encoder_path

SAMPLE = "pubmed/medline_samples/updatefiles/pubmed22n1115.xml.gz"


def test_staged_encoder_and_abstracts_come_back_the_same(tmp_path: Path, shared_data: Path) -> None:
    packaged = Path(packaged_encoder_path())
    carry, out = tmp_path / "carry", tmp_path / "out"
    fp32_mib = (packaged / "model.safetensors").stat().st_size / 2**20
    assert stage_encoder(packaged, carry / "encoder")["mib"] < 0.55 * fp32_mib  # fp16: about half
    staged = stage_abstracts(shared_data / SAMPLE, carry / "data" / "sample_abstracts.jsonl.xz")
    unpack(carry, out)

    weights = load_file(out / "encoder" / "model.safetensors")
    assert {str(w.dtype) for w in weights.values() if w.is_floating_point()} == {"torch.float32"}
    from_xml = medline_abstracts(shared_data / SAMPLE, None)
    from_jsonl = medline_abstracts(out / "data" / "sample_abstracts.jsonl", None)
    assert staged == len(from_xml) > 10 and from_jsonl == from_xml
    original = SentenceTransformer(str(packaged), device="cpu").encode(from_xml[:16], normalize_embeddings=True)
    carried = SentenceTransformer(str(out / "encoder"), device="cpu").encode(from_xml[:16], normalize_embeddings=True)
    cosines = (original * carried).sum(axis=1)
    assert cosines.min() > 0.9998 and not np.array_equal(original, carried)  # fp16-rounded weights, same vectors
