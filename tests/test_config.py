"""Profiles load, validate early and fail with one line naming the parameter."""

from pathlib import Path

import pytest

from kdutils.config import ConfigError, available_profiles, load_profile


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
