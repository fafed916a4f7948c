"""Distillation losses: the teacher term (logit MSE or temperature KL) mixed with gold-label CE.

Every loss here is built by :func:`make_loss` into a callable with the training
loop's signature ``loss_fn(student_logits, labels, teacher_logits_or_None)``.

Per row ``i`` of a batch:

* a row with a gold label (``labels[i] >= 0``) costs
  ``alpha * CE_i + (1 - alpha) * teacher_i``;
* a row without one (``labels[i] == -1``: an augmented copy or unlabelled text)
  costs ``teacher_i`` alone, as in Tang et al. (2019), who train augmented
  examples on the distillation term only.

The batch loss is the mean over rows, so a batch's scale does not depend on how
many of its rows happen to carry a label.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

LossFn = Callable[[Tensor, Tensor, Tensor | None], Tensor]
LOSSES = ("ce", "mse", "kl")


def mse_per_row(student_logits: Tensor, teacher_logits: Tensor) -> Tensor:
    """Mean squared error between raw logits, one value per row (Tang et al. 2019)."""
    return ((student_logits - teacher_logits.to(student_logits.dtype)) ** 2).mean(dim=-1)


def kl_per_row(student_logits: Tensor, teacher_logits: Tensor, temperature: float) -> Tensor:
    """``KL(softmax(t/T) || softmax(s/T)) * T**2``, one value per row (Hinton et al. 2015).

    The ``T**2`` factor keeps the gradient's scale roughly independent of ``T``, so
    the mixing weight ``alpha`` means the same thing at every temperature.
    """
    log_q = F.log_softmax(student_logits / temperature, dim=-1)
    log_p = F.log_softmax(teacher_logits.to(student_logits.dtype) / temperature, dim=-1)
    return F.kl_div(log_q, log_p, reduction="none", log_target=True).sum(dim=-1) * temperature**2


def _check(alpha: float, temperature: float) -> None:
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must lie in [0, 1], got {alpha}")
    if not temperature > 0:
        raise ValueError(f"temperature must be positive, got {temperature}")


def make_loss(kind: Literal["ce", "mse", "kl"], alpha: float = 0.0, temperature: float = 1.0) -> LossFn:
    """The training loss for ``kind``: ``"ce"`` (labels only), ``"mse"`` or ``"kl"``.

    ``alpha`` weighs gold-label cross-entropy against the teacher term on labelled
    rows (``alpha = 1`` ignores the teacher); ``temperature`` is used by ``"kl"`` only.
    """
    if kind not in LOSSES:
        raise ValueError(f"unknown loss {kind!r}; allowed: {', '.join(LOSSES)}")
    _check(alpha, temperature)
    if kind == "ce":
        alpha = 1.0

    def loss_fn(student_logits: Tensor, labels: Tensor, teacher_logits: Tensor | None) -> Tensor:
        labels = labels.to(student_logits.device)
        has_label = labels >= 0
        if alpha == 1.0:
            # Labels only: rows without a label carry no signal, and a batch of
            # unlabelled rows contributes no gradient (as kdutils.student.train.cross_entropy_loss).
            if not bool(has_label.any()):
                return student_logits.sum() * 0.0
            return F.cross_entropy(student_logits[has_label], labels[has_label])
        if teacher_logits is None:
            raise ValueError(f"loss {kind!r} with alpha={alpha} needs teacher logits for every row")
        if teacher_logits.shape != student_logits.shape:
            raise ValueError(
                f"teacher logits shape {tuple(teacher_logits.shape)} != student logits shape "
                f"{tuple(student_logits.shape)}"
            )
        teacher_logits = teacher_logits.to(student_logits.device)
        if kind == "mse":
            teacher_term = mse_per_row(student_logits, teacher_logits)
        else:
            teacher_term = kl_per_row(student_logits, teacher_logits, temperature)
        if alpha == 0.0:
            return teacher_term.mean()
        # ignore_index keeps CE finite on unlabelled rows; the weight below then drops them.
        ce = F.cross_entropy(student_logits, labels.masked_fill(~has_label, -100),
                             reduction="none", ignore_index=-100)
        per_row = torch.where(has_label, alpha * ce + (1.0 - alpha) * teacher_term, teacher_term)
        return per_row.mean()

    loss_fn.kind = kind  # type: ignore[attr-defined]
    loss_fn.alpha = alpha  # type: ignore[attr-defined]
    loss_fn.temperature = temperature  # type: ignore[attr-defined]
    return loss_fn
