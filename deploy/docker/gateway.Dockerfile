# syntax=docker/dockerfile:1
# portcullis-gateway. Build from the repository root:
#   docker build -f deploy/docker/gateway.Dockerfile -t portcullis-gateway .
# Runs as uid 65532 on distroless (glibc, CA certificates, no shell).

ARG RUST_VERSION=1.95

FROM docker.io/library/rust:${RUST_VERSION}-bookworm AS build
# protoc for the proto crate; cmake and clang for aws-lc-sys.
RUN apt-get update \
 && apt-get install -y --no-install-recommends protobuf-compiler cmake clang \
 && rm -rf /var/lib/apt/lists/*
ENV PROTOC=/usr/bin/protoc CARGO_TERM_COLOR=never
WORKDIR /src
# Every workspace member must be present for a --workspace --locked build.
COPY Cargo.toml Cargo.lock ./
COPY proto proto
COPY gateway gateway
COPY verifier verifier
COPY tests tests
COPY loadtest/baseline loadtest/baseline
# The binary ships without its line tables (about 19 MB gateway, 26 MB
# verifier instead of 108 and 169); the debug info stays in this stage as
# /out/debug/portcullis-gateway.debug, linked by .gnu_debuglink, for symbolising
# backtraces (docker build --target build, then copy it out).
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --workspace --locked \
 && install -D -m 0755 target/release/portcullis-gateway /out/portcullis-gateway \
 && mkdir -p /out/debug \
 && objcopy --only-keep-debug /out/portcullis-gateway /out/debug/portcullis-gateway.debug \
 && objcopy --strip-debug --strip-unneeded \
      --add-gnu-debuglink=/out/debug/portcullis-gateway.debug /out/portcullis-gateway

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /out/portcullis-gateway /usr/local/bin/portcullis-gateway
USER 65532:65532
EXPOSE 8443
ENTRYPOINT ["/usr/local/bin/portcullis-gateway"]
