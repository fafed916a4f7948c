"""The teacher's scoring on Ray (distill.scoring_engine: ray): same logits as local, cached by the driver."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from kdutils.data.corpora import Splits
from kdutils.machine import PrecisionChoice
from kdutils.student.train import torch_threads
from kdutils.study.config import ConfigError, load_profile
from kdutils.study.summary import TeacherScoring
from kdutils.teacher import finetune, weights
from kdutils.teacher.ray_scoring import ENGINES, RayTeacherScorer, make_scorer
from kdutils.teacher.scoring import TeacherScorer


@pytest.fixture(scope="module")
def tiny_teacher_dir(rt_splits: Splits, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """MiniLM's first layer fine-tuned for one epoch on 48 real sentences."""
    root = tmp_path_factory.mktemp("ray_teacher")
    settings = finetune.FineTuneSettings(max_length=32, epochs=1, batch_size=16, num_layers=1, patience=0)
    job = finetune.FineTuneJob(rt_splits.train.iloc[:48].copy(), rt_splits.val.iloc[:16].copy(),
                               rt_splits.label_names, root / "model", root / "scratch")
    return finetune.fine_tune(weights.resolve_teacher("minilm-l6"), job, settings, name="teacher_L1",
                              teacher="minilm-l6", progress=False).model_dir


def test_ray_actors_score_like_this_process_and_the_driver_caches(tiny_teacher_dir: Path, rt_splits: Splits,
                                                                  tmp_path: Path, ray_cluster: str) -> None:
    texts = rt_splits.test["text"].tolist()[:40]
    local = TeacherScorer(tiny_teacher_dir, None, batch_size=8, runtime="torch").logits(texts)

    scorer = make_scorer("ray", tiny_teacher_dir, tmp_path / "cache", address=ray_cluster, workers=2,
                         batch_size=8, runtime="torch", chunk_rows=16)
    assert isinstance(scorer, RayTeacherScorer)
    chunks: list[int] = []
    real_merge = scorer._merge_into_cache
    scorer._merge_into_cache = lambda h, lg: (chunks.append(len(h)), real_merge(h, lg))  # type: ignore[method-assign]
    on_ray = scorer.logits(texts[:30] + texts[:5] + texts[30:])  # duplicates are scored once
    np.testing.assert_allclose(on_ray[:30], local[:30], atol=1e-5)
    np.testing.assert_allclose(on_ray[35:], local[30:], atol=1e-5)
    stats = TeacherScoring.model_validate(scorer.last_stats)
    assert (stats.engine, stats.workers, stats.scored, stats.precision) == ("ray", 2, 40, "fp32")
    assert sorted(chunks) == [8, 16, 16], "every chunk is merged into the cache as it comes back"

    # The cache the driver wrote is the local scorer's: nothing is scored again, on either engine.
    again = TeacherScorer(tiny_teacher_dir, tmp_path / "cache", batch_size=8, runtime="torch")
    np.testing.assert_allclose(again.logits(texts), local, atol=1e-5)
    assert again.last_stats["scored"] == 0 and again.last_stats["engine"] == "local"
    scorer.logits(texts[::-1])
    assert scorer.last_stats["scored"] == 0


def test_workers_score_in_the_drivers_mode(tiny_teacher_dir: Path, rt_splits: Splits, ray_cluster: str) -> None:
    """A driver on a CPU with native bf16 sends its mode: workers never resolve their own."""
    texts = rt_splits.test["text"].tolist()[:12]
    bf16 = PrecisionChoice("bf16", "auto", "cpu", "CPU has native bf16 (avx512_bf16)")
    remote = RayTeacherScorer(tiny_teacher_dir, None, address=ray_cluster, workers=1, batch_size=4,
                              runtime="torch", precision=bf16, chunk_rows=6).score(texts)
    # bf16 results depend on the batches: score the same chunks here, one thread as an actor does.
    with torch_threads(1):
        here = np.concatenate([TeacherScorer(tiny_teacher_dir, None, batch_size=4, runtime="torch",
                                             precision=bf16).score(texts[i:i + 6]) for i in (0, 6)])
        fp32 = TeacherScorer(tiny_teacher_dir, None, batch_size=4, runtime="torch", precision="fp32").score(texts)
    np.testing.assert_allclose(remote, here, atol=1e-6)
    assert np.abs(remote - fp32).max() > 1e-4, "bf16 differs from fp32: a worker in fp32 would be seen"


def test_engine_is_checked_in_the_profile_and_the_factory(tiny_teacher_dir: Path) -> None:
    assert set(ENGINES) == {"local", "ray"}
    assert load_profile("smoke").distill.scoring_engine == "local"
    with pytest.raises(ConfigError, match=r"distill\.scoring_engine"):
        load_profile("smoke", {"distill": {"scoring_engine": "dask"}})
    with pytest.raises(ConfigError, match=r"distill\.scoring_workers"):
        load_profile("smoke", {"distill": {"scoring_workers": 0}})
    with pytest.raises(ValueError, match="scoring engine must be one of local, ray"):
        make_scorer("dask", tiny_teacher_dir)
    assert type(make_scorer("local", tiny_teacher_dir)) is TeacherScorer


def test_ray_engine_without_ray_fails_in_the_first_cell(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "ray" else real(name, *a))
    with pytest.raises(ConfigError, match=r"scoring_engine 'ray' needs Ray: pip install"):
        load_profile("smoke", {"distill": {"scoring_engine": "ray"}})
