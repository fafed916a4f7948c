"""kdutils: the reusable code of the knowledge-distillation study.

Rooms, one job each: ``config`` (profiles), ``runs`` (run layout, atomic writes,
summary), ``assets`` (offline data and weights), ``data``, ``text`` (student
tokenizer), ``teachers``, ``models``, ``train``, ``losses``, ``augment``,
``metrics``, ``stats``, ``export``, ``serve``, ``deploy``, ``bench``, ``plots``,
``progress`` (text progress bars), ``report`` and ``pipeline``.
"""

__version__ = "0.1.0"

import os as _os

# The study never reaches a model hub: weights and data come from pinned packages.
# Setting this before transformers is imported turns a stray hub call into an
# immediate error instead of a long network time-out on an air-gapped machine.
_os.environ.setdefault("HF_HUB_OFFLINE", "1")
_os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import warnings as _warnings

# transformers and huggingface_hub import tqdm.auto, which in a Jupyter kernel without ipywidgets
# (not pinned: progress bars stay text) warns "IProgress not found" into every executed notebook.
_warnings.filterwarnings("ignore", message="IProgress not found")
