"""Profiles load, validate early and fail with one line naming the parameter."""

from pathlib import Path

import pytest

from kdutils.study.config import (
    DataConfig,
    DeployConfig,
    DistillConfig,
    StudentArch,
    StudentConfig,
    TeacherConfig,
    absolute_overrides,
    available_profiles,
    load_profile,
    profile_path,
)
from kdutils.study.specs import ConfigError


@pytest.mark.parametrize("name", ["smoke", "default", "paper"])
def test_shipped_profiles_validate(name: str) -> None:
    cfg = load_profile(name)
    assert cfg.name == name
    assert cfg.seeds


def test_default_profile_is_the_study_on_five_seeds() -> None:
    cfg = load_profile("default")
    assert cfg.data.dataset == "rotten_tomatoes"
    assert cfg.teacher.name == "minilm-l6"
    assert len(cfg.seeds) == 5
    assert load_profile("paper").teacher.name == "mpnet-12"


def test_profiles_listed() -> None:
    assert {"smoke", "default", "paper"} <= set(available_profiles())


@pytest.mark.parametrize(
    ("overrides", "needle"),
    [
        ({"data": {"dataset": "sst2"}}, "data.dataset: unknown dataset 'sst2'; allowed: rotten_tomatoes"),
        ({"data": {"fractions": [0.7, 0.2, 0.2]}}, "data.fractions: train/val/test fractions must"),
        ({"teacher": {"name": "bert-base"}}, "teacher.name: unknown teacher 'bert-base'; allowed: minilm-l6, mpnet-12"),
        ({"teacher": {"epochs": 0}}, "teacher.epochs"),
        ({"distill": {"alpha": 1.5}}, "distill.alpha"),
        ({"distill": {"temperature": 0}}, "distill.temperature"),
        ({"distill": {"n_iter": -1}}, "distill.n_iter"),
        ({"student": {"main": {"embedding": "glove", "embedding_dim": 16}}}, "GloVe vectors shipped here are 50-d"),
        ({"teacher": {"lr": 1e-3}}, "teacher.lr: unknown parameter"),
        ({"seeds": []}, "seeds"),
        ({"data": {"dataset": "file"}}, "dataset 'file' needs data.path"),
    ],
)
def test_bad_parameters_fail_with_a_clear_line(overrides: dict, needle: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_profile("smoke", overrides)
    message = str(err.value)
    assert needle in message
    assert "\n" not in message


def test_unknown_profile_lists_allowed() -> None:
    with pytest.raises(ConfigError, match="unknown profile 'fast'; allowed: .*default.*smoke"):
        load_profile("fast")


def test_profile_from_path_and_overrides(tmp_path: Path) -> None:
    path = tmp_path / "mine.yaml"
    path.write_text("seeds: [3]\nteacher:\n  epochs: 1\n")
    cfg = load_profile(path, {"teacher": {"max_length": 48}})
    assert cfg.name == "mine"
    assert cfg.seeds == (3,)
    assert cfg.teacher.epochs == 1 and cfg.teacher.max_length == 48


def test_fingerprint_tracks_sections() -> None:
    a = load_profile("smoke")
    b = load_profile("smoke", {"teacher": {"epochs": 2}})
    assert a.fingerprint("data") == b.fingerprint("data")
    assert a.fingerprint("teacher") != b.fingerprint("teacher")


# ----------------------------------------------------------------------------- strict types

_SECTIONS = {"data": DataConfig, "teacher": TeacherConfig, "student": StudentConfig, "student.main": StudentArch,
             "distill": DistillConfig, "deploy": DeployConfig}


def _fields(kind: type) -> list[tuple[str, object]]:
    """(dotted name, default) of every field whose default is a ``kind`` (or a tuple of them)."""
    out = []
    for prefix, model in _SECTIONS.items():
        for name, field in model.model_fields.items():
            d = field.default
            is_kind = (isinstance(d, kind) and not isinstance(d, bool)) or (
                isinstance(d, tuple) and d and all(isinstance(x, kind) and not isinstance(x, bool) for x in d))
            if d is None and kind is int and "int" in str(field.annotation):
                is_kind = True
            if is_kind:
                out.append((f"{prefix}.{name}", d))
    return out + ([("seeds", (0, 1))] if kind is int else [])


def _nest(dotted: str, value: object) -> dict:
    out: object = value
    for part in reversed(dotted.split(".")):
        out = {part: out}
    return out  # type: ignore[return-value]


INT_FIELDS = _fields(int)
FLOAT_FIELDS = _fields(float)


def test_every_count_size_and_seed_is_covered() -> None:
    names = {n for n, _ in INT_FIELDS}
    assert {"teacher.epochs", "data.max_train", "data.split_seed", "seeds", "teacher.depths", "deploy.concurrency",
            "student.main.hidden_size", "distill.augment_seed", "teacher.seed"} <= names
    assert {"teacher.learning_rate", "distill.alpha", "data.fractions", "distill.grid_alpha"} <= {
        n for n, _ in FLOAT_FIELDS}


@pytest.mark.parametrize("bad", [True, False, "3", 2.5, 2.0])
@pytest.mark.parametrize(("name", "default"), INT_FIELDS, ids=[n for n, _ in INT_FIELDS])
def test_counts_sizes_and_seeds_are_strict_integers(name: str, default: object, bad: object) -> None:
    value = [bad] if isinstance(default, tuple) else bad
    with pytest.raises(ConfigError) as err:
        load_profile("smoke", _nest(name, value))
    message = str(err.value)
    assert message.startswith("invalid override") and name in message and "valid integer" in message
    assert f"got {bad!r}" in message and "\n" not in message


@pytest.mark.parametrize("bad", [True, False])
@pytest.mark.parametrize(("name", "default"), FLOAT_FIELDS, ids=[n for n, _ in FLOAT_FIELDS])
def test_booleans_are_not_numbers(name: str, default: object, bad: bool) -> None:
    value = [bad] * len(default) if isinstance(default, tuple) else bad
    with pytest.raises(ConfigError, match=rf"{name}.*not the boolean {bad}"):
        load_profile("smoke", _nest(name, value))


def test_yaml_yes_and_on_are_not_counts(tmp_path: Path) -> None:
    # issue 12.9's instance: YAML 1.1 reads yes/on as true, which pydantic took as 1.
    path = tmp_path / "typo.yaml"
    path.write_text("teacher: {epochs: yes}\ndata: {max_train: on}\n")
    with pytest.raises(ConfigError) as err:
        load_profile(path)
    message = str(err.value)
    assert message.startswith(f"invalid profile {path}: ")
    assert "teacher.epochs: Input should be a valid integer, got True (bool)" in message
    assert "data.max_train: Input should be a valid integer, got True (bool)" in message


def test_legit_yaml_numbers_still_load(tmp_path: Path) -> None:
    path = tmp_path / "numbers.yaml"
    # PyYAML reads 5.0e-5 as a float but 3e-4 (no dot) as a string: both are learning rates.
    path.write_text("teacher: {learning_rate: 5.0e-5, weight_decay: 0}\nstudent: {learning_rate: 3e-4}\n"
                    "distill: {alpha: 1, grid_alpha: [0, 0.5]}\n")
    cfg = load_profile(path)
    assert cfg.teacher.learning_rate == 5e-5 and cfg.student.learning_rate == 3e-4
    assert cfg.teacher.weight_decay == 0.0 and cfg.distill.alpha == 1.0 and cfg.distill.grid_alpha == (0.0, 0.5)


# ----------------------------------------------------------------------------- error wording


def test_misspelt_section_lists_the_allowed_names() -> None:
    with pytest.raises(ConfigError, match="techer: unknown parameter; allowed: name, description, seeds, data, "
                                          "teacher, student, distill, deploy"):
        load_profile("smoke", {"techer": {"epochs": 1}})
    with pytest.raises(ConfigError, match=r"student.main.hidden: unknown parameter; allowed: embedding, "
                                          r"embedding_dim, hidden_size"):
        load_profile("smoke", {"student": {"main": {"hidden": 3}}})


def test_unknown_loss_lists_the_registered_distillation_losses() -> None:
    # The allowed values come from kdutils.study.specs.LOSSES (its losses that learn from a teacher).
    with pytest.raises(ConfigError, match=r"distill.loss: Input should be 'mse' or 'kl'; "
                                          r"distill.grid_loss.1: Input should be 'mse' or 'kl'"):
        load_profile("smoke", {"distill": {"loss": "kd", "grid_loss": ["mse", "x"]}})


def test_bad_override_is_blamed_on_the_override_not_the_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as err:
        load_profile("smoke", {"teacher": {"epochs": 0}})
    assert str(err.value).startswith("invalid override (--set / overrides): teacher.epochs")
    assert "smoke.yaml" not in str(err.value)
    path = tmp_path / "bad.yaml"
    path.write_text("teacher: {epochs: 0}\n")
    with pytest.raises(ConfigError) as err:
        load_profile(path, {"student": {"epochs": -1}})
    message = str(err.value)
    assert message.startswith(f"invalid profile {path} with overrides (--set): ")
    assert "teacher.epochs: Input should be greater than 0;" in message
    assert "student.epochs: Input should be greater than 0 [from overrides]" in message


# ----------------------------------------------------------------------------- paths


def test_profile_path_is_relative_to_the_current_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "reviews.yaml").write_text("seeds: [1]\n")
    monkeypatch.chdir(tmp_path / "sub")
    assert profile_path("reviews.yaml") == tmp_path / "sub" / "reviews.yaml"
    assert load_profile("reviews.yaml").seeds == (1,)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match=f"profile file not found: reviews.yaml \\(relative paths start at {tmp_path}"):
        load_profile("reviews.yaml")


