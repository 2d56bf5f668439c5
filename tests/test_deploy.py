"""The deployment files, validated: every Kubernetes object against Kubernetes' OpenAPI
schemas, every pod as admission judges it (Dapr's injector adds the sidecar, then Pod
Security's "restricted" level), every Dapr resource against Dapr's own CRD schemas, the
compose file against the compose specification, and the Dockerfile through hadolint.
Plus the timeout chain that keeps a rolling update from cutting a step off."""

import shutil
import subprocess

import jsonschema
import kubernetes_validate
import pytest
import yaml

from tests.deploy_tools import (
    KUBERNETES_VERSION,
    admitted,
    compose_schema,
    dapr_schemas,
    kustomize_build,
)
from tests.rehearsal import documented_helm_values
from threadhost.runtime import PROJECT_ROOT
from threadhost.stack import APP_HEALTH, PLACEMENT_KEEPALIVE

OVERLAYS = ["dev", "prod"]
DAPR_KINDS = {"Component", "Configuration", "Resiliency", "Subscription"}


@pytest.fixture(scope="module", params=OVERLAYS)
def built(request) -> list[dict]:
    return kustomize_build(PROJECT_ROOT / "k8s" / "overlays" / request.param)


def validate_dapr(doc: dict) -> None:
    jsonschema.validate(doc, dapr_schemas()[doc["kind"]])


def test_every_object_matches_its_schema(built) -> None:
    kinds = set()
    for doc in built:
        kinds.add(doc["kind"])
        if doc["kind"] in DAPR_KINDS:
            validate_dapr(doc)
        else:
            kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
    assert {
        "Deployment",
        "Service",
        "HorizontalPodAutoscaler",
        "PodDisruptionBudget",
        "Component",
        "Configuration",
        "Namespace",
    } <= kinds


def test_a_schema_violation_is_caught() -> None:
    """The validators are not vacuous: a broken Deployment and Component are refused."""
    deployment = next(
        d
        for d in kustomize_build(PROJECT_ROOT / "k8s" / "overlays" / "dev")
        if d["kind"] == "Deployment"
    )
    deployment["spec"]["replicas"] = "two"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSION, strict=True)
    with pytest.raises(jsonschema.ValidationError):
        validate_dapr(
            {
                "apiVersion": "dapr.io/v1alpha1",
                "kind": "Component",
                "metadata": {"name": "x"},
                "spec": {"version": "v1"},
            }
        )


def test_the_local_components_match_daprs_schemas() -> None:
    paths = list((PROJECT_ROOT / "components").rglob("*.yaml"))
    assert len(paths) >= 7
    for path in paths:
        validate_dapr(yaml.safe_load(path.read_text()))


def _pods(built: list[dict]) -> list[dict]:
    return [
        {
            "name": d["metadata"]["name"],
            "namespace": d["metadata"].get("namespace", "default"),
            "template": d["spec"]["template"],
        }
        for d in built
        if d["kind"] == "Deployment"
    ]


# The first builds tests/podcheck: minutes on a fresh machine.
@pytest.mark.timeout(900)
def test_every_pod_is_admitted_at_the_restricted_pod_security_level(built) -> None:
    """As a cluster judges them: the sidecar added by Dapr's own injector code (the pinned
    chart's settings with the Helm command the docs give), then Kubernetes' own Pod
    Security admission at "restricted" (tests/podcheck)."""
    verdicts = admitted(_pods(built), documented_helm_values())
    assert len(verdicts) == 2 and all("daprd" in v["containers"] for v in verdicts)
    assert [(v["name"], v["forbidden"]) for v in verdicts if not v["allowed"]] == []


@pytest.mark.timeout(900)
def test_a_pod_below_the_restricted_level_is_refused(built) -> None:
    """The judge is not vacuous: with the chart's defaults the sidecar keeps its
    capabilities, and an app container that may gain privileges is refused."""
    pods = _pods(built)
    verdicts = admitted(pods, {})
    assert not any(v["allowed"] for v in verdicts)
    assert all("capabilities" in v["forbidden"] for v in verdicts)
    [container] = pods[0]["template"]["spec"]["containers"]
    container["securityContext"]["allowPrivilegeEscalation"] = True
    [verdict, _] = admitted(pods, documented_helm_values())
    assert not verdict["allowed"] and "allowPrivilegeEscalation" in verdict["forbidden"]


@pytest.mark.timeout(900)
def test_network_policies_let_in_only_what_the_design_needs(built) -> None:
    """The gateway takes its API, other services' sidecars and metrics; an actor host
    takes only threadhost's own sidecars and metrics (k8s/base/networkpolicy.yaml). Each
    port is one the pod listens on, once Dapr's injector has added the sidecar."""
    policies = {d["metadata"]["name"]: d["spec"] for d in built if d["kind"] == "NetworkPolicy"}
    listening = {v["name"]: set(v["ports"]) for v in admitted(_pods(built), {})}
    for name, expected in (
        ("threadhost-gateway", {8000, 50002, 9090}),
        ("threadhost-actors", {50002, 9090}),
    ):
        spec = policies[name]
        assert spec["podSelector"]["matchLabels"] == {"app.kubernetes.io/name": name}
        assert spec["policyTypes"] == ["Ingress"]
        ports = {p["port"] for rule in spec["ingress"] for p in rule["ports"]}
        assert ports == expected and ports <= listening[name], (name, listening[name])
    [peers] = [
        r for r in policies["threadhost-actors"]["ingress"] if r["ports"][0]["port"] == 50002
    ]
    assert peers["from"] == [
        {
            "podSelector": {
                "matchExpressions": [
                    {
                        "key": "app.kubernetes.io/name",
                        "operator": "In",
                        "values": ["threadhost-gateway", "threadhost-actors"],
                    }
                ]
            }
        }
    ]


