"""The BiLSTM student: a mask-based bidirectional LSTM classifier, and its safe save/load.

Padding must never change a prediction, and the model must export to ONNX, so
``pack_padded_sequence`` is out. Each layer instead runs two unidirectional
LSTMs: the forward one over the right-padded batch (a valid position only sees
earlier, valid tokens), the backward one over a copy in which every sequence is
reversed within its own length (gathered with indices built from the mask), so
it too reads real tokens first and the padding only after them. Outputs at the
padded positions are garbage and are excluded by masked pooling. Gather, LSTM
and masked reductions are all plain ONNX operators.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import nn

from kdutils.data.text import TOKENIZER_VERSION, Vocab, VocabError
from kdutils.study.files import atomic_dir, sha256_file
from kdutils.study.model_files import (
    CONFIG_FILE,
    META_FILE,
    VOCAB_FILE,
    WEIGHTS_FILE,
    read_meta,
    write_meta,
)

POOLINGS = ("max", "mean", "both")
ARCHITECTURE = "BiLSTMClassifier"


class StudentLoadError(RuntimeError):
    """A saved student directory is incomplete or its parts do not belong together."""


def reverse_within_length(mask: torch.Tensor) -> torch.Tensor:
    """Index ``[B, T]`` that reverses each row's first ``length`` positions and keeps the rest.

    The map is its own inverse, so the same index also puts outputs back in order.
    """
    lengths = mask.long().sum(dim=1, keepdim=True)  # [B, 1]
    positions = torch.arange(mask.shape[1], device=mask.device).unsqueeze(0)  # [1, T]
    reversed_pos = lengths - 1 - positions
    return torch.where(positions < lengths, reversed_pos, positions.expand_as(reversed_pos))


def _gather_time(x: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    return torch.gather(x, 1, index.unsqueeze(-1).expand(-1, -1, x.shape[-1]))


class BiLSTMClassifier(nn.Module):
    """Embeddings -> ``num_layers`` bidirectional LSTM layers -> masked pooling -> dropout -> linear."""

    def __init__(self, vocab_size: int, num_labels: int, embedding_dim: int = 50, hidden_size: int = 150,
                 num_layers: int = 1, pooling: str = "max", dropout: float = 0.3,
                 pretrained_embeddings: np.ndarray | torch.Tensor | None = None) -> None:
        super().__init__()
        if pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {POOLINGS}, got {pooling!r}")
        if vocab_size < 3 or num_labels < 2 or embedding_dim < 1 or hidden_size < 1 or num_layers < 1:
            raise ValueError(f"invalid sizes: vocab_size={vocab_size} (>=3), num_labels={num_labels} (>=2), "
                             f"embedding_dim={embedding_dim}, hidden_size={hidden_size}, num_layers={num_layers} (>=1)")
        if not 0 <= dropout < 1:
            raise ValueError(f"dropout must lie in [0, 1), got {dropout}")
        self.vocab_size = vocab_size
        self.num_labels = num_labels
        self.embedding_dim = embedding_dim
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.pooling = pooling
        self.dropout_p = dropout

        self.embedding = nn.Embedding(vocab_size, embedding_dim, padding_idx=Vocab.PAD_ID)
        self.forward_lstms = nn.ModuleList()
        self.backward_lstms = nn.ModuleList()
        for layer in range(num_layers):
            in_size = embedding_dim if layer == 0 else 2 * hidden_size
            self.forward_lstms.append(nn.LSTM(in_size, hidden_size, batch_first=True))
            self.backward_lstms.append(nn.LSTM(in_size, hidden_size, batch_first=True))
        self.dropout = nn.Dropout(dropout)
        pooled = 2 * hidden_size * (2 if pooling == "both" else 1)
        self.head = nn.Linear(pooled, num_labels)
        if pretrained_embeddings is not None:
            self.set_embeddings(pretrained_embeddings)

    def set_embeddings(self, matrix: np.ndarray | torch.Tensor) -> None:
        """Copy a ``[vocab_size, embedding_dim]`` matrix into the embedding table (PAD row kept zero)."""
        matrix = torch.as_tensor(np.asarray(matrix), dtype=torch.float32)
        if tuple(matrix.shape) != (self.vocab_size, self.embedding_dim):
            raise ValueError(f"embedding matrix has shape {tuple(matrix.shape)}, "
                             f"model needs ({self.vocab_size}, {self.embedding_dim})")
        with torch.no_grad():
            self.embedding.weight.copy_(matrix)
            self.embedding.weight[Vocab.PAD_ID].zero_()

    def config(self) -> dict[str, Any]:
        """Constructor arguments: enough to rebuild the architecture."""
        return {"architecture": ARCHITECTURE, "vocab_size": self.vocab_size, "num_labels": self.num_labels,
                "embedding_dim": self.embedding_dim, "hidden_size": self.hidden_size,
                "num_layers": self.num_layers, "pooling": self.pooling, "dropout": self.dropout_p}

    def num_parameters(self, trainable_only: bool = False) -> int:
        return sum(p.numel() for p in self.parameters() if p.requires_grad or not trainable_only)

    def forward(self, input_ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Logits ``[B, C]`` for right-padded ``input_ids [B, T]`` with ``mask [B, T]`` (True = token).

        Every row should have at least one True position (``Vocab.encode_batch`` guarantees it);
        a row without one reads its first position, so its logits stay finite.
        """
        first = torch.arange(mask.shape[1], device=mask.device).unsqueeze(0) == 0
        mask = mask.to(torch.bool) | first
        keep = mask.unsqueeze(-1)
        # Zeroed padding inputs are not needed for correctness but keep garbage small.
        x = self.dropout(self.embedding(input_ids)) * keep.to(torch.float32)
        rev = reverse_within_length(mask)
        for fwd, bwd in zip(self.forward_lstms, self.backward_lstms, strict=True):
            out_f, _ = fwd(x)
            out_b, _ = bwd(_gather_time(x, rev))
            x = torch.cat([out_f, _gather_time(out_b, rev)], dim=-1)
            x = self.dropout(x)
        pooled = []
        if self.pooling in ("max", "both"):
            neg = torch.finfo(x.dtype).min
            pooled.append(x.masked_fill(~keep, neg).max(dim=1).values)
        if self.pooling in ("mean", "both"):
            maskf = keep.to(x.dtype)
            pooled.append((x * maskf).sum(dim=1) / maskf.sum(dim=1).clamp(min=1.0))
        h = pooled[0] if len(pooled) == 1 else torch.cat(pooled, dim=-1)
        return self.head(h)


