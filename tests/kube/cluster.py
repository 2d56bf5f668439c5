"""A one-node Kubernetes cluster on this machine, for `./dev test-k8s` (as root).

Everything runs inside a network namespace of its own (`threadhost-kube-<hash>`), so the
machine's network is left as it is: a dummy interface there carries the node's address
(the kubelet needs one that is not loopback), pods get their own through the `ptp` CNI
plugin (a veth pair per pod, routed by the node: Services' NAT works without a bridge),
kube-proxy writes its rules in the namespace's own iptables, and CoreDNS answers the
cluster's names on the node's address. The processes are the official ones: etcd (Debian),
kube-apiserver, kube-controller-manager, kube-scheduler, kubelet, kube-proxy (built by
tests/kube/build.sh from k8s.io/kubernetes), CoreDNS, and Debian's containerd and runc
with a root, state and socket of their own. Images come from the project's engine
(`docker save`, then `ctr import`), pods never pull.

Stopping puts everything back: processes stopped by pid, mounts under the cluster's folder
unmounted, the cgroups the kubelet made removed, the sysctls it changed restored, the
namespace deleted.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import threading
import time
import urllib.request
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import yaml

from tests.kube.pki import Authority, service_account_keys
from threadhost.container_engine import enter_network_namespace, mounts_under, unmount_under
from threadhost.processes import Process, StartupError
from threadhost.runtime import PROJECT_ROOT

TOOLS = PROJECT_ROOT / ".tools" / "kube"
BIN = TOOLS / "bin"
CNI_BIN = TOOLS / "cni"
ROOT = PROJECT_ROOT / ".containers" / "kube"
NODE = "node0"
NODE_NETWORK = "10.213.0.0/24"
NODE_IP = "10.213.0.2"
POD_CIDR = "10.244.0.0/24"
SERVICE_CIDR = "10.96.0.0/16"
API_SERVICE_IP = "10.96.0.1"
SANDBOX_IMAGE = "docker.io/library/threadhost-pause:1"
# What the kubelet sets at start (and never puts back).
SYSCTLS = ("vm/overcommit_memory", "kernel/panic", "kernel/panic_on_oops")


def build_tools() -> Path:
    """tests/kube/build.sh: the cluster's binaries, built once per machine."""
    out = subprocess.run(
        ["bash", str(PROJECT_ROOT / "tests" / "kube" / "build.sh")],
        stdout=subprocess.PIPE,
        text=True,
        check=True,
        timeout=3600,
    ).stdout
    return Path(out.strip().splitlines()[-1])


