#!/usr/bin/env bash
# helm-lint.sh: the offline checks of the Helm chart k8s/courier (make helm-lint, part of make test).
#   1. helm lint --strict with each scenario's values (values.yaml, values-dev.yaml, values-prod.yaml, ...)
#   2. helm template of each scenario into $RENDERED_DIR/<scenario>.yaml (default .run/rendered)
#   3. kubectl-validate of those manifests against Kubernetes 1.30's built-in schemas
#   4. tests/deploy: Go rules on the manifests (probes, resources, non-root security context, images that
#      are skaffold's artifacts, ws-edge's POD_NAME and drain time, references, hooks, Workload Identity),
#      and mutation tests proving each rule fails on a broken manifest
#   5. guards: settings the chart must refuse (each must fail helm template with its message)
#   The "monitoring" scenario renders the alert rules (PrometheusRule, GMP Rules/GlobalRules) and the Grafana
#   dashboards; tests/deploy runs promtool's checks and unit tests on the rules (TestPromtoolRules).
# Tools are installed into .tools/bin on first use (go install; no network beyond the Go module proxy).
#
# helm-lint.sh --rendered DIR runs only steps 3 and 4 on DIR/*.yaml (check-deploy.sh: skaffold's output).
set -euo pipefail
cd "$(dirname "$0")/.."

KUBE_VERSION=1.30.0
CHART=k8s/courier
OUT="${RENDERED_DIR:-.run/rendered}"

tool() { # tool NAME PACKAGE@VERSION: prints the path of .tools/bin/NAME, installing it when absent
  if [ ! -x ".tools/bin/$1" ]; then
    echo "helm-lint: installing $1 ($2) into .tools/bin, once" >&2
    GOBIN="$PWD/.tools/bin" GOWORK=off nice -n 10 go install "$2" >&2
  fi
  echo "$PWD/.tools/bin/$1"
}
HELM="$(tool helm helm.sh/helm/v3/cmd/helm@v3.22.0)"
KUBECTL_VALIDATE="$(tool kubectl-validate sigs.k8s.io/kubectl-validate@v0.0.4)"
PROMTOOL="$(tool promtool github.com/prometheus/prometheus/cmd/promtool@v0.316.0)"
REQUIRE_MONITORING=0

# Scenario name -> helm arguments. "defaults" is values.yaml with only what it requires.
SCENARIOS=(defaults dev prod prod-pinned monitoring load)
args_for() {
  case "$1" in
    defaults) echo "--set gcp.project=courier-example --set auth.jwksURL=https://example.com/jwks.json \
      --set auth.issuer=https://example.com --set auth.audience=courier-example" ;;
    dev) echo "-f $CHART/values-dev.yaml" ;;
    prod) echo "-f $CHART/values-prod.yaml" ;;
    # What a release pipeline passes: a registry, a tag, digests, extra monitoring.
    prod-pinned) echo "-f $CHART/values-prod.yaml --set image.registry=europe-west1-docker.pkg.dev/courier-prod/courier \
      --set image.tag=v1.2.3 --set wsEdge.image.digest=sha256:$(printf '0%.0s' {1..64}) \
      --set metrics.serviceMonitor.enabled=true --set auth.hs256.enabled=false" ;;
    # Every monitoring object, both Prometheus flavours (the promtool tests expect this project and namespace).
    monitoring) echo "-f $CHART/values-prod.yaml --set gcp.project=courier-example --set metrics.serviceMonitor.enabled=true \
      --set metrics.prometheusRule.enabled=true --set metrics.prometheusRule.pubsub=true --set metrics.gmpRules.enabled=true \
      --set metrics.dashboards.enabled=true" ;;
    # What skaffold's "load" profile deploys: the dev release, its dashboards, and k8s/loadgen/job.yaml (appended below).
    load) echo "-f $CHART/values-dev.yaml --set metrics.dashboards.enabled=true" ;;
  esac
}

