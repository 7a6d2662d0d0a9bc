"""The load tests use the end-to-end harness and its fixtures."""

import importlib.util
import sys
from pathlib import Path

_E2E = Path(__file__).resolve().parents[1] / "e2e"
if str(_E2E) not in sys.path:
    sys.path.insert(0, str(_E2E))

_spec = importlib.util.spec_from_file_location("e2e_fixtures", _E2E / "conftest.py")
_fixtures = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_fixtures)
globals().update({name: getattr(_fixtures, name) for name in _fixtures.__all__})
