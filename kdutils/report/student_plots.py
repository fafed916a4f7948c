"""Figures of notebook 03: the students' training curves."""

from __future__ import annotations

from typing import Any

import numpy as np

from kdutils import plots


def plot_student_curves(histories: dict[str, dict[int, list[dict[str, Any]]]]) -> Any:
    """Validation accuracy (top) and training loss (bottom) per epoch, one column per configuration.

    ``histories`` maps a model name to ``{seed: history}``; each seed is one line, its best
    validation epoch marked with a dot.
    """
    # matplotlib loads in seconds: only the notebooks that draw pay for it, not training workers.
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    plots.set_style()
    names = list(histories)
    width, height = plots.DOUBLE_COLUMN
    fig, axes = plt.subplots(2, len(names), figsize=(width, 1.9 * height), sharex="col", squeeze=False)
    for col, name in enumerate(names):
        colour = plots.model_color(name)
        for seed, history in sorted(histories[name].items()):
            epochs = [h["epoch"] for h in history]
            acc = [100 * h["val_accuracy"] for h in history]
            best = int(np.argmax(acc))
            axes[0, col].plot(epochs, acc, color=colour, alpha=0.7, lw=1, label=f"seed {seed}")
            axes[0, col].plot(epochs[best], acc[best], "o", color=colour, ms=3)
            axes[1, col].plot(epochs, [h["train_loss"] for h in history], color=colour, alpha=0.7, lw=1)
        axes[0, col].set_title(name)
        axes[0, col].set_ylabel("validation accuracy (%)" if col == 0 else "")
        axes[1, col].set_ylabel("training loss" if col == 0 else "")
        axes[1, col].set_xlabel("epoch")
        axes[1, col].xaxis.set_major_locator(MaxNLocator(integer=True))
    fig.tight_layout()
    return fig
