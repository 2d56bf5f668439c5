"""`./dev images`: every image the compose file and the manifests name, built here.

Nothing is pulled (no registry is reachable from these machines), so each image is made
from what the project already has:

- `threadhost-base:bookworm`: a minimal Debian with Python 3.11 and its venv module,
  written by `mmdebstrap` from Debian's packages and imported;
- `threadhost:<version>`: the project's own Dockerfile, unchanged, from that base
  (`--build-arg BASE`); pip trusts the machine's own certificate authorities during the
  build only (`EXTRA_CA_CERTS`), as a build behind a TLS-inspecting proxy needs;
- `daprio/daprd`, `daprio/placement`, `daprio/scheduler`, `daprio/sentry` at the pinned
  version: the binaries dapr-runtime/build.sh built from the official module, laid out
  as Dapr's images lay them out (`/daprd`, ..., uid 65532);
- `threadhost:<version>-embedded`: Dockerfile.embedded, the whole embedded service in one
  container (the app's image with Dapr's binaries from the images above);
- `threadhost-redis:bookworm`: Debian's `redis-server`, for `THREADHOST_REDIS_IMAGE`.

`./dev images --cluster` also builds what a Kubernetes cluster runs (`./dev test-k8s`):
Dapr's `operator` and `injector` laid out as the other Dapr images (the names Dapr's Helm
chart asks for, with `global.registry=daprio`), and the pause image of pod sandboxes
(`threadhost-pause:1`, a static Go program from tests/kube/pause).

Builds run on the project's engine with the host's network (`--network host`: pip and
apt reach their registries as the machine does).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib
from collections.abc import Callable
from pathlib import Path

from threadhost.container_engine import CONTAINERS, Engine
from threadhost.runtime import PROJECT_ROOT, dapr_bin_dir

BASE = "threadhost-base:bookworm"
REDIS = "threadhost-redis:bookworm"
DEBIAN_MIRROR = "http://deb.debian.org/debian"
DAPR_BINARIES = ("daprd", "placement", "scheduler", "sentry")
CONTROL_PLANE = ("operator", "injector")  # besides sentry, placement and scheduler
PAUSE = "threadhost-pause:1"
NONROOT = "65532"  # the user Dapr's own images run as


def app_image() -> str:
    project = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())["project"]
    return f"threadhost:{project['version']}"


def dapr_version() -> str:
    for line in (PROJECT_ROOT / "dapr-runtime" / "go.mod").read_text().splitlines():
        words = line.split()
        if words[:2] == ["require", "github.com/dapr/dapr"]:
            return words[2].removeprefix("v")
    raise SystemExit("dapr-runtime/go.mod names no github.com/dapr/dapr version")


def dapr_image(binary: str) -> str:
    return f"daprio/{binary}:{dapr_version()}"


def _exists(engine: Engine, image: str) -> bool:
    return engine.docker("image", "inspect", image, check=False, capture=True).returncode == 0


def _extra_ca_certs() -> str:
    """The machine's own certificate authorities (PEM), if it has any."""
    folder = Path("/usr/local/share/ca-certificates")
    found = sorted(folder.glob("**/*.crt")) if folder.is_dir() else []
    return "".join(path.read_text() for path in found)


def build_base(engine: Engine) -> None:
    with tempfile.TemporaryDirectory(prefix="threadhost-base-") as folder:
        rootfs = Path(folder) / "rootfs.tar"
        subprocess.run(
            [
                "mmdebstrap",
                "--quiet",
                "--variant=apt",
                "--include=python3,python3-venv,ca-certificates",
                "bookworm",
                str(rootfs),
                DEBIAN_MIRROR,
            ],  # fmt: skip
            check=True,
            timeout=900,
        )
        engine.docker("import", "--change", 'CMD ["/bin/bash"]', str(rootfs), BASE)


def build_app(engine: Engine) -> None:
    engine.docker(
        "build", "--network", "host",
        "--build-arg", f"BASE={BASE}",
        "--build-arg", f"EXTRA_CA_CERTS={_extra_ca_certs()}",
        "--tag", app_image(), str(PROJECT_ROOT),
    )  # fmt: skip


def embedded_image() -> str:
    return f"{app_image()}-embedded"


def build_embedded(engine: Engine) -> None:
    """Dockerfile.embedded: the app's image with Dapr's binaries from their images."""
    engine.docker(
        "build", "--network", "host",
        "--build-arg", f"APP={app_image()}",
        "--build-arg", f"DAPR={dapr_version()}",
        "--file", str(PROJECT_ROOT / "Dockerfile.embedded"),
        "--tag", embedded_image(), str(PROJECT_ROOT),
    )  # fmt: skip


