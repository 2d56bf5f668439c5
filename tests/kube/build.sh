#!/usr/bin/env bash
# The binaries of a one-node Kubernetes cluster, for ./dev test-k8s (tests/kube/cluster.py),
# from registries only, into .tools/kube (git-ignored), once per machine:
#   - kube-apiserver, kube-controller-manager, kube-scheduler, kubelet, kube-proxy and kubectl, built
#     from the official k8s.io/kubernetes module through the Go module proxy;
#   - kube-proxy too (Services' virtual addresses), and CoreDNS from its module (Services'
#     names): both run as processes of the node, beside the kubelet;
#   - helm, from the helm.sh/helm/v4 module (it installs Dapr's own chart);
#   - etcd and the CNI plugins, from Debian's packages, unpacked without installing
#     (so no init script starts them); containerd and runc are Debian's, installed by apt.
# Prints the bin folder on its last line.
set -euo pipefail

KUBERNETES=v1.34.4 # v1.35's kubelet refuses cgroup v1, which these machines have
HELM=helm.sh/helm/v4/cmd/helm@v4.3.2
COREDNS=github.com/coredns/coredns@v1.15.0
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)/.tools/kube"
bin="$root/bin"
mkdir -p "$bin"
say() { printf '[kube] %s\n' "$*" >&2; }

kube_tools=(kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy kubectl)
missing=()
for t in "${kube_tools[@]}"; do [ -x "$bin/$t" ] || missing+=("$t"); done
if [ ${#missing[@]} -gt 0 ]; then
  # The module's zip has no staging modules (k8s.io/api, client-go, ...): its go.mod points
  # them at ./staging/src, so a copy points them at their published versions instead.
  say "building ${missing[*]} $KUBERNETES from the k8s.io/kubernetes module"
  started=$SECONDS
  module="$(go mod download -json "k8s.io/kubernetes@$KUBERNETES" | python3 -c 'import json,sys; print(json.load(sys.stdin)["Dir"])')"
  src="$root/src"
  rm -rf "$src" && cp -r "$module" "$src" && chmod -R u+w "$src" && rm -f "$src"/go.work*
  staging="${KUBERNETES/v1./v0.}"
  sed -i -E "s#^(\s*)(k8s\.io/[a-z0-9-]+) => \./staging/src/k8s\.io/[a-z0-9-]+#\1\2 => \2 $staging#" "$src/go.mod"
  ldflags="-s -w -X k8s.io/component-base/version.gitVersion=$KUBERNETES"
  ldflags+=" -X k8s.io/client-go/pkg/version.gitVersion=$KUBERNETES"
  for t in "${missing[@]}"; do
    say "compiling $t ($((SECONDS - started)) s so far)"
    (cd "$src" && GOFLAGS=-mod=mod GOTOOLCHAIN=local CGO_ENABLED=0 \
      go build -trimpath -ldflags "$ldflags" -o "$bin/$t.tmp" "./cmd/$t")
    mv "$bin/$t.tmp" "$bin/$t"
  done
  rm -rf "$src"
  say "built in $((SECONDS - started)) s"
fi

if [ ! -x "$bin/helm" ]; then
  say "building helm ($HELM)"
  GOBIN="$bin" GOTOOLCHAIN=local CGO_ENABLED=0 go install -trimpath -ldflags "-s -w" "$HELM"
fi

if [ ! -x "$bin/coredns" ]; then
  say "building coredns ($COREDNS)"
  GOBIN="$bin" GOTOOLCHAIN=local CGO_ENABLED=0 go install -trimpath -ldflags "-s -w" "$COREDNS"
fi

# Debian's etcd and CNI plugins, unpacked into .tools/kube/debs.
if [ ! -x "$bin/etcd" ] || [ ! -x "$root/cni/bridge" ]; then
  say "unpacking etcd-server and containernetworking-plugins (Debian)"
  debs="$root/debs"
  rm -rf "$debs" && mkdir -p "$debs/x"
  fetch() { (cd "$debs" && apt-get download -qq -o APT::Sandbox::User=root etcd-server containernetworking-plugins); }
  fetch || { apt-get update -qq && fetch; } # a new machine may have no package lists yet
  for deb in "$debs"/*.deb; do dpkg-deb -x "$deb" "$debs/x"; done
  cp "$debs/x/usr/bin/etcd" "$bin/etcd"
  mkdir -p "$root/cni" && cp "$debs"/x/usr/lib/cni/* "$root/cni/"
  rm -rf "$debs"
fi
echo "$bin"
