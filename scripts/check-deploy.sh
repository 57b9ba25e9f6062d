#!/usr/bin/env bash
# check-deploy.sh: the deployment checks that need skaffold (make check-deploy; kept out of make test
# because building skaffold takes about eight minutes the first time).
#   1. scripts/helm-lint.sh (the chart alone)
#   2. builds skaffold v2.16.1 from the tool module tools/skaffold into .tools/bin, once
#   3. skaffold diagnose --yaml-only for the dev and prod profiles: the config parses, the profiles apply
#      (the full diagnose also sizes each Docker context, which needs the registry to inspect base images)
#   4. skaffold render --offline=true --digest-source=tag for dev and prod, without a cluster or a
#      Docker daemon: the manifests skaffold would deploy, with its own image references
#   5. kubectl-validate and the tests/deploy rules on skaffold's output (image names = artifacts)
set -euo pipefail
cd "$(dirname "$0")/.."

SKAFFOLD_VERSION=v2.16.1
OUT="${SKAFFOLD_RENDERED_DIR:-.run/skaffold-rendered}"

scripts/helm-lint.sh

SKAFFOLD="$PWD/.tools/bin/skaffold"
if [ ! -x "$SKAFFOLD" ] || ! "$SKAFFOLD" version 2>/dev/null | grep -qx "$SKAFFOLD_VERSION"; then
  echo "check-deploy: building skaffold $SKAFFOLD_VERSION into .tools/bin (once, ~8 min on 2 cores)" >&2
  (cd tools/skaffold && GOWORK=off nice -n 10 go build -trimpath \
    -ldflags "-X github.com/GoogleContainerTools/skaffold/v2/pkg/skaffold/version.version=$SKAFFOLD_VERSION" \
    -o "$SKAFFOLD" github.com/GoogleContainerTools/skaffold/v2/cmd/skaffold)
fi
# skaffold runs helm from PATH; the chart checks use the same pinned build.
[ -x .tools/bin/helm ] || GOBIN="$PWD/.tools/bin" GOWORK=off nice -n 10 go install helm.sh/helm/v3/cmd/helm@v3.22.0
export PATH="$PWD/.tools/bin:$PATH"
# No prompts (so no metrics opt-in), no update check; render needs no kube context.
SK_FLAGS=(--interactive=false --update-check=false)
mkdir -p .run

rm -rf "$OUT"; mkdir -p "$OUT"
for p in dev prod; do
  echo "== skaffold diagnose -p $p --yaml-only > .run/skaffold-$p.effective.yaml"
  "$SKAFFOLD" diagnose -p "$p" --yaml-only --enable-templating "${SK_FLAGS[@]}" >".run/skaffold-$p.effective.yaml"
  grep -q "k8s/courier/values-$p.yaml" ".run/skaffold-$p.effective.yaml" ||
    { echo "check-deploy: profile $p does not deploy with values-$p.yaml" >&2; exit 1; }
  echo "== skaffold render -p $p --offline=true --digest-source=tag > $OUT/$p.yaml"
  "$SKAFFOLD" render -p "$p" --offline=true --digest-source=tag "${SK_FLAGS[@]}" --output "$OUT/$p.yaml"
done
grep -h 'image:' "$OUT"/*.yaml | sort | uniq -c

scripts/helm-lint.sh --rendered "$OUT"
echo "check-deploy: ok"