def test_the_pods_read_the_agent_files_from_a_configmap(built) -> None:
    """agents/*.json as the ConfigMap threadhost-agents (its name changes with them, so an
    edited agent file rolls the pods), mounted read-only where the image keeps its own."""
    [config_map] = [
        d for d in built if d["kind"] == "ConfigMap" and "agents" in d["metadata"]["name"]
    ]
    files = {path.name: path.read_text() for path in (PROJECT_ROOT / "agents").glob("*.json")}
    assert config_map["data"] == files and files
    assert (
        """THREADHOST_AGENTS_DIRS='["/app/agents"]'""" in (PROJECT_ROOT / "Dockerfile").read_text()
    )
    for name in ("threadhost-gateway", "threadhost-actors"):
        pod = _deployment(built, name)["spec"]["template"]["spec"]
        [volume] = pod["volumes"]
        assert volume["configMap"]["name"] == config_map["metadata"]["name"]
        [mount] = pod["containers"][0]["volumeMounts"]
        assert mount == {"name": volume["name"], "mountPath": "/app/agents", "readOnly": True}


def _deployment(built: list[dict], name: str) -> dict:
    return next(d for d in built if d["kind"] == "Deployment" and d["metadata"]["name"] == name)


def test_the_pods_account_may_read_every_secret_a_component_names_and_no_other(built) -> None:
    """daprd reads a component's secretKeyRef through the secret store it names
    (secretstores.kubernetes), as the pod's service account: the Role must allow each
    such Secret (a real cluster refused them to the default account), and only those
    and the app's API keys."""
    deployments = [d for d in built if d["kind"] == "Deployment"]
    accounts = {d["spec"]["template"]["spec"].get("serviceAccountName") for d in deployments}
    assert accounts == {"threadhost"}
    [binding] = [d for d in built if d["kind"] == "RoleBinding"]
    [subject] = binding["subjects"]
    assert (subject["kind"], subject["name"]) == ("ServiceAccount", "threadhost")
    assert subject["namespace"] == binding["metadata"]["namespace"]  # kustomize sets it
    assert binding["roleRef"]["kind"] == "Role"
    [role] = [d for d in built if d["kind"] == "Role"]
    assert role["metadata"]["name"] == binding["roleRef"]["name"]
    [rule] = role["rules"]
    assert rule["resources"] == ["secrets"] and rule["verbs"] == ["get"]
    named = {
        item["secretKeyRef"]["name"]
        for d in built
        if d["kind"] == "Component"
        for item in d["spec"].get("metadata", [])
        if "secretKeyRef" in item
    }
    assert named and named <= set(rule["resourceNames"])
    assert set(rule["resourceNames"]) - named <= {"threadhost-api-keys", "threadhost-postgres"}


