"""Finds the Dapr runtime binaries, building them from the pinned module the first time."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[1]
BUILD_SCRIPT = PROJECT_ROOT / "dapr-runtime" / "build.sh"
# The components' folder: the project's, or where an image keeps a copy of it.
COMPONENTS = Path(os.environ.get("THREADHOST_COMPONENTS_DIR") or PROJECT_ROOT / "components")


def dapr_bin_dir(*extra: str) -> Path:
    """Runs dapr-runtime/build.sh, which reuses binaries of the right version when it can;
    `extra` names more of Dapr's binaries to provide (sentry). Installed without the
    project's folder (in an image), it takes THREADHOST_DAPR_BIN as it is."""
    if not BUILD_SCRIPT.exists():
        given = Path(os.environ.get("THREADHOST_DAPR_BIN", ""))
        tools = ["daprd", "placement", "scheduler", *extra]
        if not all((given / tool).is_file() for tool in tools):
            raise SystemExit(f"THREADHOST_DAPR_BIN must name a folder holding {', '.join(tools)}")
        return given
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
