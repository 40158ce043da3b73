# Build a static binary, then ship it alone (with CA certificates for
# HuggingFace) in an empty image.
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/dashboard . \
 && mkdir -p /out/workspace

FROM scratch
COPY --from=build /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/
COPY --from=build /out/dashboard /dashboard
COPY --from=build /out/workspace /workspace
VOLUME /workspace
EXPOSE 8082
ENV DASHBOARD_ADDR=:8082
# The binary checks itself: scratch has no curl or wget.
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 CMD ["/dashboard", "healthcheck"]
ENTRYPOINT ["/dashboard"]
