"""Classical reference: TF-IDF over word 1-2 grams + logistic regression (scikit-learn).

It uses the student's tokenizer, so it sees exactly the words the BiLSTM sees.
The regularisation strength C is chosen on the validation split from a small
grid; the test split is scored once, with the chosen C.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import joblib
import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline

from kdutils.data.text import TOKENIZER_VERSION, tokenize
from kdutils.study.files import atomic_dir
from kdutils.study.model_files import PIPELINE_FILE, write_meta

DEFAULT_C_GRID = (1.0, 4.0, 16.0, 64.0)


@dataclass
class TfidfResult:
    pipeline: Pipeline
    C: float
    val_accuracy: float
    grid: list[dict[str, float]] = field(default_factory=list)
    train_seconds: float = 0.0

    @property
    def params(self) -> int:
        """Number of learnt weights (coefficients and intercepts)."""
        clf = self.pipeline.named_steps["logreg"]
        return int(clf.coef_.size + clf.intercept_.size)

    def logits(self, texts: Sequence[str]) -> np.ndarray:
        """Per-class scores ``[N, C]``: the log-probabilities, usable wherever logits are expected."""
        return self.pipeline.predict_log_proba(list(texts))


def make_pipeline(C: float, seed: int = 0) -> Pipeline:
    """An unfitted TF-IDF (word 1-2 grams of the student's tokens, sublinear term frequency) +
    logistic regression pipeline with inverse regularisation strength ``C`` (> 0), seeded by ``seed``."""
    return Pipeline([
        # The student's tokenizer: same lowercasing and punctuation rules for both models.
        ("tfidf", TfidfVectorizer(tokenizer=tokenize, token_pattern=None, lowercase=False,
                                  ngram_range=(1, 2), min_df=1, sublinear_tf=True)),
        ("logreg", LogisticRegression(C=C, max_iter=2000, random_state=seed)),
    ])


def train_tfidf_logreg(train_texts: Sequence[str], train_labels: Sequence[int], val_texts: Sequence[str],
                       val_labels: Sequence[int], C_grid: Sequence[float] = DEFAULT_C_GRID,
                       seed: int = 0) -> TfidfResult:
    """Fit one pipeline per C on train, keep the best on validation accuracy (ties: smaller C)."""
    if not C_grid or any(c <= 0 for c in C_grid):
        raise ValueError(f"C_grid must hold positive values, got {list(C_grid)}")
    if len(set(train_labels)) < 2:
        raise ValueError("the training split needs at least two classes")
    start = time.perf_counter()
    grid, best = [], None
    val_y = np.asarray(val_labels)
    for C in sorted(C_grid):
        pipe = make_pipeline(C, seed).fit(list(train_texts), np.asarray(train_labels))
        acc = float((pipe.predict(list(val_texts)) == val_y).mean())
        grid.append({"C": float(C), "val_accuracy": acc})
        if best is None or acc > best[1]:
            best = (pipe, acc, float(C))
    assert best is not None
    return TfidfResult(best[0], best[2], best[1], grid, time.perf_counter() - start)


def save_tfidf(directory: str | Path, result: TfidfResult, meta: dict[str, Any]) -> Path:
    """Pipeline (joblib; a reference model, never served) plus ``kdmodel.json`` with kind ``reference``."""
    directory = Path(directory)
    with atomic_dir(directory) as tmp:
        joblib.dump(result.pipeline, tmp / PIPELINE_FILE)
        size_mb = (tmp / PIPELINE_FILE).stat().st_size / 2**20
        info = {"kind": "reference", **meta, "params": result.params, "size_mb": round(size_mb, 4),
                "C": result.C, "val_accuracy": result.val_accuracy, "grid": result.grid,
                "tokenizer": TOKENIZER_VERSION, "format": "joblib"}
        write_meta(tmp, info)
    return directory


