"""Distillation losses: a teacher term (logit MSE, temperature KL, ...) mixed with gold-label CE.

The losses are registered by name: :data:`kdutils.study.specs.LOSSES` says how the study names each
(its label, whether it takes a temperature, how the paper writes it) and :data:`TEACHER_TERMS` holds
each distillation loss's per-row teacher term under the same name. A new loss is one function here
plus one entry in each of those two registries; the profile's allowed values, the summary's type,
labels, the grid and the paper derive from them.

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

import torch
import torch.nn.functional as F
from torch import Tensor

from kdutils.study.specs import LOSSES

LossFn = Callable[[Tensor, Tensor, Tensor | None], Tensor]
TeacherTerm = Callable[[Tensor, Tensor, float], Tensor]
"""``term(student_logits, teacher_logits, temperature)``: one value per row of the batch."""


def mse_per_row(student_logits: Tensor, teacher_logits: Tensor, temperature: float = 1.0) -> Tensor:
    """Mean squared error between raw logits, one value per row (Tang et al. 2019); ``temperature``
    is not used (MSE takes none)."""
    return ((student_logits - teacher_logits.to(student_logits.dtype)) ** 2).mean(dim=-1)


def kl_per_row(student_logits: Tensor, teacher_logits: Tensor, temperature: float) -> Tensor:
    """``KL(softmax(t/T) || softmax(s/T)) * T**2``, one value per row (Hinton et al. 2015).

    The ``T**2`` factor keeps the gradient's scale roughly independent of ``T``, so
    the mixing weight ``alpha`` means the same thing at every temperature.
    """
    log_q = F.log_softmax(student_logits / temperature, dim=-1)
    log_p = F.log_softmax(teacher_logits.to(student_logits.dtype) / temperature, dim=-1)
    return F.kl_div(log_q, log_p, reduction="none", log_target=True).sum(dim=-1) * temperature**2


TEACHER_TERMS: dict[str, TeacherTerm] = {
    "mse": mse_per_row,
    "kl": kl_per_row,
}
"""The teacher term of each distillation loss of :data:`kdutils.study.specs.LOSSES`, by its name."""


def _check(alpha: float, temperature: float) -> None:
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must lie in [0, 1], got {alpha}")
    if not temperature > 0:
        raise ValueError(f"temperature must be positive, got {temperature}")


def make_loss(kind: str, alpha: float = 0.0, temperature: float = 1.0) -> LossFn:
    """The training loss for ``kind``, a name of :data:`kdutils.study.specs.LOSSES`: ``"ce"`` (labels
    only), ``"mse"``, ``"kl"``, ...

    ``alpha`` weighs gold-label cross-entropy against the teacher term on labelled
    rows (``alpha = 1`` ignores the teacher); ``temperature`` is used only by a loss that takes one
    (``"kl"``).
    """
    if kind not in LOSSES:
        raise ValueError(f"unknown loss {kind!r}; allowed: {', '.join(LOSSES)}")
    _check(alpha, temperature)
    if not LOSSES[kind].distills:
        alpha = 1.0
    elif kind not in TEACHER_TERMS:
        raise ValueError(f"loss {kind!r} has no teacher term in kdutils.student.losses.TEACHER_TERMS")
    term = TEACHER_TERMS.get(kind)

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
        assert term is not None  # a loss with alpha < 1 distills, so make_loss found its term
        teacher_term = term(student_logits, teacher_logits, temperature)
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
