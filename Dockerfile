# syntax=docker/dockerfile:1
# Every Courier image: one Go module of this repository compiled into a static binary on distroless.
# Build arguments pick the image:
#   MODULE               the module directory (services/api-gateway, services/pipeline-worker, services/ws-edge,
#                        cmd/courierctl); its root package is the binary's main
#   PORTS                the ports to EXPOSE, space-separated (documentation: the chart declares the container
#                        ports); empty for none
#   VERSION              stamped into main.version (skaffold passes its git-commit tag)
#   SKAFFOLD_GO_GCFLAGS  set by `skaffold debug`: symbols kept, optimisations off, for Delve
#
# Build from the repository root: each module imports ../../pkg and ../../proto through replace lines, so the
# context must hold all three.
#   docker build --build-arg MODULE=services/ws-edge --build-arg PORTS=8081 \
#     --build-arg VERSION=$(git describe --always --dirty) -t courier-ws-edge .
# skaffold.yaml builds every image this way; tests/deploy checks each artifact's build arguments.

FROM --platform=$BUILDPLATFORM golang:1.26.8-bookworm AS build
ARG TARGETOS TARGETARCH
ARG MODULE
# Without MODULE the first COPY would fail with a message that does not say what is missing.
RUN test -n "${MODULE}" || { echo "set --build-arg MODULE=<module directory>, e.g. services/ws-edge" >&2; exit 1; }
WORKDIR /src
# Module files first: the dependency download is cached until a go.mod changes.
COPY pkg/go.mod pkg/go.sum pkg/
COPY proto/go.mod proto/go.sum proto/
COPY ${MODULE}/go.* ${MODULE}/
WORKDIR /src/${MODULE}
ENV GOWORK=off CGO_ENABLED=0
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY pkg/ /src/pkg/
COPY proto/ /src/proto/
COPY ${MODULE}/ /src/${MODULE}/
ARG VERSION=dev
ARG SKAFFOLD_GO_GCFLAGS=""
# Symbols are stripped unless a debugger is coming (skaffold debug sets the gcflags).
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    ldflags="-X main.version=${VERSION}"; \
    if [ -z "${SKAFFOLD_GO_GCFLAGS}" ]; then ldflags="-s -w ${ldflags}"; fi; \
    GOOS=$TARGETOS GOARCH=$TARGETARCH go build -trimpath -gcflags="${SKAFFOLD_GO_GCFLAGS}" \
      -ldflags="${ldflags}" -o /out/courier .

FROM gcr.io/distroless/static-debian12:nonroot
ARG MODULE
ARG VERSION=dev
ARG PORTS=""
# One path in every image: an exec-form ENTRYPOINT cannot expand a build argument. The labels say which
# module and version the binary is.
COPY --from=build /out/courier /usr/local/bin/courier
LABEL org.opencontainers.image.title="${MODULE}" org.opencontainers.image.version="${VERSION}"
# skaffold debug recognises a Go image by this variable; it is also Go's default.
ENV GOTRACEBACK=single
USER nonroot:nonroot
EXPOSE ${PORTS}
ENTRYPOINT ["/usr/local/bin/courier"]
