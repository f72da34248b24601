#!/usr/bin/env bash
# A real Kubernetes control plane on loopback for the operator's and chart's tests.
#
#   scripts/kube.sh build        build kube-apiserver and kube-controller-manager once, print their dir
#   scripts/kube.sh build-node   also kubelet and kube-scheduler (scripts/node.sh, best effort)
#   scripts/kube.sh start DIR    start etcd + kube-apiserver + kube-controller-manager in DIR
#   scripts/kube.sh stop DIR     stop them by PID
#
# The binaries come from Debian bookworm's `kubernetes` source package (upstream v1.20.2 with its
# vendor/ tree), built with Debian's Go: no registry ships a kube-apiserver binary, and nothing is
# downloaded but Debian packages. They are cached in ~/.cache/videocall-kube/<version>, so a warm
# machine starts a cluster in seconds. `start` makes a CA and serving certificates (openssl), a
# static token for the admin, service-account keys, picks free loopback ports, and writes:
#   DIR/kubeconfig   admin (system:masters) over HTTPS with the CA
#   DIR/cluster.env  KUBE_API_URL, KUBE_CA, KUBE_ADMIN_TOKEN, KUBECONFIG, pids
# RBAC is on (--authorization-mode=Node,RBAC). There is no scheduler, kubelet or container runtime:
# Pods stay Pending; controllers (StatefulSet, garbage collector, tokens, …) run.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
version=1.20.2
cache="${VIDEOCALL_KUBE_DIR:-$HOME/.cache/videocall-kube}/$version"
binaries=(kube-apiserver kube-controller-manager)

