"""ONNX export, int8 dynamic quantization, and the agreement check against eager PyTorch.

Every model of a run is exported once into ``models/onnx/<name>/``:
``model.onnx`` (fp32) and ``model.int8.onnx`` (weights quantized to int8 by
``onnxruntime.quantization.quantize_dynamic``; activations quantized on the fly),
plus ``export.json`` naming the source directory and the sha256 of its weights,
so a retrained model is never served with a stale export.

Students export their mask-based forward pass ``(input_ids, mask) -> logits``;
teachers export ``(input_ids, attention_mask) -> logits``. Batch and sequence
axes are dynamic. The exporter is ``torch.onnx.export(dynamo=True)`` (the
torch.export-based exporter; the older TorchScript tracer baked the traced
padding pattern of a BERT graph into the graph in a trial here).
"""

from __future__ import annotations

import contextlib
import logging
import time
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from kdutils.inference.predictors import (
    ModelEntry,
    Predictor,
    discover,
    make_encoder,
    make_predictor,
    models_dir_of,
    onnx_dir,
    source_key,
    weights_digest,
)
from kdutils.machine import quiet_transformers
from kdutils.student.models import load_student
from kdutils.study.files import atomic_dir, write_json
from kdutils.study.model_files import EXPORT_META, ONNX_FILES, read_meta, weights_path

# torch, transformers, onnx and onnxruntime's quantizer are imported where used: each takes
# seconds, and the served-model records of this module need none of them.

log = logging.getLogger(__name__)

OPSET = 18
# Real sentences of different lengths for the export trace (batch 2, padding present).
_TRACE_TEXTS = ("a gripping , beautifully acted film that never lets up .", "dull .")


def _torch_module(source_dir: Path, kind: str) -> Any:
    """The eager model wrapped so that its forward takes the exported inputs and returns logits."""
    import torch

    if kind == "student":
        model, _, _ = load_student(source_dir)
        return model

    from transformers import AutoModelForSequenceClassification

    quiet_transformers()
    hf = AutoModelForSequenceClassification.from_pretrained(
        str(source_dir), use_safetensors=True, local_files_only=True).eval()

    class LogitsOnly(torch.nn.Module):
        def __init__(self, inner: torch.nn.Module) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
            return self.inner(input_ids=input_ids, attention_mask=attention_mask).logits

    return LogitsOnly(hf).eval()


