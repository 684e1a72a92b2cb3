"""Locates ../shared/vectors (the SPEC's test vectors) beside the repository."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def vectors_dir() -> Path:
    """The vectors folder: $ONECARD_VECTORS, else ../shared/vectors next to the checkout."""
    env = os.environ.get("ONECARD_VECTORS")
    path = Path(env) if env else ROOT.parent / "shared" / "vectors"
    if not path.is_dir():
        raise FileNotFoundError(f"test vectors not found at {path}; set ONECARD_VECTORS")
    return path


def load(name: str) -> Any:
    """Parse one vectors file."""
    return json.loads((vectors_dir() / name).read_text(encoding="utf-8"))