def test_data_path_is_relative_to_the_profile_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "study").mkdir()
    (tmp_path / "study" / "reviews.yaml").write_text("data: {dataset: file, path: reviews.csv}\n")
    (tmp_path / "study" / "deep.yaml").write_text("data: {dataset: file, path: ../data/reviews.csv}\n")
    monkeypatch.chdir(tmp_path)
    assert load_profile("study/reviews.yaml").data.path == str(tmp_path / "study" / "reviews.csv")
    assert load_profile("study/deep.yaml").data.path == str(tmp_path / "data" / "reviews.csv")
    # An absolute path stays as written; a path given as an override is relative to where the command runs.
    assert load_profile("study/reviews.yaml", {"data": {"path": "/srv/x.csv"}}).data.path == "/srv/x.csv"
    assert load_profile("study/reviews.yaml", {"data": {"path": "other.csv"}}).data.path == str(tmp_path / "other.csv")
    assert absolute_overrides({"data": {"path": "o.csv"}, "teacher": {"epochs": 1}}) == {
        "data": {"path": str(tmp_path / "o.csv")}, "teacher": {"epochs": 1}}


@pytest.mark.parametrize("bad", [[1], "teacher", 3])
def test_overrides_must_be_a_mapping(bad: object) -> None:
    with pytest.raises(ConfigError, match=r"overrides \(--set\) must be a mapping of sections"):
        load_profile("smoke", bad)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="must be a mapping"):
        absolute_overrides(bad)  # type: ignore[arg-type]
