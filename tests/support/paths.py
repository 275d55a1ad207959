"""Where the test inputs live, so tests in any tier find them the same way."""

from __future__ import annotations

from pathlib import Path

SUPPORT = Path(__file__).parent
ROOT = SUPPORT.parent.parent
EXAMPLES = ROOT / "examples"
DATA = SUPPORT / "data"
PEERS = SUPPORT / "peers"
CONTAINER = SUPPORT / "container"
