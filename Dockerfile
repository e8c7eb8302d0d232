# syntax=docker/dockerfile:1
# One multi-stage build for every Go binary of the platform. The CMD build
# argument names the command's package directory, e.g.
#   docker build --build-arg CMD=services/order/cmd/order -t flashsale/order .
# docker-compose.yml builds each service this way. A new service (payment,
# channelsim, ...) needs no change here: only its block in the compose file.

# Base images are pinned by digest (the tag says which release, the digest
# fixes the bytes), so a rebuild of any commit builds on the same images;
# docs/operations.md, "Pinned images", says how to move a pin.
FROM golang:1.26.8-bookworm@sha256:a688600ca24f8a4d3ca77f95b0dd40704a9fc787c826660eb7ba0b641b8b175d AS build
ARG CMD
WORKDIR /src
ENV CGO_ENABLED=0 GOTOOLCHAIN=local GOFLAGS=-buildvcs=false
# The module and build caches are cache mounts, so a rebuild after a code
# change neither downloads modules again nor recompiles what did not change.
COPY . .
RUN --mount=type=cache,target=/root/go/pkg/mod \
    --mount=type=cache,target=/root/.cache/go-build \
    test -n "${CMD}" || { echo "build with --build-arg CMD=<path of the command>"; exit 1; }; \
    go build -trimpath -ldflags="-s -w" -o /out/app "./${CMD}" && \
    go build -trimpath -ldflags="-s -w" -o /out/healthcheck ./platform/cmd/healthcheck

# Static binaries on distroless: no shell, no package manager, a non-root
# user; the healthcheck binary is the containers' probe.
FROM gcr.io/distroless/static-debian12:nonroot@sha256:afa5c872c891853ca7fcf1f12c3edb23f7eeef36189728842dd51042ff57f7ab
COPY --from=build /out/app /app
COPY --from=build /out/healthcheck /healthcheck
# Numeric, so the kubelet can verify runAsNonRoot: 65532 is the
# distroless "nonroot" user; deploy/k8s runs every pod as 65532:65532
# (deploy/check holds the two together).
USER 65532:65532
ENTRYPOINT ["/app"]
