"""Shared fixtures: the real model files, llama.cpp's test vocabularies and fixed seeds."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

import assets  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
FIXTURES = REPO / "parity_fixtures"


@pytest.fixture(scope="session")
def smollm2_path() -> Path:
    return assets.model_path("smollm2-135m")


@pytest.fixture(scope="session")
def gemma3_path() -> Path:
    return assets.model_path("gemma3-270m")


@pytest.fixture(scope="session")
def llama_cpp_dir() -> Path:
    return assets.llama_cpp_dir()


@pytest.fixture(scope="session")
def vocab_dir() -> Path:
    return assets.vocab_dir()


@pytest.fixture(scope="session")
def fixtures_dir() -> Path:
    return FIXTURES


@pytest.fixture
def seed() -> int:
    return 1234
