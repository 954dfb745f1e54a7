"""`kpe evaluate` with a fine-tuned method and no `--model`: the configured warehouse's production model."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import torch
from typer.testing import CliRunner

from flows.cli import app
from kpe.encoders import resolve_encoder
from kpe.registry import model_dir, new_version
from warehouse.db import connect
from warehouse.models import promote, register_candidate

runner = CliRunner()
ARGS = ["evaluate", "--data", "inspec_dev", "--limit", "2", "--no-store", "--json"]


def _tagger_dir(path: Path) -> None:
    """A tagger model dir as training saves it (a 1-layer, 32-wide BERT with the MiniLM vocabulary)."""
    from transformers import AutoTokenizer, BertConfig, BertForTokenClassification

    from kpe.train.tagger import save_tagger

    tokenizer = AutoTokenizer.from_pretrained(resolve_encoder(None))
    torch.manual_seed(0)
    config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=64, num_labels=3)
    save_tagger(BertForTokenClassification(config), tokenizer, path, {"kpe_kind": "tagger"})


def test_fine_tuned_method_without_model_uses_production(kpe_env: Path) -> None:
    result = runner.invoke(app, [*ARGS, "--method", "tagger"])
    assert result.exit_code == 1 and "no warehouse" in result.output and "--model" in result.output

    connect(kpe_env / "warehouse.duckdb").close()  # an empty warehouse
    result = runner.invoke(app, [*ARGS, "--method", "hybrid"])
    assert result.exit_code == 1 and "no production model" in result.output

    con = connect(kpe_env / "warehouse.duckdb")
    version = new_version("tagger", now=dt.datetime(2026, 11, 29, 23, 0, tzinfo=dt.UTC))
    path = model_dir(version) / "model"  # where the train flow saves it: the version is the run folder's name
    _tagger_dir(path)
    register_candidate(con, version=version, path=str(path), base_model="tiny", kind="tagger", method="tagger")
    promote(con, version)
    con.close()

    result = runner.invoke(app, [*ARGS, "--method", "tagger"])
    assert result.exit_code == 0, result.output
    assert f"production model {version}" in result.output
    line = json.loads(result.output[result.output.index('{"method"'):].splitlines()[0])  # after progress bars
    assert (line["method"], line["model_version"], line["n_docs"]) == ("tagger", version, 2)

    result = runner.invoke(app, [*ARGS, "--method", "joint"])  # a tagger offers no joint method
    assert result.exit_code == 1 and "cannot use the production model" in result.output
