# syntax=docker/dockerfile:1
#
# meshgate's image: one static binary on distroless's static base (CA certificates, tzdata,
# /etc/passwd with nonroot; no shell, no package manager), run as a non-root numeric user.
# It writes nothing outside mounted volumes: the Helm chart (deploy/helm/meshgate) runs it
# with a read-only root filesystem and an emptyDir at /tmp, the temp dir the Nacos client's
# work dir goes under when a Nacos registry is configured.
#
#   make image                                   # docker or podman; IMAGE=..., VERSION=...
#   docker build --build-arg VERSION=v1.2.3 -t meshgate:v1.2.3 .
#   docker run --rm -p 8080:8080 meshgate:v1.2.3 run -c /config/meshgate.yaml   # flags of `meshgate run`
#
# The arguments are the binary's: ENTRYPOINT is /meshgate, CMD its default arguments.
# The final base can be swapped for scratch (--build-arg BASE_IMAGE=scratch); scratch has no
# CA certificates (upstream TLS without ca_file then fails) and no /tmp (mount one).

ARG GO_VERSION=1.26
ARG BASE_IMAGE=gcr.io/distroless/static-debian12:nonroot

FROM --platform=$BUILDPLATFORM golang:${GO_VERSION}-bookworm AS build
ARG TARGETOS
ARG TARGETARCH
ARG VERSION=dev
WORKDIR /src
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY . .
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 GOOS=${TARGETOS} GOARCH=${TARGETARCH} GOFLAGS=-buildvcs=false \
    go build -trimpath \
      -ldflags "-s -w -X github.com/meshgate/meshgate/cmd/meshgate/cli.version=${VERSION}" \
      -o /out/meshgate ./cmd/meshgate

FROM ${BASE_IMAGE}
ARG VERSION=dev
ARG COMMIT=""
LABEL org.opencontainers.image.title="meshgate" \
      org.opencontainers.image.description="gRPC/Triple-first API and mesh gateway for the Dubbo ecosystem" \
      org.opencontainers.image.source="https://github.com/meshgate/meshgate" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${COMMIT}"
COPY --from=build /out/meshgate /meshgate
# 65532 is distroless's nonroot; numeric, so that runAsNonRoot can check it.
USER 65532:65532
# Gateway listeners (as istio-ingressgateway's 8080/8443), admin, readiness (status-port).
EXPOSE 8080 8443 15000 15021
ENTRYPOINT ["/meshgate"]
# Without -c: the embedded demo config (on the container's loopback; `docker run --rm IMAGE
# version` is a smoke test). The chart passes its own arguments.
CMD ["run"]