def export_onnx(source_dir: str | Path, out_path: str | Path, opset: int = OPSET) -> Path:
    """Export the model saved in ``source_dir`` (a directory with kdmodel.json) to one ONNX file."""
    import torch

    source_dir, out_path = Path(source_dir), Path(out_path)
    meta = read_meta(source_dir)
    entry = ModelEntry(meta.get("name", source_dir.name), source_dir.name, "torch", meta["kind"], source_dir,
                       weights_path(source_dir), meta)
    batch = make_encoder(entry)(list(_TRACE_TEXTS))
    names = list(batch)
    args = tuple(torch.from_numpy(batch[n]) for n in names)
    module = _torch_module(source_dir, meta["kind"])
    dims = {0: torch.export.Dim("batch"), 1: torch.export.Dim("sequence")}
    out_path.parent.mkdir(parents=True, exist_ok=True)
    _clear_rnn_dispatch_cache()
    with torch.inference_mode(False), torch.no_grad(), _quiet():
        program = torch.onnx.export(module, args, input_names=names, output_names=["logits"],
                                    dynamic_shapes=tuple(dims for _ in names), opset_version=opset,
                                    dynamo=True, external_data=False, verbose=False)
    program.save(str(out_path), external_data=False)
    check_dynamic_axes(out_path)
    return out_path


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Silence the exporter's and quantizer's advisory output (deprecations, optional torchvision ops,
    ORT's "consider pre-processing": its symbolic shape inference fails on these dynamo graphs).
    Errors still raise."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        warnings.simplefilter("ignore", UserWarning)
        previous = logging.root.manager.disable
        logging.disable(logging.WARNING)
        try:
            yield
        finally:
            logging.disable(previous)


def _clear_rnn_dispatch_cache() -> None:
    """Forget cached LSTM/GRU kernels before an export.

    For dynamic sequence lengths the exporter swaps in a while-loop LSTM kernel for
    the duration of the export, by editing the op's kernel table; the op's dispatch
    cache is not told. Seen with torch 2.13: the second student exported in one
    process got the cached kernel, and its sequence axis silently became the trace's
    length (11). Clearing the cache makes every export see the swapped kernel.
    """
    import torch

    for op in (torch.ops.aten.lstm.input, torch.ops.aten.gru.input):
        cache = getattr(op, "_dispatch_cache", None)
        if cache is not None:
            cache.clear()


def check_dynamic_axes(path: str | Path) -> None:
    """Raise unless every input of the ONNX graph has symbolic batch and sequence axes."""
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph
    fixed = {i.name: [d.dim_value for d in i.type.tensor_type.shape.dim if not d.dim_param]
             for i in graph.input}
    fixed = {k: v for k, v in fixed.items() if v}
    if fixed:
        raise RuntimeError(f"{path}: inputs with fixed axes {fixed}; the export specialised to the trace's shape")


def quantize_int8(fp32_path: str | Path, int8_path: str | Path) -> Path:
    """Dynamic int8 quantization of every MatMul/Gemm/LSTM/Gather weight (onnxruntime)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with _quiet():
        quantize_dynamic(str(fp32_path), str(int8_path), weight_type=QuantType.QInt8)
    return Path(int8_path)


def agreement(reference: Predictor, candidate: Predictor, texts: Sequence[str],
              labels: Sequence[int] | None = None, batch_size: int = 64) -> dict[str, Any]:
    """How far ``candidate`` (e.g. ONNX int8) departs from ``reference`` (eager PyTorch).

    ``agreement``: fraction of texts with the same predicted label; accuracies and
    their change in percentage points when ``labels`` are given; the largest
    absolute logit difference.
    """
    ref = reference.predict_logits(texts, batch_size=batch_size)
    cand = candidate.predict_logits(texts, batch_size=batch_size)
    out: dict[str, Any] = {
        "n": len(texts),
        "agreement": float((ref.argmax(1) == cand.argmax(1)).mean()),
        "max_abs_logit_diff": float(np.abs(ref - cand).max()),
    }
    if labels is not None:
        y = np.asarray(labels)
        out["accuracy_reference"] = float((ref.argmax(1) == y).mean())
        out["accuracy"] = float((cand.argmax(1) == y).mean())
        out["accuracy_change_points"] = 100.0 * (out["accuracy"] - out["accuracy_reference"])
    return out


def export_model(entry: ModelEntry, models_dir: str | Path, texts: Sequence[str] | None = None,
                 labels: Sequence[int] | None = None, threads: int | None = None,
                 opset: int = OPSET) -> dict[str, Any]:
    """Export one eager model (fp32 and int8) and check both against it on ``texts``.

    Returns (and writes into ``export.json``) the timings, file sizes and, when
    texts are given, the agreement of each ONNX variant with eager PyTorch.
    """
    if entry.runtime != "torch":
        raise ValueError(f"export takes the eager model, got {entry.name}")
    target = onnx_dir(models_dir, entry.base)
    info: dict[str, Any] = {"model": entry.base, "source": source_key(entry.source_dir),
                            "source_sha256": weights_digest(entry.weights), "kind": entry.kind,
                            "opset": opset, "exporter": "torch.onnx.export(dynamo=True)"}
    with atomic_dir(target) as tmp:
        t0 = time.perf_counter()
        export_onnx(entry.source_dir, tmp / ONNX_FILES["onnx"], opset)
        info["export_seconds"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        quantize_int8(tmp / ONNX_FILES["onnx"], tmp / ONNX_FILES["onnx-int8"])
        info["quantize_seconds"] = time.perf_counter() - t0
        info["size_mb"] = {rt: (tmp / f).stat().st_size / 2**20 for rt, f in ONNX_FILES.items()}
        info["size_mb"]["torch"] = entry.size_mb
        if texts is not None:
            eager = make_predictor(entry, threads)
            info["checks"] = {}
            for runtime, fname in ONNX_FILES.items():
                variant = ModelEntry(f"{entry.base}@{runtime}", entry.base, runtime, entry.kind,
                                     entry.source_dir, tmp / fname, entry.meta)
                info["checks"][runtime] = agreement(eager, make_predictor(variant, threads), texts, labels)
        write_json(tmp / EXPORT_META, info)
    log.info("exported %s -> %s (%.1fs)", entry.base, target, info["export_seconds"])
    return info


def export_run(run_or_models: str | Path | Any, names: Sequence[str] | None = None,
               texts: Sequence[str] | None = None, labels: Sequence[int] | None = None,
               threads: int | None = None) -> dict[str, dict[str, Any]]:
    """Export every eager model of a run (or the ``names`` given); returns ``{name: export info}``."""
    models_dir = models_dir_of(run_or_models)
    entries = {n: e for n, e in discover(models_dir).items() if e.runtime == "torch"}
    if names is not None:
        missing = [n for n in names if n not in entries]
        if missing:
            raise KeyError(f"cannot export {missing}: not found in {models_dir} (have {sorted(entries)})")
        entries = {n: entries[n] for n in names}
    return {name: export_model(entry, models_dir, texts, labels, threads) for name, entry in entries.items()}


def checks_frame(info: dict[str, dict[str, Any]]) -> Any:
    """The agreement checks of :func:`export_run` as a table: one row per model and ONNX variant."""
    rows = []
    for model, meta in info.items():
        for runtime, check in meta.get("checks", {}).items():
            rows.append({"model": model, "runtime": runtime, "agreement": check["agreement"],
                         "accuracy_eager": check.get("accuracy_reference"), "accuracy": check.get("accuracy"),
                         "accuracy_change_points": check.get("accuracy_change_points"),
                         "max_abs_logit_diff": check["max_abs_logit_diff"],
                         "size_mb_eager": meta["size_mb"]["torch"], "size_mb": meta["size_mb"][runtime],
                         "export_seconds": meta["export_seconds"], "n": check["n"]})
    return pd.DataFrame(rows)
