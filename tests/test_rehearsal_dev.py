"""The dev overlay run as written: one gateway and one actor host on Redis.

A module of its own: daprd's mDNS name resolution is machine-wide and knows no
namespaces, so two rehearsed clusters whose app-ids are the same (both overlays say
`threads` and `gateway`) must not run at once, or one's service invocations reach the
other's pods (and fail their mTLS)."""

from __future__ import annotations

import base64
import time
from pathlib import Path

import jwt

from tests.conftest import Api, running_redis
from tests.deploy_tools import kustomize_build
from tests.rehearsal import (
    ControlPlane,
    Kubernetes,
    OtlpCollector,
    Pod,
    start_pods,
    stop_pod,
)
from tests.test_rehearsal import JWKS_URL, OTLP, Cluster, _identity_provider
from threadhost.runtime import PROJECT_ROOT, dapr_bin_dir


def test_the_dev_overlay_starts_as_written_and_holds_a_conversation(tmp_path: Path) -> None:
    """One gateway and one actor host on Redis, with the overlay's generated Secrets as
    they are (the Redis address in them is the cluster's, translated to the local one)."""
    bin_dir = dapr_bin_dir("sentry")
    key, identity = _identity_provider()
    control_plane, collector = ControlPlane(bin_dir, tmp_path), OtlpCollector()
    pods: list[Pod] = []
    with running_redis(tmp_path) as redis_host:
        try:
            control_plane.start()
            objects = kustomize_build(PROJECT_ROOT / "k8s" / "overlays" / "dev")
            kube = Kubernetes(
                objects,
                folder=tmp_path,
                hosts={
                    "redis-master.threadhost-dev.svc.cluster.local:6379": redis_host,
                    JWKS_URL: identity.url,
                    OTLP: collector.address,
                },
            )
            pods = kube.pods(control_plane)
            assert sorted(p.name for p in pods) == ["threadhost-actors-0", "threadhost-gateway-0"]
            start_pods(pods, bin_dir, tmp_path / "logs")
            cluster = Cluster(
                kube, pods, control_plane, redis_host, key, tmp_path, bin_dir, 0, collector
            )
            # Signed as docs/deploy.md says: the overlay's generated secret, HS256.
            [generated] = [
                o
                for o in objects
                if o["kind"] == "Secret" and o["metadata"]["name"] == "threadhost-jwt"
            ]
            secret = base64.b64decode(generated["data"]["secret"]).decode()
            token = jwt.encode(
                {
                    "sub": "dev-user",
                    "iss": "https://login.example.com/",
                    "aud": "threadhost",
                    "exp": int(time.time()) + 3600,
                },
                secret,
                algorithm="HS256",
            )
            api = Api(cluster.of("threadhost-gateway")[0].url)
            api.http.headers["authorization"] = f"Bearer {token}"
            thread = api.create_thread(agent="support")
            reply = api.say(thread, "Where is my order 1001?")
            assert api.run(thread, reply["run"]["run_id"])["status"] == "completed"
        finally:
            for pod in pods:
                stop_pod(pod)
            control_plane.stop()
            identity.stop()
            collector.stop()
