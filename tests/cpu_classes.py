"""Injecting what CPU detection sees, so each CPU class's code path runs on any machine."""

from __future__ import annotations

import os

import pytest

from kdutils.machine import CPU_CLASSES, CPU_FLAGS_ENV

# What the environment set before the tests started (None: the real machine's detection). Read at
# import, before any fixture injects a class.
OUTER_CPU_FLAGS = os.environ.get(CPU_FLAGS_ENV)


def inject_cpu(monkeypatch: pytest.MonkeyPatch, cpu_class: str) -> None:
    """Make :mod:`kdutils.machine` (and every child process) see one of ``CPU_CLASSES``."""
    monkeypatch.setenv(CPU_FLAGS_ENV, " ".join(sorted(CPU_CLASSES[cpu_class])))


def as_the_machine_is(monkeypatch: pytest.MonkeyPatch) -> None:
    """Undo any injection: detection sees what it would outside the tests (the real CPU, or the
    ``KDUTILS_CPU_FLAGS`` the caller of pytest set)."""
    if OUTER_CPU_FLAGS is None:
        monkeypatch.delenv(CPU_FLAGS_ENV, raising=False)
    else:
        monkeypatch.setenv(CPU_FLAGS_ENV, OUTER_CPU_FLAGS)
