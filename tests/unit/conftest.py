"""Unit tier: makes this folder's fixture module (adapter_fixtures) importable."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