def build_student(vocab_size: int, num_labels: int, arch: Any,
                  pretrained_embeddings: np.ndarray | None = None) -> BiLSTMClassifier:
    """A student from a ``StudentArch`` (or any object/dict with its fields)."""
    get = arch.get if isinstance(arch, dict) else lambda k: getattr(arch, k)
    return BiLSTMClassifier(vocab_size, num_labels, embedding_dim=get("embedding_dim"),
                            hidden_size=get("hidden_size"), num_layers=get("num_layers"),
                            pooling=get("pooling"), dropout=get("dropout"),
                            pretrained_embeddings=pretrained_embeddings)


def save_student(directory: str | Path, model: BiLSTMClassifier, vocab: Vocab, meta: dict[str, Any]) -> Path:
    """Write a self-contained student directory atomically.

    Files: ``model.safetensors`` (weights), ``config.json`` (architecture),
    ``vocab.json`` and ``kdmodel.json`` (``kind``, ``name``, ``label_names``,
    ``params``, ``size_mb``, ``max_length``, plus ``meta``; sha256 of weights and
    vocab so a swapped file is caught on load). ``meta`` must give ``name``,
    ``label_names`` and ``max_length``.
    """
    missing = [k for k in ("name", "label_names", "max_length") if k not in meta]
    if missing:
        raise ValueError(f"save_student meta lacks {missing}")
    if len(vocab) != model.vocab_size:
        raise ValueError(f"vocab has {len(vocab)} tokens but the model embeds {model.vocab_size}")
    if len(meta["label_names"]) != model.num_labels:
        raise ValueError(f"{len(meta['label_names'])} label names for a model with {model.num_labels} outputs")
    directory = Path(directory)
    with atomic_dir(directory) as tmp:
        state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
        save_file(state, str(tmp / WEIGHTS_FILE), metadata={"architecture": ARCHITECTURE})
        (tmp / CONFIG_FILE).write_text(json.dumps(model.config(), indent=2) + "\n")
        vocab.save(tmp / VOCAB_FILE)
        size_mb = ((tmp / WEIGHTS_FILE).stat().st_size + (tmp / VOCAB_FILE).stat().st_size) / 2**20
        info = {"kind": "student", **meta, "params": model.num_parameters(), "size_mb": round(size_mb, 4),
                "architecture": ARCHITECTURE, "tokenizer": TOKENIZER_VERSION, "format": "safetensors",
                "files": {f: sha256_file(tmp / f) for f in (WEIGHTS_FILE, VOCAB_FILE, CONFIG_FILE)}}
        write_meta(tmp, info)
    return directory


def load_student(directory: str | Path) -> tuple[BiLSTMClassifier, Vocab, dict[str, Any]]:
    """``(model.eval(), vocab, meta)`` from a directory written by :func:`save_student`.

    Weights are read with safetensors (never pickle). Raises
    :class:`StudentLoadError` when a file is missing, a file differs from the
    hash recorded at save time, or vocab, config and weights disagree.
    """
    directory = Path(directory)
    for f in (WEIGHTS_FILE, CONFIG_FILE, VOCAB_FILE, META_FILE):
        if not (directory / f).exists():
            raise StudentLoadError(f"{directory} is not a complete student directory: {f} is missing")
    meta = read_meta(directory)
    config = json.loads((directory / CONFIG_FILE).read_text())
    if meta.get("kind") != "student" or config.get("architecture") != ARCHITECTURE:
        raise StudentLoadError(f"{directory} holds kind={meta.get('kind')!r} architecture="
                               f"{config.get('architecture')!r}, not a {ARCHITECTURE} student")
    try:
        vocab = Vocab.load(directory / VOCAB_FILE)
    except VocabError as err:
        raise StudentLoadError(str(err)) from None
    state = load_file(str(directory / WEIGHTS_FILE))
    emb = state.get("embedding.weight")
    if emb is None:
        raise StudentLoadError(f"{directory / WEIGHTS_FILE} has no embedding.weight tensor")
    if len(vocab) != emb.shape[0] or len(vocab) != config["vocab_size"]:
        raise StudentLoadError(
            f"vocab/weights mismatch in {directory}: vocab.json has {len(vocab)} tokens, the embedding has "
            f"{emb.shape[0]} rows and config.json says vocab_size={config['vocab_size']}; the vocab file does "
            "not belong to these weights"
        )
    for f, digest in meta.get("files", {}).items():
        if (directory / f).exists() and sha256_file(directory / f) != digest:
            raise StudentLoadError(f"{directory / f} differs from the file saved with this model "
                                   "(sha256 mismatch): the directory was modified or mixed with another model")
    kwargs = {k: v for k, v in config.items() if k != "architecture"}
    model = BiLSTMClassifier(**kwargs)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as err:
        raise StudentLoadError(f"weights in {directory} do not fit config.json: {err}") from None
    return model.eval(), vocab, meta