# check_rendered DIR: kubectl-validate, then the tests/deploy rules, on DIR/*.yaml.
check_rendered() {
  local dir rc=0
  dir="$(cd "$1" && pwd)"
  echo "== kubectl-validate --version ${KUBE_VERSION%.*} ($dir)"
  # Built-in kinds only: the CRD kinds (PodMonitoring, ServiceMonitor, BackendConfig, ManagedCertificate)
  # have no schema offline; tests/deploy checks what they reference.
  local vdir; vdir="$(mktemp -d)"
  for f in "$dir"/*.yaml; do
    awk '
      function flush() { if (doc ~ /(^|\n)kind: / && !crd) printf "---\n%s", doc; doc = ""; crd = 0 }
      /^---/ { flush(); next }
      /^apiVersion: (monitoring\.googleapis\.com|monitoring\.coreos\.com|cloud\.google\.com|networking\.gke\.io)\// { crd = 1 }
      { doc = doc $0 "\n" }
      END { flush() }
    ' "$f" >"$vdir/$(basename "$f")"
  done
  "$KUBECTL_VALIDATE" --version "${KUBE_VERSION%.*}" "$vdir" || rc=1
  rm -rf "$vdir"
  echo "== go test ./tests/deploy (rules on $dir)"
  (cd tests/deploy && COURIER_RENDERED_DIR="$dir" COURIER_REQUIRE_RENDERED=1 GOWORK=off \
    COURIER_PROMTOOL="$PROMTOOL" COURIER_REQUIRE_MONITORING="$REQUIRE_MONITORING" \
    go test -count=1 ${GOTESTFLAGS:-} ./...) || rc=1
  return $rc
}

if [ "${1:-}" = "--rendered" ]; then
  check_rendered "${2:?usage: helm-lint.sh --rendered DIR}"
  exit
fi

rm -rf "$OUT"; mkdir -p "$OUT"
status=0
for s in "${SCENARIOS[@]}"; do
  # shellcheck disable=SC2046 # the arguments are meant to split
  echo "== helm lint --strict ($s)"
  "$HELM" lint --strict --quiet --kube-version "$KUBE_VERSION" "$CHART" $(args_for "$s") || status=1
  echo "== helm template ($s) > $OUT/$s.yaml"
  # shellcheck disable=SC2046
  "$HELM" template courier "$CHART" --namespace courier --kube-version "$KUBE_VERSION" $(args_for "$s") >"$OUT/$s.yaml" || status=1
  if [ "$s" = load ]; then # skaffold gives the Job its courierctl build's tag; a fixed tag stands for it here
    printf -- '---\n# Source: k8s/loadgen/job.yaml\n' >>"$OUT/$s.yaml"
    sed 's|^\( *image: courierctl\)$|\1:loadgen-check|' k8s/loadgen/job.yaml >>"$OUT/$s.yaml"
  fi
done
[ $status -eq 0 ] || { echo "helm-lint: lint or template failed" >&2; exit 1; }

REQUIRE_MONITORING=1 check_rendered "$OUT" || status=1

echo "== guards: settings the chart must refuse"
refuse() { # refuse "MESSAGE FRAGMENT" HELM ARGS...: helm template must fail with that message
  local want=$1; shift
  local out
  if out=$("$HELM" template courier "$CHART" --kube-version "$KUBE_VERSION" -f "$CHART/values-prod.yaml" "$@" 2>&1); then
    echo "helm-lint: the chart accepted $* (want a failure containing: $want)" >&2; status=1
  elif ! grep -qF -- "$want" <<<"$out"; then
    echo "helm-lint: $* failed for another reason: $out (want: $want)" >&2; status=1
  else
    echo "refused: $* -> $want"
  fi
}
refuse "must exceed wsEdge.shutdownTimeoutSeconds" --set wsEdge.terminationGracePeriodSeconds=20
refuse "set auth.jwksURL (production) or enable auth.hs256" --set auth.jwksURL=
refuse "auth.hs256.secret must be at least 16 bytes" --set auth.hs256.enabled=true --set auth.hs256.secret=short
refuse "gcp.project is required" --set gcp.project=
refuse "additional properties 'replica' not allowed" --set apiGateway.replica=3
refuse "maxDeliveryAttempts" --set pubsub.ingress.maxDeliveryAttempts=3
refuse "the worker would dead-letter messages the gateway accepted" \
  --set apiGateway.env.MAX_RECIPIENTS=200 --set pipelineWorker.env.WORKER_MAX_RECIPIENTS=100
# Identity and exposure (issue 19).
refuse "auth.jwksURL needs both auth.issuer and auth.audience" --set auth.issuer=
refuse "auth.jwksURL needs both auth.issuer and auth.audience" --set auth.audience=
refuse "together with ingress.enabled" --set auth.hs256.enabled=true --set auth.hs256.secret=0123456789abcdef0123
refuse "for development clusters only" --set ingress.enabled=false --set auth.hs256.enabled=true \
  --set auth.hs256.secret=0123456789abcdef0123 --set auth.hs256.devTokens=true
refuse "auth.hs256.devTokens needs auth.hs256.enabled" --set devCluster=true --set auth.hs256.devTokens=true
refuse "networkPolicy.ingressFrom is empty" --set 'networkPolicy.ingressFrom=null'
refuse "'/' does not match pattern '^/v1/" --set 'ingress.apiPaths[0].path=/' --set 'ingress.apiPaths[0].pathType=Prefix'

[ $status -eq 0 ] && echo "helm-lint: ok (${SCENARIOS[*]})"
exit $status
