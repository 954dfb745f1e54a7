"""Fine-tuning with Accelerate: keyphrase tagger, JointKPE-style span ranker, domain-adaptive masked LM
(the model kinds of ``kpe.train.kinds``, one module each).

Public API (heavy imports happen on first use)::

    from kpe.train import TrainConfig, TrainResult, train
    result = train(TrainConfig(kind="tagger", train_data=["inspec"], output_dir=Path("runs/tagger")))

Command line: ``python -m kpe.train --kind tagger --train-data inspec --output-dir runs/tagger``
(or ``accelerate launch -m kpe.train ...``). Extraction with the trained models: the methods each kind offers
(``tagger``, ``hybrid``, ``joint``, ``keybert-ft``), which ``kpe.extract.methods`` reads from ``kpe.train.kinds``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from kpe.train.config import TrainConfig, TrainResult

if TYPE_CHECKING:
    from kpe.train.loop import train

__all__ = ["TrainConfig", "TrainResult", "train"]


def __getattr__(name: str) -> Any:
    if name == "train":
        from kpe.train.loop import train

        return train
    raise AttributeError(f"module 'kpe.train' has no attribute {name!r}")
