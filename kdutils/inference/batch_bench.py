"""Timing batch prediction on this machine: a corpus of sentences and :func:`bench_batch_predict`."""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from kdutils.inference.batch import DEFAULT_MODEL, predict_file
from kdutils.inference.batch_engines import import_ray
from kdutils.study.files import atomic_path

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
_HTML_BREAK = re.compile(r"<br\s*/?>", re.IGNORECASE)


def write_sentence_corpus(texts: Sequence[str], path: str | Path, n_sentences: int = 60_000) -> Path:
    """Cut reviews into sentences (``<br />`` tags dropped, split after ``.``, ``!`` or ``?``) and write
    the first ``n_sentences`` of them, in review order, as Parquet (column ``text``); returns ``path``.

    For the study's benchmark the reviews are the IMDB train reviews
    (``kdutils.data.corpora.unlabelled_texts("rotten_tomatoes")``), which no notebook tests on. Raises
    ValueError when the reviews hold fewer sentences.
    """
    out: list[str] = []
    for review in texts:
        for sentence in _SENTENCE_END.split(_HTML_BREAK.sub(" ", review)):
            if sentence.strip():
                out.append(sentence.strip())
        if len(out) >= n_sentences:
            break
    if len(out) < n_sentences:
        raise ValueError(f"the reviews hold {len(out)} sentences, fewer than {n_sentences}")
    path = Path(path)
    with atomic_path(path) as tmp:
        pq.write_table(pa.table({"text": out[:n_sentences]}), tmp)
    return path


def bench_batch_predict(run: str | Path, corpus: str | Path, work_dir: str | Path,
                        configs: Sequence[dict[str, Any]], model: str = DEFAULT_MODEL, rounds: int = 1,
                        ) -> list[dict[str, Any]]:
    """Time :func:`predict_file`, file to file, once per config per round, configs interleaved in each
    round (a machine that gets busier slows every config alike).

    ``configs``: keyword arguments of :func:`predict_file` (``engine``, ``workers``, ``batch_size``,
    ``sort``, ``pool`` ...), each with a ``name``. Ray is started once, before the first Ray config,
    and that start is reported as ``ray_init_s`` on each Ray row; a job's own start-up (worker
    processes or actors, model loading, the first chunk) is ``startup_s``. Returns one dict per run:
    ``name``, ``round``, ``rows``, ``seconds`` (wall, whole job), ``rows_per_s`` (whole job),
    ``steady_rows_per_s`` (start-up excluded), ``startup_s``, ``ray_init_s``.
    """
    work = Path(work_dir)
    work.mkdir(parents=True, exist_ok=True)
    ray_init_s: float | None = None
    started_ray = False
    rows: list[dict[str, Any]] = []
    try:
        for r in range(rounds):
            for cfg in configs:
                kw = dict(cfg)
                name = kw.pop("name")
                if kw.get("engine") == "ray" and ray_init_s is None:
                    ray = import_ray()
                    t = time.perf_counter()
                    if not ray.is_initialized():
                        ray.init(address=kw.get("address"), include_dashboard=False, log_to_driver=False,
                                 logging_level="ERROR", **({} if kw.get("address") else {"_node_ip_address": "127.0.0.1"}))
                        started_ray = True
                    ray_init_s = time.perf_counter() - t
                res = predict_file(run, corpus, work / f"{name}.parquet", model=model, overwrite=True, quiet=True, **kw)
                rows.append({"name": name, "round": r, "rows": res.rows, "seconds": res.seconds,
                             "rows_per_s": res.rows / res.seconds, "steady_rows_per_s": res.steady_rows_per_s,
                             "startup_s": res.startup_s,
                             "ray_init_s": ray_init_s if kw.get("engine") == "ray" else None})
    finally:
        if started_ray:
            import_ray().shutdown()
    return rows
