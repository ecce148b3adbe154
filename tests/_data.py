"""Where the shared test data lives; skip cleanly without it (fail under CI=true)."""
import os
from pathlib import Path

import pytest

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
CORPUS = SHARED / "corpus"


def require_shared() -> Path:
    if not CORPUS.is_dir():
        if os.environ.get("CI") == "true":
            pytest.fail(f"shared test data missing at {SHARED} (required under CI=true)")
        pytest.skip(f"shared test data not found at {SHARED}")
    return SHARED
