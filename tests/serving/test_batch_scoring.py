"""Batch scoring benchmarked file to file (kdutils.serving.batch_scoring, notebook 06) on the serving
fixture's real models (a small BiLSTM student, a 1-layer minilm teacher, their ONNX exports) and the
session's 2-CPU Ray cluster."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from serving_fixtures import ServingRun

from kdutils.inference.predictors import find_entry, make_predictor
from kdutils.report import batch_plots
from kdutils.report.tables import batch_table
from kdutils.serving import batch_scoring as bs
from kdutils.serving.micro import flops_per_sentence
from kdutils.study.config import load_profile
from kdutils.study.specs import ConfigError
from kdutils.study.summary import BatchScoringSection, Summary, TargetRow

pytest_plugins = ("serving_fixtures",)

N_STUDENT, N_TEACHER = 80, 24  # the fixture has 100 test sentences


@pytest.fixture(scope="module")
def measured(serving_run: ServingRun, ray_cluster: str, tmp_path_factory: pytest.TempPathFactory) -> dict:
    work = tmp_path_factory.mktemp("batch_scoring")
    texts = serving_run.texts[:N_STUDENT]
    corpus, teacher_corpus = work / "corpus.parquet", work / "teacher.parquet"
    pq.write_table(pa.table({"text": texts}), corpus)
    pq.write_table(pa.table({"text": texts[:N_TEACHER]}), teacher_corpus)
    section = bs.batch_scoring_benchmark(serving_run.run.root, corpus, teacher_corpus, work / "out", rounds=1,
                                         teacher_precision="fp32", peer_batch_sizes=(1, 4),
                                         corpus_label="fixture test sentences")
    return {"section": section, "work": work / "out", "texts": texts}


def test_every_configuration_is_measured_and_the_section_validates(measured: dict) -> None:
    section = measured["section"]
    record = BatchScoringSection.from_record(section).record()
    runs = {r["name"]: r for r in record["runs"]}
    assert set(runs) == {"student_onnx_local_1", "student_onnx_local_2", "student_onnx_ray_2", "student_int8_local_2",
                         "teacher_local_2", "teacher_onnx_local_2", "peer_b1", "peer_b4"}
    for name, r in runs.items():
        assert r["sentences"] == (N_TEACHER if name.startswith(("teacher", "peer")) else N_STUDENT), name
        assert r["sentences_per_s"] > 0 and r["per_core_per_s"] == pytest.approx(r["sentences_per_s"] / r["cores"])
        assert (r.get("gflops_per_core") is not None) == name.startswith("student"), name
    # Ray's start is its own figure; the session's cluster was already up, so it is small.
    assert runs["student_onnx_ray_2"]["ray_init_s"] is not None and runs["student_onnx_local_2"]["ray_init_s"] is None
    assert section["engines_identical"] is True and section["compared_rows"] == N_STUDENT
    assert section["ours_over_peer"] == pytest.approx(
        runs["teacher_local_2"]["sentences_per_s"] / max(runs["peer_b1"]["sentences_per_s"],
                                                          runs["peer_b4"]["sentences_per_s"]))


def test_flops_and_floor_come_from_the_model(serving_run: ServingRun, measured: dict) -> None:
    section = measured["section"]
    entry = find_entry(serving_run.run.root, bs.STUDENT)
    tokens = float(np.mean(make_predictor(entry, 1).encoder.lengths(measured["texts"])))
    assert section["mean_student_tokens"] == pytest.approx(tokens)
    assert section["flops_per_sentence"] == pytest.approx(flops_per_sentence(entry, tokens))
    assert section["floor_per_core_per_s"] == pytest.approx(
        section["matmul_1core_gflops"] * 1e9 / section["flops_per_sentence"])


def test_the_pipeline_peer_scores_what_our_teacher_scores(measured: dict) -> None:
    # Same weights, same truncation: the same labels and (fp32 on both sides) nearly the same probabilities.
    ours = pq.read_table(measured["work"] / "teacher_local_2.parquet").to_pandas()
    for b in (1, 4):
        peer = pq.read_table(measured["work"] / f"peer_b{b}.parquet").to_pandas()
        assert list(peer["label"]) == list(ours["label"])
        for col in (c for c in ours.columns if c.startswith("prob_")):
            np.testing.assert_allclose(peer[col], ours[col], atol=1e-4)
    assert measured["section"]["peer_agreement"] == 1.0


def test_compare_outputs_sees_one_changed_probability(measured: dict, tmp_path: Path) -> None:
    local = measured["work"] / "student_onnx_local_2.parquet"
    table = pq.read_table(local)
    probs = table.column("prob_" + table.column("label")[0].as_py()).to_numpy(zero_copy_only=False).copy()
    probs[5] = np.nextafter(probs[5], 2.0)
    changed = table.set_column(table.column_names.index("prob_" + table.column("label")[0].as_py()),
                               "prob_" + table.column("label")[0].as_py(), pa.array(probs))
    pq.write_table(changed, tmp_path / "changed.parquet")
    assert bs.compare_outputs(local, local) == (True, N_STUDENT)
    assert bs.compare_outputs(local, tmp_path / "changed.parquet") == (False, N_STUDENT)


def test_targets_judge_the_thresholds(measured: dict) -> None:
    section = dict(measured["section"])
    rows = [TargetRow.from_record(r) for r in bs.evaluate_targets(section)]
    assert len(rows) == 4 and rows[3].met is True
    share = rows[0].value
    assert rows[0].met == (share >= bs.TARGET_FLOOR_SHARE)
    for ratio, met in ((bs.TARGET_RAY_OVER_LOCAL, True), (bs.TARGET_RAY_OVER_LOCAL - 0.01, False)):
        assert bs.evaluate_targets({**section, "ray_over_local": ratio})[2]["met"] is met
    for ratio, met in ((bs.TARGET_OVER_PEER, True), (bs.TARGET_OVER_PEER - 0.01, False)):
        assert bs.evaluate_targets({**section, "ours_over_peer": ratio})[1]["met"] is met
    assert bs.evaluate_targets({**section, "engines_identical": False})[3]["met"] is False


def test_the_paper_table_and_the_notebook_frame(measured: dict) -> None:
    record = BatchScoringSection.from_record(measured["section"]).record()
    table = batch_table(Summary.from_dict({"batch_scoring": record}))
    assert table is not None and table.name == "batch_scoring"
    assert "transformers pipeline (batch 4)" in table.markdown() and "Ray x2" in table.markdown()
    assert batch_table(Summary.from_dict({})) is None
    frame = batch_plots.batch_frame(record)
    assert len(frame) == len(record["runs"])
    fig = batch_plots.plot_batch_scoring(record)
    assert len(fig.axes[0].patches) == len(record["runs"])


def test_profile_refuses_a_teacher_subset_larger_than_the_corpus() -> None:
    assert load_profile("smoke").batch.corpus_sentences <= 5_000  # the smoke study stays fast
    assert load_profile("default").batch.corpus_sentences >= 50_000
    with pytest.raises(ConfigError, match="teacher_sentences"):
        load_profile("smoke", {"batch": {"corpus_sentences": 1000, "teacher_sentences": 2000}})
    with pytest.raises(ConfigError, match="peer_batch_sizes"):
        load_profile("smoke", {"batch": {"peer_batch_sizes": [8, 8]}})
