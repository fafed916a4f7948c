"""Machine facts and the teacher's numeric mode: detection, fallback, bad requests."""

from __future__ import annotations

import logging

import pytest

from kdutils import machine
from kdutils.study.config import load_profile
from kdutils.study.specs import ConfigError
from kdutils.teacher.finetune import FineTuneSettings


def test_cpu_facts_are_read() -> None:
    assert machine.cpu_name()
    assert "logical cores" in machine.cpu_description()
    assert isinstance(machine.cpu_flags(), frozenset)


def test_auto_follows_native_bf16(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(machine, "native_bf16", lambda: True)
    assert machine.resolve_precision("auto", "cpu").mode == "bf16"
    monkeypatch.setattr(machine, "native_bf16", lambda: False)
    choice = machine.resolve_precision("auto", "cpu")
    assert choice.mode == "fp32" and "lacks native bf16" in choice.reason


def test_auto_on_this_machine_matches_its_flags() -> None:
    has_flag = any(f in machine.cpu_flags() for f in machine.BF16_FLAGS)
    if not has_flag:
        assert machine.resolve_precision("auto", "cpu").mode == "fp32"
    assert machine.resolve_precision("fp32", "cpu").mode == "fp32"


def test_bf16_without_support_falls_back_with_one_log_line(monkeypatch: pytest.MonkeyPatch,
                                                           caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setattr(machine, "native_bf16", lambda: False)
    with caplog.at_level(logging.WARNING, logger="kdutils.machine"):
        choice = machine.resolve_precision("bf16", "cpu")
    assert choice.mode == "fp32" and choice.requested == "bf16"
    lines = [r for r in caplog.records if r.name == "kdutils.machine"]
    assert len(lines) == 1 and "running in fp32" in lines[0].getMessage()


def test_gpu_keeps_the_trainer_default() -> None:
    assert machine.resolve_precision("auto", "cuda").mode == "fp32"


@pytest.mark.parametrize("bad", ["fp16", "BF16", "", "int8"])
def test_bad_precision_is_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="auto, fp32, bf16"):
        machine.resolve_precision(bad)
    with pytest.raises(ConfigError, match="teacher.precision"):
        load_profile("smoke", {"teacher": {"precision": bad}})
    with pytest.raises(ValueError, match="precision must be fp32 or bf16"):
        FineTuneSettings(precision=bad)


def test_precision_enters_the_fingerprint_only_when_not_fp32() -> None:
    fp32, bf16 = FineTuneSettings(), FineTuneSettings(precision="bf16")
    assert "precision" not in fp32.identity(), "fp32 runs keep the fingerprints of earlier versions"
    assert bf16.identity()["precision"] == "bf16"
    cfg = load_profile("smoke", {"teacher": {"precision": "fp32"}})
    assert FineTuneSettings.from_config(cfg.teacher).precision == "fp32"


def test_paper_profile_serves_every_trained_depth() -> None:
    cfg = load_profile("paper")
    served = {m for m in cfg.deploy.load_models if m.startswith("teacher")}
    assert served == {"teacher", *(f"teacher_L{k}" for k in cfg.teacher.depths)}
    with pytest.raises(ConfigError, match="teacher_L3"):
        load_profile("smoke", {"deploy": {"load_models": ["teacher_L3"]}})
