"""Shared fixtures: real clips from ../shared/data (never copied into the project)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("DVC_NO_ANALYTICS", "1")
os.environ.setdefault("MUJOCO_GL", "egl")

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


@pytest.fixture(scope="session")
def cmu_clips() -> list[Path]:
    clips = sorted((SHARED_DATA / "cmu").glob("*.bvh"))
    if not clips:
        pytest.fail(f"no CMU clips found in {SHARED_DATA / 'cmu'}")
    return clips