def test_a_rolling_update_stalls_no_thread_for_long(built) -> None:
    """A pod joining or going blocks every Thread actor's state writes for up to the
    drain (k8s/base/actors.yaml says why): it stays short, within daprd's default
    dissemination timeout; daprd shuts down within the pod's grace; one pod at a time.
    tests/test_rehearsal.py runs the rolling restart itself."""
    actors = _deployment(built, "threadhost-actors")
    pod = actors["spec"]["template"]
    annotations = pod["metadata"]["annotations"]
    env = {e["name"]: e.get("value") for e in pod["spec"]["containers"][0]["env"]}
    drain = float(env["THREADHOST_DRAIN_ONGOING_CALL_TIMEOUT_SECONDS"])
    assert drain <= 5 and "dapr.io/actors-disseminate-timeout" not in annotations
    shutdown = float(annotations["dapr.io/graceful-shutdown-seconds"])
    assert shutdown < pod["spec"]["terminationGracePeriodSeconds"]
    assert annotations["dapr.io/app-id"] == "threads"
    assert actors["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0


def test_every_shape_probes_the_app_as_the_launcher_does(built) -> None:
    """daprd's app health check is what moves threads off an app that died beside its
    sidecar: the manifests, the compose file and dapr.yaml set it as `./dev up` and the
    tests do (threadhost/stack.py says why these numbers)."""
    for name in ("threadhost-gateway", "threadhost-actors"):
        annotations = _deployment(built, name)["spec"]["template"]["metadata"]["annotations"]
        assert {k: annotations.get(f"dapr.io/{k}") for k in APP_HEALTH} == APP_HEALTH
    services = yaml.safe_load((PROJECT_ROOT / "docker-compose.yml").read_text())["services"]
    for sidecar in ("gateway-daprd", "threads-daprd", "threads-2-daprd"):
        command = services[sidecar]["command"]
        flags = {
            arg[2:]: (
                command[i + 1]
                if i + 1 < len(command) and not command[i + 1].startswith("--")
                else "true"
            )
            for i, arg in enumerate(command)
            if arg.startswith("--")
        }
        assert {k: flags.get(k) for k in APP_HEALTH} == APP_HEALTH, sidecar
    [app] = yaml.safe_load((PROJECT_ROOT / "dapr.yaml").read_text())["apps"]
    assert (
        str(app["enableAppHealthCheck"]).lower(),
        app["appHealthCheckPath"],
        str(app["appHealthProbeInterval"]),
        str(app["appHealthProbeTimeout"]),
        str(app["appHealthThreshold"]),
    ) == tuple(APP_HEALTH.values())


def test_every_shape_gives_placement_the_launchers_keepalive() -> None:
    """How soon placement drops a frozen host: the Helm command the docs give and the
    compose file set what `./dev up` and the tests run (threadhost/stack.py)."""
    helm = documented_helm_values()
    assert {
        name: helm.get(f"dapr_placement.{key}")
        for name, key in (
            ("keepalive-time", "keepAliveTime"),
            ("keepalive-timeout", "keepAliveTimeout"),
        )
    } == PLACEMENT_KEEPALIVE
    command = yaml.safe_load((PROJECT_ROOT / "docker-compose.yml").read_text())["services"][
        "placement"
    ]["command"]
    assert {
        k: command[command.index(f"--{k}") + 1] for k in PLACEMENT_KEEPALIVE if f"--{k}" in command
    } == PLACEMENT_KEEPALIVE


def test_sidecars_and_probes_are_configured(built) -> None:
    for name, app_id, config in (
        ("threadhost-gateway", "gateway", "threadhost"),
        ("threadhost-actors", "threads", "threadhost-actors"),
    ):
        pod = _deployment(built, name)["spec"]["template"]
        annotations = pod["metadata"]["annotations"]
        assert annotations["dapr.io/enabled"] == "true"
        assert annotations["dapr.io/app-id"] == app_id
        assert annotations["dapr.io/config"] == config
        assert annotations["dapr.io/app-token-secret"] == "threadhost-app-token"
        container = pod["spec"]["containers"][0]
        assert container["readinessProbe"]["httpGet"]["path"] == "/health"
        assert container["resources"]["requests"]
    gateway_env = {
        e["name"]: e.get("value")
        for e in _deployment(built, "threadhost-gateway")["spec"]["template"]["spec"]["containers"][
            0
        ]["env"]
    }
    assert gateway_env["THREADHOST_AUTH_MODE"] == "jwt"
    configurations = {d["metadata"]["name"]: d for d in built if d["kind"] == "Configuration"}
    actors = configurations["threadhost-actors"]["spec"]
    assert {"name": "ActorStateTTL", "enabled": True} in actors["features"]
    for configuration in configurations.values():
        assert configuration["spec"]["accessControl"]["defaultAction"] == "deny"
    # Nobody invokes the actor host as a service: actor calls are all it takes.
    assert not actors["accessControl"].get("policies")


def test_prod_keeps_thread_state_in_postgres_and_generates_no_secret() -> None:
    built = kustomize_build(PROJECT_ROOT / "k8s" / "overlays" / "prod")
    store = next(
        d for d in built if d["kind"] == "Component" and d["metadata"]["name"] == "threadstate"
    )
    assert store["spec"]["type"] == "state.postgresql"
    assert {"name": "actorStateStore", "value": "true"} in store["spec"]["metadata"]
    assert not any(d["kind"] == "Secret" for d in built)


def test_the_compose_file_matches_the_compose_specification() -> None:
    compose = yaml.safe_load((PROJECT_ROOT / "docker-compose.yml").read_text())
    jsonschema.validate(compose, compose_schema())
    services = compose["services"]
    for app in ("gateway", "threads", "threads-2"):
        sidecar = services[f"{app}-daprd"]
        assert sidecar["network_mode"] == f"service:{app}"
        assert sidecar["image"] == services["gateway-daprd"]["image"]
    assert services["threads-2"]["profiles"] == ["two-hosts"]
    assert "daprio/daprd:1.18.2" == services["gateway-daprd"]["image"]


def test_the_dockerfile_passes_hadolint() -> None:
    hadolint = shutil.which("hadolint")
    assert hadolint, "hadolint is missing: pip install -e '.[test]'"
    for dockerfile in ("Dockerfile", "Dockerfile.embedded"):
        result = subprocess.run(
            [hadolint, str(PROJECT_ROOT / dockerfile)], capture_output=True, text=True, timeout=60
        )
        assert result.returncode == 0, result.stdout + result.stderr
    dockerfile = (PROJECT_ROOT / "Dockerfile").read_text()
    assert "USER 10001" in dockerfile and dockerfile.count("FROM ") == 2
