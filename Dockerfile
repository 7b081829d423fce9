# syntax=docker/dockerfile:1
FROM rust:1-bookworm AS builder
WORKDIR /src
COPY Cargo.toml Cargo.lock build.rs ./
COPY src ./src
COPY migrations ./migrations
# Cargo.toml declares the membership bench: cargo parses every target of the
# manifest before it builds one, so the bench source must be here too.
COPY benches ./benches
RUN cargo build --release --locked --bin scimd

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates curl \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --create-home --home-dir /var/lib/scimd scimd
COPY --from=builder /src/target/release/scimd /usr/local/bin/scimd
USER scimd
WORKDIR /var/lib/scimd
ENV SCIMD_BIND=0.0.0.0:8080 \
    DATABASE_URL=sqlite:///var/lib/scimd/scimd.db \
    SCIMD_LOG_FORMAT=json
VOLUME ["/var/lib/scimd"]
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=3s --start-period=10s --retries=3 \
  CMD curl -fsS http://127.0.0.1:8080/healthz || exit 1
ENTRYPOINT ["/usr/local/bin/scimd"]
CMD ["serve"]