def _build_from_text(engine: Engine, image: str, dockerfile: str, files: dict[str, Path]) -> None:
    """An image from a Dockerfile written here, with `files` in its context."""
    context = CONTAINERS / "build" / image.replace("/", "_").replace(":", "_")
    shutil.rmtree(context, ignore_errors=True)
    context.mkdir(parents=True)
    for name, source in files.items():
        shutil.copy2(source, context / name)
    (context / "Dockerfile").write_text(dockerfile)
    engine.docker("build", "--network", "host", "--tag", image, str(context))


def build_dapr(engine: Engine, binaries: tuple[str, ...] = DAPR_BINARIES) -> None:
    bin_dir = dapr_bin_dir(*(binary for binary in binaries if binary != "daprd"))
    for binary in binaries:
        # The scheduler keeps its etcd in /data: a volume mounted there starts as this.
        data = (
            f"RUN mkdir /data && chown {NONROOT}:{NONROOT} /data\n" if binary == "scheduler" else ""
        )
        dockerfile = (
            f"FROM {BASE}\n"
            f"COPY {binary} /{binary}\n"
            f"{data}"
            "WORKDIR /\n"
            f"USER {NONROOT}:{NONROOT}\n"
            f'ENTRYPOINT ["/{binary}"]\n'
        )
        _build_from_text(
            engine, dapr_image(binary), dockerfile, {binary: (bin_dir / binary).resolve()}
        )


REDIS_DOCKERFILE = f"""FROM {BASE}
RUN apt-get update -qq \\
 && apt-get install -y -qq --no-install-recommends redis-server \\
 && rm -rf /var/lib/apt/lists/* \\
 && mkdir -p /data && chown redis:redis /data
COPY entrypoint.sh /usr/local/bin/entrypoint.sh
WORKDIR /data
USER redis
ENTRYPOINT ["/bin/sh", "/usr/local/bin/entrypoint.sh"]
CMD ["redis-server"]
"""

# As the official image does: `redis-server ...` as the command, listening to the
# container's network (protected mode is for a machine's redis, not a container's).
REDIS_ENTRYPOINT = """[ "$1" = redis-server ] && shift
exec /usr/bin/redis-server --protected-mode no "$@"
"""


def build_redis(engine: Engine) -> None:
    with tempfile.TemporaryDirectory() as folder:
        entrypoint = Path(folder) / "entrypoint.sh"
        entrypoint.write_text(REDIS_ENTRYPOINT)
        _build_from_text(engine, REDIS, REDIS_DOCKERFILE, {"entrypoint.sh": entrypoint})


def build_control_plane(engine: Engine) -> None:
    build_dapr(engine, CONTROL_PLANE)


def build_pause(engine: Engine) -> None:
    with tempfile.TemporaryDirectory() as folder:
        program = Path(folder) / "pause"
        subprocess.run(
            ["go", "build", "-trimpath", "-ldflags", "-s -w", "-o", str(program), "."],
            cwd=PROJECT_ROOT / "tests" / "kube" / "pause",
            env={**os.environ, "CGO_ENABLED": "0", "GOTOOLCHAIN": "local"},
            check=True,
            timeout=300,
        )
        dockerfile = 'FROM scratch\nCOPY pause /pause\nUSER 65535:65535\nENTRYPOINT ["/pause"]\n'
        _build_from_text(engine, PAUSE, dockerfile, {"pause": program})


def build_all(
    engine: Engine, say: Callable[[str], None] = print, cluster: bool = False
) -> dict[str, float]:
    """Builds every image (the base only when missing: the others find their layers
    in the engine's cache), and with `cluster` what a Kubernetes cluster runs besides;
    the seconds each took."""
    took: dict[str, float] = {}
    steps: list[tuple[str, Callable[[Engine], None]]] = [
        (BASE, build_base),
        (app_image(), build_app),
        ("daprio/* (Dapr's)", build_dapr),
        (embedded_image(), build_embedded),
        (REDIS, build_redis),
    ]
    if cluster:
        steps += [("daprio/operator, daprio/injector", build_control_plane), (PAUSE, build_pause)]
    for name, build in steps:
        if build is build_base and _exists(engine, BASE):
            continue
        say(f"building {name} ...")
        started = time.monotonic()
        build(engine)
        took[name] = time.monotonic() - started
    return took


def main(argv: list[str]) -> int:
    with Engine(host_network=True) as engine:
        took = build_all(
            engine, lambda line: print(f"[images] {line}", flush=True), "--cluster" in argv
        )
    for name, seconds in took.items():
        print(f"[images] {name}: {seconds:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