class Cluster:
    """The cluster, started and stopped with the object (a context manager)."""

    def __init__(self, root: Path = ROOT) -> None:
        self.root = root
        folder = hashlib.sha256(str(root.resolve()).encode()).hexdigest()[:8]
        self.namespace = f"threadhost-kube-{folder}"
        self.pki = root / "pki"
        self.logs = root / "logs"
        self.containerd_socket = root / "containerd" / "containerd.sock"
        self.admin = self.pki / "admin.kubeconfig"
        self._processes: list[Process] = []
        self._sysctls: dict[str, str] = {}
        self._inside: ThreadPoolExecutor | None = None
        self._keeper: threading.Thread | None = None
        self._keeping = threading.Event()

    def __enter__(self) -> Cluster:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- running things in the namespace ----------------------------------------------

    def _in_namespace(self, argv: Iterable[str]) -> list[str]:
        return ["nsenter", f"--net=/var/run/netns/{self.namespace}", *argv]

    def _start(self, name: str, argv: list[str]) -> Process:
        process = Process(name, self._in_namespace(argv), self.logs)
        self._processes.append(process)
        return process

    def run(self, *argv: str, timeout: float = 120, check: bool = True) -> str:
        result = subprocess.run(
            self._in_namespace(argv),
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
        )
        if check and result.returncode != 0:
            raise StartupError(f"{' '.join(argv[:4])} failed: {result.stderr.strip()[-2000:]}")
        return result.stdout

    def kubectl(self, *args: str, timeout: float = 120, check: bool = True) -> str:
        return self.run(
            str(BIN / "kubectl"), "--kubeconfig", str(self.admin), *args,
            timeout=timeout, check=check,
        )  # fmt: skip

    def kubectl_json(self, *args: str) -> Any:
        return json.loads(self.kubectl(*args, "-o", "json"))

    def helm(self, *args: str, timeout: float = 600) -> str:
        return self.run(str(BIN / "helm"), "--kubeconfig", str(self.admin), *args, timeout=timeout)

    def inside(self) -> ThreadPoolExecutor:
        """A thread inside the cluster's network namespace: Services' addresses and the
        node's are reachable from it, as from the node."""
        if self._inside is None:
            self._inside = ThreadPoolExecutor(
                1, initializer=enter_network_namespace, initargs=(self.namespace,)
            )
        return self._inside

    # -- start ------------------------------------------------------------------------

    def start(self) -> None:
        if os.geteuid() != 0:
            raise StartupError("the test cluster needs root (containerd, the kubelet)")
        for binary in ("containerd", "runc", "ctr", "iptables", "nsenter", "ip"):
            if shutil.which(binary) is None:
                raise StartupError(f"the test cluster needs {binary} (Debian packages)")
        self._clean_leftovers()
        self.root.mkdir(parents=True)
        self._network()
        self._certificates()
        self._etcd()
        self._apiserver()
        self._controllers()
        self._containerd()
        self._kubelet()
        self._proxy_and_dns()
        self._wait_node_ready()
        self._keeping = threading.Event()
        self._keeper = threading.Thread(target=self._keep_pod_logs, daemon=True)
        self._keeper.start()

    def _keep_pod_logs(self) -> None:
        """Copies the pods' logs to `kept-logs` every second: the kubelet deletes a pod's
        logs with the pod, and a rollout's old pods are what a failure needs read."""
        source, kept = self.root / "pod-logs", self.root / "kept-logs"
        while not self._keeping.wait(1):
            for log in source.glob("*/*/*.log"):
                target = kept / log.relative_to(source)
                try:
                    if not target.exists() or target.stat().st_size != log.stat().st_size:
                        target.parent.mkdir(parents=True, exist_ok=True)
                        shutil.copyfile(log, target)
                except OSError:
                    continue

    def _clean_leftovers(self) -> None:
        """What a run that was killed left: its shims, mounts, cgroups and namespace."""
        if self.root.exists():
            self._kill_shims()
            self._unmount()
            self._remove_cgroups()
            self._remove_log_links()
            shutil.rmtree(self.root, ignore_errors=True)
        subprocess.run(["ip", "netns", "delete", self.namespace], capture_output=True)

    def _network(self) -> None:
        subprocess.run(["ip", "netns", "add", self.namespace], check=True)
        for command in (
            ["ip", "link", "set", "lo", "up"],
            # A veth pair with both ends in the namespace (these kernels may lack the
            # dummy interface): the node's address on one end.
            ["ip", "link", "add", "node0", "type", "veth", "peer", "name", "node0-peer"],
            ["ip", "address", "add", f"{NODE_IP}/24", "dev", "node0"],
            ["ip", "link", "set", "node0-peer", "up"],
            ["ip", "link", "set", "node0", "up"],
            ["ip", "route", "add", "default", "dev", "node0"],
        ):
            self.run(*command)

    def _certificates(self) -> None:
        ca = Authority(self.pki)
        self.ca = ca
        self.apiserver_cert = ca.issue(
            "apiserver",
            "kube-apiserver",
            hosts=(
                "kubernetes", "kubernetes.default", "kubernetes.default.svc",
                "kubernetes.default.svc.cluster.local", API_SERVICE_IP, NODE_IP, "127.0.0.1",
            ),
        )  # fmt: skip
        self.kubelet_client = ca.issue(
            "apiserver-kubelet-client", "kube-apiserver", "system:masters"
        )
        self.kubelet_serving = ca.issue("kubelet", f"system:node:{NODE}", hosts=(NODE, NODE_IP))
        server = f"https://{NODE_IP}:6443"
        ca.kubeconfig("admin", server, "admin", "system:masters")
        ca.kubeconfig("node", server, f"system:node:{NODE}", "system:nodes")
        self.sa_private, self.sa_public = service_account_keys(self.pki)

    def _etcd(self) -> None:
        etcd = self._start(
            "etcd",
            [
                str(BIN / "etcd"),
                "--data-dir", str(self.root / "etcd"),
                "--listen-client-urls", "http://127.0.0.1:2379",
                "--advertise-client-urls", "http://127.0.0.1:2379",
                "--listen-peer-urls", "http://127.0.0.1:2380",
                "--initial-advertise-peer-urls", "http://127.0.0.1:2380",
                "--initial-cluster", "default=http://127.0.0.1:2380",
                "--unsafe-no-fsync",
            ],
        )  # fmt: skip

        def healthy() -> bool:
            try:
                with urllib.request.urlopen("http://127.0.0.1:2379/health", timeout=2) as answer:
                    return b'"true"' in answer.read()
            except OSError:
                return False

        self._until(lambda: self.inside().submit(healthy).result(), 60, etcd)

    def _apiserver(self) -> None:
        cert, key = self.apiserver_cert
        client_cert, client_key = self.kubelet_client
        apiserver = self._start(
            "kube-apiserver",
            [
                str(BIN / "kube-apiserver"),
                "--etcd-servers", "http://127.0.0.1:2379",
                "--advertise-address", NODE_IP,
                "--bind-address", "0.0.0.0",
                "--secure-port", "6443",
                "--service-cluster-ip-range", SERVICE_CIDR,
                "--authorization-mode", "Node,RBAC",
                "--client-ca-file", str(self.ca.cert_path),
                "--tls-cert-file", str(cert),
                "--tls-private-key-file", str(key),
                "--kubelet-client-certificate", str(client_cert),
                "--kubelet-client-key", str(client_key),
                "--service-account-issuer", "https://kubernetes.default.svc.cluster.local",
                "--service-account-key-file", str(self.sa_public),
                "--service-account-signing-key-file", str(self.sa_private),
                "--api-audiences", "https://kubernetes.default.svc.cluster.local",
                "--kubelet-preferred-address-types", "InternalIP",
            ],
        )  # fmt: skip
        self._until(
            lambda: self.kubectl("get", "--raw", "/readyz", check=False).strip() == "ok",
            90,
            apiserver,
        )

    def _controllers(self) -> None:
        as_admin = [
            f"--{flag}={self.admin}"
            for flag in ("kubeconfig", "authentication-kubeconfig", "authorization-kubeconfig")
        ]
        self._start(
            "kube-controller-manager",
            [
                str(BIN / "kube-controller-manager"),
                *as_admin,
                "--service-account-private-key-file", str(self.sa_private),
                "--root-ca-file", str(self.ca.cert_path),
                "--use-service-account-credentials",
                "--cluster-signing-cert-file", str(self.ca.cert_path),
                "--cluster-signing-key-file", str(self.pki / "ca.key"),
                "--bind-address", "127.0.0.1",
                "--leader-elect=false",
            ],
        )  # fmt: skip
        self._start(
            "kube-scheduler",
            [
                str(BIN / "kube-scheduler"),
                *as_admin,
                "--bind-address", "127.0.0.1",
                "--leader-elect=false",
            ],
        )  # fmt: skip

    def _containerd(self) -> None:
        folder = self.root / "containerd"
        conf_dir = self.root / "cni"
        conf_dir.mkdir(parents=True)
        (conf_dir / "10-ptp.conflist").write_text(
            json.dumps(
                {
                    "cniVersion": "1.0.0",
                    "name": "pods",
                    "plugins": [
                        {
                            "type": "ptp",
                            "ipMasq": False,
                            "ipam": {
                                "type": "host-local",
                                "ranges": [[{"subnet": POD_CIDR}]],
                                "routes": [{"dst": "0.0.0.0/0"}],
                                "dataDir": str(self.root / "cni-ipam"),
                            },
                        },
                        {"type": "portmap", "capabilities": {"portMappings": True}},
                    ],
                }
            )
        )
        config = folder / "config.toml"
        folder.mkdir(parents=True, exist_ok=True)
        config.write_text(
            f"""version = 2
root = "{folder / "root"}"
state = "{folder / "state"}"
disabled_plugins = ["io.containerd.internal.v1.opt"]
[grpc]
  address = "{self.containerd_socket}"
[ttrpc]
  address = "{folder / "containerd.sock.ttrpc"}"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{SANDBOX_IMAGE}"
  restrict_oom_score_adj = true
  # The pods' network namespaces under the state folder, not /var/run/netns.
  netns_mounts_under_state_dir = true
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "{CNI_BIN}"
    conf_dir = "{conf_dir}"
  [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
    runtime_type = "io.containerd.runc.v2"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
      SystemdCgroup = false
"""
        )
        containerd = self._start("containerd", ["containerd", "--config", str(config)])
        self._until(lambda: self.ctr("version", check=False) != "", 60, containerd)

    def ctr(self, *args: str, check: bool = True, timeout: float = 600) -> str:
        return self.run(
            "ctr", "--address", str(self.containerd_socket), "--namespace", "k8s.io", *args,
            check=check, timeout=timeout,
        )  # fmt: skip

    def load_images(self, archive: Path, aliases: dict[str, str] | None = None) -> None:
        """Imports a `docker save` archive for pods; `aliases` tags more names (a
        registry's name for an image, as a cluster that pulled it would have it)."""
        self.ctr("images", "import", "--no-unpack", str(archive))
        for image, alias in (aliases or {}).items():
            self.ctr("images", "tag", "--force", _qualified(image), _qualified(alias))

    def _kubelet(self) -> None:
        for name in SYSCTLS:
            self._sysctls[name] = Path("/proc/sys", name).read_text().strip()
        resolv = self.root / "resolv.conf"
        resolv.write_text(f"nameserver {NODE_IP}\n")
        cert, key = self.kubelet_serving
        config = {
            "apiVersion": "kubelet.config.k8s.io/v1beta1",
            "kind": "KubeletConfiguration",
            "authentication": {
                "anonymous": {"enabled": False},
                "webhook": {"enabled": True},
                "x509": {"clientCAFile": str(self.ca.cert_path)},
            },
            "authorization": {"mode": "Webhook"},
            "cgroupDriver": "cgroupfs",
            "failSwapOn": False,
            "makeIPTablesUtilChains": False,
            "clusterDNS": [NODE_IP],
            "clusterDomain": "cluster.local",
            "resolvConf": str(resolv),
            "tlsCertFile": str(cert),
            "tlsPrivateKeyFile": str(key),
            "containerRuntimeEndpoint": f"unix://{self.containerd_socket}",
            "staticPodPath": "",
            "podLogsDir": str(self.root / "pod-logs"),
            # A test machine's disk may be fuller than a node's would be allowed.
            "evictionHard": {"memory.available": "100Mi", "nodefs.available": "1%",
                             "imagefs.available": "1%", "nodefs.inodesFree": "1%"},
            "imageGCHighThresholdPercent": 100,
            "imageGCLowThresholdPercent": 99,
            "localStorageCapacityIsolation": False,
            "serializeImagePulls": False,
        }  # fmt: skip
        path = self.root / "kubelet.yaml"
        path.write_text(yaml.safe_dump(config))
        self._start(
            "kubelet",
            [
                str(BIN / "kubelet"),
                "--config", str(path),
                "--kubeconfig", str(self.pki / "node.kubeconfig"),
                "--root-dir", str(self.root / "kubelet"),
                "--cert-dir", str(self.root / "kubelet-pki"),
                "--hostname-override", NODE,
                "--node-ip", NODE_IP,
            ],
        )  # fmt: skip

    def _proxy_and_dns(self) -> None:
        proxy = {
            "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
            "kind": "KubeProxyConfiguration",
            "clientConnection": {"kubeconfig": str(self.admin)},
            "mode": "iptables",
            "clusterCIDR": POD_CIDR,
            "hostnameOverride": NODE,
            "bindAddress": NODE_IP,
            "healthzBindAddress": "127.0.0.1:10256",
            "metricsBindAddress": "127.0.0.1:10249",
            # 0: leave the kernel's conntrack settings (shared with the machine) alone.
            "conntrack": {
                "maxPerCore": 0, "min": 0,
                "tcpEstablishedTimeout": "0s", "tcpCloseWaitTimeout": "0s",
            },
        }  # fmt: skip
        path = self.root / "kube-proxy.yaml"
        path.write_text(yaml.safe_dump(proxy))
        self._start("kube-proxy", [str(BIN / "kube-proxy"), "--config", str(path)])
        corefile = self.root / "Corefile"
        corefile.write_text(
            f""".:53 {{
    bind {NODE_IP}
    errors
    kubernetes cluster.local in-addr.arpa ip6.arpa {{
        kubeconfig {self.admin} test
        pods insecure
        fallthrough in-addr.arpa ip6.arpa
    }}
    cache 5
}}
"""
        )
        self._start("coredns", [str(BIN / "coredns"), "-conf", str(corefile)])

    def _wait_node_ready(self) -> None:
        def ready() -> bool:
            out = self.kubectl("get", "node", NODE, "-o", "json", check=False)
            if not out:
                return False
            conditions = json.loads(out)["status"].get("conditions", [])
            return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)

        self._until(ready, 120, None)

    def _until(self, condition: Any, timeout: float, process: Process | None) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            if process is not None and not process.alive():
                raise StartupError(f"{process.name} stopped; its log ends:\n{process.log_tail()}")
            if time.monotonic() > deadline:
                tails = "\n".join(f"--- {p.name}\n{p.log_tail(15)}" for p in self._processes)
                raise StartupError(f"the test cluster did not come up in {timeout:.0f} s\n{tails}")
            time.sleep(0.5)

    # -- stop -------------------------------------------------------------------------

    def stop(self) -> None:
        if self._keeper is not None:
            self._keeping.set()
            self._keeper.join()
            self._keeper = None
        if self._inside is not None:
            self._inside.shutdown()
            self._inside = None
        kubelet = [p for p in self._processes if p.name == "kubelet"]
        for process in kubelet:
            process.stop(grace=15)
        # The pods' containers, before containerd goes: their shims are runc's.
        if self.containerd_socket.exists():
            for task in self.ctr("tasks", "list", "-q", check=False).split():
                self.ctr("tasks", "kill", "--signal", "SIGKILL", task, check=False)
            self._wait_tasks_gone()
        for process in reversed(self._processes):
            process.stop(grace=15)
        self._processes.clear()
        self._kill_shims()
        self._unmount()
        self._remove_cgroups()
        self._remove_log_links()
        for name, value in self._sysctls.items():
            Path("/proc/sys", name).write_text(value)
        subprocess.run(["ip", "netns", "delete", self.namespace], capture_output=True)

    def _wait_tasks_gone(self) -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            listing = self.ctr("tasks", "list", check=False).splitlines()[1:]
            if not any("RUNNING" in line for line in listing):
                return
            time.sleep(0.5)

    def _kill_shims(self) -> None:
        """containerd's shims outlive it by design; the ones serving this cluster go."""
        marker = str(self.containerd_socket)
        for proc in Path("/proc").iterdir():
            if not proc.name.isdigit():
                continue
            try:
                cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue
            if "containerd-shim" in cmdline and marker in cmdline:
                try:
                    os.kill(int(proc.name), 9)
                except ProcessLookupError:
                    pass

    def mounts(self) -> list[str]:
        return mounts_under(self.root)

    def _unmount(self) -> None:
        unmount_under(self.root, rounds=3)

    def _remove_log_links(self) -> None:
        """The links the kubelet makes in /var/log/containers (a path it does not let
        one change) to the pods' logs in the cluster's folder."""
        links = Path("/var/log/containers")
        if not links.is_dir():
            return
        for link in links.iterdir():
            if link.is_symlink() and os.readlink(link).startswith(str(self.root)):
                link.unlink()
        if not any(links.iterdir()):
            links.rmdir()

    def _remove_cgroups(self) -> None:
        """The kubelet's `kubepods` hierarchy in each cgroup controller, deepest first."""
        for controller in Path("/sys/fs/cgroup").iterdir():
            top = controller / "kubepods"
            if not top.is_dir():
                continue
            folders = sorted((p for p in top.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts))
            for folder in [*folders, top]:
                try:
                    folder.rmdir()
                except OSError:
                    pass

    def cgroups_left(self) -> list[str]:
        return [
            str(c / "kubepods")
            for c in Path("/sys/fs/cgroup").iterdir()
            if (c / "kubepods").exists()
        ]


def _qualified(image: str) -> str:
    """The name containerd keeps an image under (`threadhost:0.1.0` is
    `docker.io/library/threadhost:0.1.0`)."""
    first = image.split("/", 1)[0]
    if "/" in image and ("." in first or ":" in first or first == "localhost"):
        return image
    return f"docker.io/{image}" if "/" in image else f"docker.io/library/{image}"
