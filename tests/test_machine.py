"""Machine facts and the teacher's numeric mode: detection, fallback, bad requests."""

from __future__ import annotations

import logging

import pytest
from cpu_classes import inject_cpu

from kdutils import machine
from kdutils.study.config import load_profile
from kdutils.study.specs import ConfigError
from kdutils.teacher.finetune import FineTuneSettings

# What each CPU class's detection must choose for ``precision: auto``.
AUTO_MODE = {"avx2": "fp32", "avx512_bf16": "bf16", "amx": "bf16"}


def test_cpu_facts_are_read(monkeypatch: pytest.MonkeyPatch) -> None:
    assert machine.cpu_name()
    assert "logical cores" in machine.cpu_description()
    monkeypatch.delenv(machine.CPU_FLAGS_ENV)
    assert isinstance(machine.cpu_flags(), frozenset) and machine.injected_flags() is None
    if not any(f in machine.cpu_flags() for f in machine.BF16_FLAGS):
        assert not machine.native_bf16(), "no bf16 flag, no native bf16, whatever oneDNN says"


def test_injected_flags_are_what_detection_sees(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(machine.CPU_FLAGS_ENV, "avx2, avx512_bf16  fma")
    assert machine.cpu_flags() == {"avx2", "avx512_bf16", "fma"} and machine.native_bf16()
    monkeypatch.setenv(machine.CPU_FLAGS_ENV, "")
    assert machine.cpu_flags() == frozenset() and not machine.native_bf16()


def test_auto_takes_each_cpu_class_path(cpu_class: str) -> None:
    choice = machine.resolve_precision("auto", "cpu")
    assert choice.mode == AUTO_MODE[cpu_class]
    if choice.mode == "bf16":
        assert "native bf16" in choice.reason and "avx512_bf16" in choice.reason
        assert ("amx_bf16" in choice.reason) == (cpu_class == "amx")
    else:
        assert "lacks native bf16" in choice.reason
    # The same choice reaches fine-tuning and the scorer.
    assert FineTuneSettings.from_config(load_profile("smoke").teacher).precision == AUTO_MODE[cpu_class]
    assert machine.resolve_precision("fp32", "cpu").mode == "fp32"


def test_forcing_fp32_on_a_bf16_machine_gives_the_fp32_path(monkeypatch: pytest.MonkeyPatch) -> None:
    inject_cpu(monkeypatch, "amx")
    cfg = load_profile("smoke", {"teacher": {"precision": "fp32"}})
    choice = machine.resolve_precision(cfg.teacher.precision)
    assert (choice.mode, choice.reason) == ("fp32", "fp32 requested")
    settings = FineTuneSettings.from_config(cfg.teacher)
    assert settings.precision == "fp32" and "precision" not in settings.identity()
    assert FineTuneSettings.from_config(load_profile("smoke").teacher).precision == "bf16", "auto differs here"


def test_bf16_without_support_falls_back_with_one_log_line(monkeypatch: pytest.MonkeyPatch,
                                                           caplog: pytest.LogCaptureFixture) -> None:
    inject_cpu(monkeypatch, "avx2")
    machine._warn_once.cache_clear()  # a fresh process: nothing said yet
    with caplog.at_level(logging.WARNING, logger="kdutils.machine"):
        # Every step, scorer and manifest write resolves the mode: the fallback is said once.
        choices = [machine.resolve_precision("bf16", "cpu") for _ in range(3)]
    assert all(c.mode == "fp32" and c.requested == "bf16" for c in choices)
    lines = [r for r in caplog.records if r.name == "kdutils.machine"]
    assert len(lines) == 1 and "running in fp32" in lines[0].getMessage()


def test_injected_flags_say_so_in_the_reason(monkeypatch: pytest.MonkeyPatch) -> None:
    inject_cpu(monkeypatch, "amx")
    assert machine.CPU_FLAGS_ENV in machine.resolve_precision("auto", "cpu").reason


def test_the_resolved_mode_enters_the_steps_cache_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    """A run folder reused on a CPU of another class runs the teacher's notebooks again."""
    from kdutils import pipeline
    from kdutils.study.steps import discover_steps

    cfg = load_profile("smoke")
    steps = {s.number: s for s in discover_steps()}
    keys = {}
    for cpu in ("avx2", "amx"):
        inject_cpu(monkeypatch, cpu)
        keys[cpu] = {n: pipeline.step_key(s, cfg, "up", "lib", {}) for n, s in steps.items()}
    reading_mode = {n for n, s in steps.items() if {"teacher", "teacher.precision"} & set(pipeline.step_parameters(s, cfg))}
    assert reading_mode >= {"02", "04", "05"}
    assert {n for n in steps if keys["avx2"][n] != keys["amx"][n]} == reading_mode


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
