"""Figures of notebook 01: the splits' label balance and sentence lengths."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from kdutils import plots
from kdutils.data.corpora import SPLIT_NAMES, Splits
from kdutils.data.describe import word_counts


def _long_frame(splits: Splits) -> pd.DataFrame:
    return pd.concat(
        [
            pd.DataFrame(
                {
                    "split": name,
                    "label": pd.Categorical.from_codes(part["label"], splits.label_names),
                    "words": word_counts(part["text"]),
                }
            )
            for name, part in splits.items()
        ],
        ignore_index=True,
    )


def plot_label_balance(splits: Splits) -> Any:
    """Bar chart: share of each label in each split (split sizes in the tick labels)."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    plots.set_style()
    long = _long_frame(splits)
    shares = (
        long.groupby("split")["label"].value_counts(normalize=True).rename("share").reset_index()
    )
    ticks = {name: f"{name}\n(n={len(part):,})" for name, part in splits.items()}
    shares["split"] = shares["split"].map(ticks)
    fig, ax = plt.subplots(figsize=plots.SINGLE_COLUMN)
    sns.barplot(
        shares,
        x="split",
        y="share",
        hue="label",
        order=list(ticks.values()),
        hue_order=splits.label_names,
        ax=ax,
        palette="colorblind",
    )
    ax.set_xlabel("")
    ax.set_ylabel("share of examples")
    ax.set_ylim(0, min(1.0, shares["share"].max() * 1.25))
    ax.legend(title="", loc="upper center", ncol=splits.num_labels, frameon=False)
    fig.tight_layout()
    return fig


def plot_length_distribution(splits: Splits, clip_quantile: float = 0.99) -> Any:
    """Density of text length in words per split (x axis clipped at a high quantile)."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    plots.set_style()
    long = _long_frame(splits)
    upper = float(np.quantile(long["words"], clip_quantile))
    fig, ax = plt.subplots(figsize=plots.SINGLE_COLUMN)
    # A kernel density keeps small splits readable where integer word counts make histograms jagged.
    sns.kdeplot(
        long,
        x="words",
        hue="split",
        hue_order=list(SPLIT_NAMES),
        common_norm=False,
        cut=0,
        clip=(0, upper),
        ax=ax,
        palette="colorblind",
    )
    ax.set_xlim(0, upper)
    ax.set_ylim(bottom=0)
    ax.set_xlabel(f"length in words (up to the {clip_quantile:.0%} quantile, {upper:.0f})")
    ax.set_ylabel("density")
    fig.tight_layout()
    return fig
