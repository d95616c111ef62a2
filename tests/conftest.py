"""Shared test configuration.

Test layers (docs/contributing.md):
- tests/unit: no I/O at all (no files, sockets or subprocesses).
- tests/functional: real components together: loopback HTTP, subprocesses, moto.
- tests/e2e: the CLI run as a user would.

Never import ``dify_plugin`` in the pytest process: it gevent-patches sockets and threads
globally. Run plugins in subprocesses (see tests/support).
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
