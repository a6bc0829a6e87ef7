"""scripts/check runs the tests in a virtual environment of its own, so that the liferaft a user
installed on the machine (pip install .) is left as it was, not switched to this checkout."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

import liferaft

VENV = os.environ.get("LIFERAFT_CHECK_VENV")
"""Read as the tests are collected: every test's environment is cleared of LIFERAFT_* variables."""


def test_scripts_check_runs_in_its_own_environment() -> None:
    venv = VENV
    if not venv:
        pytest.skip("only meaningful under scripts/check (run directly, pytest uses whatever Python it is given)")
    assert Path(sys.prefix).resolve() == Path(venv).resolve()
    assert sys.prefix != sys.base_prefix  # a virtual environment, not the machine's Python
    assert Path(liferaft.__file__).resolve().is_relative_to(Path(__file__).resolve().parents[1] / "src")