build() {
  [ "${1:-}" = node ] && binaries+=(kubelet kube-scheduler)
  local missing=()
  for b in "${binaries[@]}"; do [ -x "$cache/$b" ] || missing+=("$b"); done
  need_apt etcd-server openssl curl
  if [ ${#missing[@]} -eq 0 ]; then echo "$cache"; return; fi
  need_apt golang-go dpkg-dev golang-github-modern-go-reflect2-dev \
    golang-github-json-iterator-go-dev golang-github-modern-go-concurrent-dev
  local work; work=$(mktemp -d)
  log "building ${missing[*]} v$version from Debian's kubernetes source package (about 11 minutes on 2 cores)"
  mkdir -p "$work/apt/lists/partial" "$work/apt/sources.list.d" "$work/src" "$cache"
  # The machine's own deb822 sources with source packages enabled, in a private apt state.
  for f in /etc/apt/sources.list.d/*.sources; do
    sed 's/^Types: deb$/Types: deb deb-src/' "$f" >"$work/apt/sources.list.d/$(basename "$f")"
  done
  local apt_opts=(-o APT::Sandbox::User=root -o Dir::Etc::SourceList=/dev/null -o Dir::Etc::SourceParts="$work/apt/sources.list.d"
    -o Dir::State::Lists="$work/apt/lists")
  apt-get "${apt_opts[@]}" update -qq
  (cd "$work/src" && apt-get "${apt_opts[@]}" source --download-only -qq kubernetes >/dev/null)
  tar -xzf "$work"/src/kubernetes_*.orig.tar.gz -C "$work/src"
  local tree="$work/src/kubernetes-$version"
  # Go >= 1.18: the vendored reflect2 1.0.1 segfaults; Debian's reflect2 1.0.2 and
  # json-iterator 1.1.12 replace them.
  for d in modern-go/reflect2 json-iterator/go; do
    rm -rf "$tree/vendor/github.com/$d"
    cp -rL "/usr/share/gocode/src/github.com/$d" "$tree/vendor/github.com/$d"
  done
  find "$tree/vendor/github.com/modern-go/reflect2" "$tree/vendor/github.com/json-iterator/go" \
    \( -name '*_test.go' -o -name go.mod -o -name go.sum \) -delete
  # Go >= 1.19: go-openapi's zero-value comparison rejects `default: ""` in CRD schemas; later
  # upstream releases test `data == nil` only.
  for f in vendor/github.com/go-openapi/validate/type.go \
    staging/src/k8s.io/kube-openapi/pkg/validation/validate/type.go \
    vendor/k8s.io/kube-openapi/pkg/validation/validate/type.go; do
    [ -f "$tree/$f" ] && sed -i 's/if data == nil || reflect.DeepEqual(reflect.Zero(reflect.TypeOf(data)), reflect.ValueOf(data)) {/if data == nil {/' "$(readlink -f "$tree/$f")"
  done
  local what=""
  for b in "${missing[@]}"; do what="$what cmd/$b"; done
  (cd "$tree" && GOPROXY=off KUBE_GIT_VERSION="v$version" KUBE_GIT_TREE_STATE=clean \
    HOME="$work/home" GOCACHE="$work/gocache" CGO_ENABLED=0 make WHAT="${what# }" >"$work/build.log" 2>&1) \
    || { tail -n 40 "$work/build.log" >&2; rm -rf "$work"; exit 1; }
  for b in "${missing[@]}"; do install -m 0755 "$tree/_output/bin/$b" "$cache/$b"; done
  rm -rf "$work"
  log "built into $cache"
  echo "$cache"
}

start() {
  local dir=$1
  local bin; bin=$(build)
  mkdir -p "$dir/pki" "$dir/etcd" "$dir/logs"
  dir=$(cd "$dir" && pwd)
  local pki="$dir/pki"
  local etcd_port etcd_peer api_port
  etcd_port=$(free_port); etcd_peer=$(free_port); api_port=$(free_port)
  # A CA, the API server's serving certificate (127.0.0.1, localhost, the in-cluster names),
  # the service-account signing key and the admin's static token.
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
    -subj "/CN=videocall-test-ca" -keyout "$pki/ca.key" -out "$pki/ca.crt" 2>/dev/null
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=kube-apiserver" \
    -keyout "$pki/apiserver.key" -out "$pki/apiserver.csr" 2>/dev/null
  printf 'subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc\nextendedKeyUsage=serverAuth\n' >"$pki/apiserver.ext"
  openssl x509 -req -in "$pki/apiserver.csr" -CA "$pki/ca.crt" -CAkey "$pki/ca.key" -CAcreateserial \
    -days 2 -extfile "$pki/apiserver.ext" -out "$pki/apiserver.crt" 2>/dev/null
  openssl genrsa -out "$pki/sa.key" 2048 2>/dev/null
  openssl rsa -in "$pki/sa.key" -pubout -out "$pki/sa.pub" 2>/dev/null
  local token; token=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')
  echo "$token,admin,admin,system:masters" >"$pki/tokens.csv"

  /usr/bin/etcd --name test --data-dir "$dir/etcd" \
    --listen-client-urls "http://127.0.0.1:$etcd_port" --advertise-client-urls "http://127.0.0.1:$etcd_port" \
    --listen-peer-urls "http://127.0.0.1:$etcd_peer" --initial-advertise-peer-urls "http://127.0.0.1:$etcd_peer" \
    --initial-cluster "test=http://127.0.0.1:$etcd_peer" \
    --unsafe-no-fsync --log-level warn >"$dir/logs/etcd.log" 2>&1 &
  echo $! >"$dir/etcd.pid"

  "$bin/kube-apiserver" --etcd-servers "http://127.0.0.1:$etcd_port" \
    --bind-address 127.0.0.1 --advertise-address 127.0.0.1 --secure-port "$api_port" --insecure-port 0 \
    --tls-cert-file "$pki/apiserver.crt" --tls-private-key-file "$pki/apiserver.key" \
    --client-ca-file "$pki/ca.crt" --token-auth-file "$pki/tokens.csv" \
    --authorization-mode Node,RBAC --service-cluster-ip-range 10.96.0.0/16 \
    --service-account-key-file "$pki/sa.pub" --service-account-signing-key-file "$pki/sa.key" \
    --service-account-issuer https://kubernetes.default.svc --api-audiences https://kubernetes.default.svc \
    --enable-admission-plugins NamespaceLifecycle,ServiceAccount,DefaultStorageClass,ResourceQuota \
    --allow-privileged --v 1 >"$dir/logs/kube-apiserver.log" 2>&1 &
  echo $! >"$dir/kube-apiserver.pid"

  local url="https://127.0.0.1:$api_port"
  cat >"$dir/kubeconfig" <<KUBECONFIG
apiVersion: v1
kind: Config
clusters:
  - name: test
    cluster:
      server: $url
      certificate-authority: $pki/ca.crt
users:
  - name: admin
    user:
      token: $token
contexts:
  - name: test
    context: {cluster: test, user: admin, namespace: default}
current-context: test
KUBECONFIG
  wait_for "kube-apiserver at $url" 60 curl -sf --cacert "$pki/ca.crt" -H "Authorization: Bearer $token" "$url/readyz" \
    || { tail -n 30 "$dir/logs/kube-apiserver.log" >&2; stop "$dir"; exit 1; }

  # The controller manager: StatefulSets, ReplicaSets, garbage collection, service-account
  # tokens, namespaces, node lifecycle (a node of scripts/node.sh loses its not-ready taint).
  # Controllers that need a cloud or volume plugins are off.
  "$bin/kube-controller-manager" --kubeconfig "$dir/kubeconfig" --secure-port 0 --port 0 \
    --use-service-account-credentials=false --leader-elect=false \
    --service-account-private-key-file "$pki/sa.key" --root-ca-file "$pki/ca.crt" \
    --controllers '*,-nodeipam,-cloud-node-lifecycle,-service,-route,-attachdetach,-persistentvolume-binder,-persistentvolume-expander' \
    --v 1 >"$dir/logs/kube-controller-manager.log" 2>&1 &
  echo $! >"$dir/kube-controller-manager.pid"

  cat >"$dir/cluster.env" <<ENV
KUBE_API_URL=$url
KUBE_CA=$pki/ca.crt
KUBE_ADMIN_TOKEN=$token
KUBECONFIG=$dir/kubeconfig
KUBE_VERSION=$version
ENV
  echo "$dir/kubeconfig"
}

stop() {
  local dir=$1
  for name in kube-controller-manager kube-apiserver etcd; do
    [ -f "$dir/$name.pid" ] || continue
    local pid; pid=$(cat "$dir/$name.pid")
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
    rm -f "$dir/$name.pid"
  done
}

case "${1:-}" in
  build) build ;;
  build-node) build node ;;
  start) [ -n "${2:-}" ] || { echo "usage: $0 start DIR" >&2; exit 2; }; start "$2" ;;
  stop) [ -n "${2:-}" ] || { echo "usage: $0 stop DIR" >&2; exit 2; }; stop "$2" ;;
  *) echo "usage: $0 build | build-node | start DIR | stop DIR" >&2; exit 2 ;;
esac
