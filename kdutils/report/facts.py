"""What the study's named assets are: descriptive facts, not results (results come from the run).

Kept apart so that the registry of teachers and data sets (``kdutils.specs``, in progress) can
replace this module by changing one import."""

from __future__ import annotations

from typing import Any

TEACHER_INFO: dict[str, dict[str, Any]] = {
    "minilm-l6": {
        "label": "all-MiniLM-L6-v2",
        "family": "MiniLM (BERT architecture)",
        "layers": 6,
        "hidden": 384,
        "refs": ["wang2020", "reimers2019"],
    },
    "mpnet-12": {
        "label": "all-mpnet-base-v2",
        "family": "MPNet",
        "layers": 12,
        "hidden": 768,
        "refs": ["song2020", "reimers2019"],
    },
}

DATASET_INFO: dict[str, dict[str, Any]] = {
    "rotten_tomatoes": {
        "label": "rotten_tomatoes",
        "long": "the sentence polarity data of Pang & Lee (2005), known as rotten_tomatoes: "
                "single sentences from movie reviews, the source SST was built from",
        "refs": ["pang2005"],
    },
    "imdb": {"label": "IMDB", "long": "the IMDB review data of Maas et al. (2011): long reviews",
             "refs": ["maas2011"]},
    "tweets": {"label": "tweets", "long": "crowd-labelled tweets with three classes", "refs": []},
    "file": {"label": "a user-supplied file", "long": "a user-supplied labelled file", "refs": []},
}
