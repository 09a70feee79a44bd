"""Access to parity_fixtures/logits/tiny_models.py (the tiny GGUF writer shared with the fixtures)."""

import importlib.util
from pathlib import Path

_PATH = Path(__file__).resolve().parents[2] / "parity_fixtures" / "logits" / "tiny_models.py"
_spec = importlib.util.spec_from_file_location("emel_tiny_models", _PATH)
tiny_models = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(tiny_models)
