"""kdutils: the reusable code of the knowledge-distillation study.

Rooms, one job each:

* set-up and runs: ``specs`` (the registry: one spec per teacher and data set, the pinned asset
  wheels and GloVe, the names of a run's teachers; every descriptive and provenance fact),
  ``config`` (profiles, the only reader of one), ``pipeline`` (notebooks through papermill, cache
  keys, manifest), ``steps`` (what each notebook reads, needs and writes), ``runs`` (a run's
  folders and shared files, atomic writes), ``summary`` (the typed ``summary.json``),
  ``progress`` (text progress bars), ``machine`` (CPU facts and the teacher's numeric mode);
* data: ``assets`` (offline data and weights, sha256 checks), ``data`` (datasets, splits, data
  card), ``text`` (the student's word tokenizer and vocabulary), ``embeddings`` (GloVe);
* saved models: ``model_files`` (a saved model's file names, its ``kdmodel.json`` read and written
  atomically);
* teacher: ``teacher_weights`` (resolving and verifying weights), ``finetune`` (fine-tuning, resume),
  ``teachers`` (test metrics, latency, figures), ``scoring`` (cached teacher logits),
  ``teacher_train_cli`` (the torchrun entry point), ``teacher_rate`` (speed and mode probes);
* students and distillation: ``models``, ``train``, ``baselines``, ``losses``, ``augment``,
  ``distill``, ``metrics``, ``stats``;
* deployment: ``export`` (ONNX, int8), ``predictors``, ``serve`` (the FastAPI app), ``deploy``
  (replicas, nginx), ``bench`` (micro and load benchmarks), ``locustfile``, ``lightload`` (the
  light latency client), ``serving_peers`` (the floor and naive servers it is compared with);
* the paper: ``plots`` (one figure style), ``report`` (a package, one module per job:
  ``formatting``, ``anchors`` (published figures the study is measured against),
  ``results``, ``tables``, ``figures``, ``context``, ``rendering``, ``publishing``, ``index``,
  ``display``, ``reading``, ``cli``).
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
