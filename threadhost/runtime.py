"""Finds the Dapr runtime binaries, building them from the pinned module the first time."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[1]
BUILD_SCRIPT = PROJECT_ROOT / "dapr-runtime" / "build.sh"
COMPONENTS = PROJECT_ROOT / "components"


def dapr_bin_dir(*extra: str) -> Path:
    """Runs dapr-runtime/build.sh, which reuses binaries of the right version when it can;
    `extra` names more of Dapr's binaries to provide (sentry)."""
    result = subprocess.run(
        ["bash", str(BUILD_SCRIPT), *extra],
        stdout=subprocess.PIPE,
        stderr=sys.stderr,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise SystemExit("the Dapr runtime is not available; see the messages above")
    return Path(result.stdout.strip().splitlines()[-1])
