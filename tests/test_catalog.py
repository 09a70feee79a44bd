import pytest

import emel
from emel import catalog


def test_catalog_lists_both_default_models():
    assert set(catalog.CATALOG) >= {"smollm2-135m", "gemma3-270m"}


def test_unknown_model_name_raises_catalog_error():
    with pytest.raises(emel.CatalogError, match="unknown model"):
        catalog.path("no-such-model")


def test_resolve_rejects_missing_path(tmp_path):
    with pytest.raises(emel.EmelError, match="neither a model file"):
        catalog.resolve(tmp_path / "missing.gguf")


def test_fetched_models_are_verified_gguf_files(smollm2_path, gemma3_path):
    for p in (smollm2_path, gemma3_path):
        with open(p, "rb") as f:
            assert f.read(4) == b"GGUF"
