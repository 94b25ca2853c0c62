#!/usr/bin/env bash
# Builds the images of the example specs locally, from Debian's busybox-static, without any
# registry (the specs say imagePullPolicy: Never):
#   flowforge-example/hello:1              busybox httpd on 8080: / names the example, /health answers "ok"
#                                          (hello-http.yaml, hello-stopped.yaml)
#   flowforge-example/hello-healthcheck:1  the same with a Docker HEALTHCHECK on /health
#                                          (hello-healthcheck.yaml)
# Idempotent: existing images are kept unless FORCE=1. `--list` prints the image names.
set -euo pipefail
image_tool="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/scripts/busybox-image.sh"

HELLO=flowforge-example/hello:1
HELLO_HEALTHCHECK=flowforge-example/hello-healthcheck:1

if [ "${1:-}" = --list ]; then
  printf '%s\n' "$HELLO" "$HELLO_HEALTHCHECK"
  exit 0
fi
[ $# -eq 0 ] || { echo "usage: $0 [--list]" >&2; exit 2; }

bash "$image_tool" check

# Bump when an image changes, so machines that kept an older build rebuild it.
VERSION=1
have() {
  [ "${FORCE:-0}" != 1 ] || return 1
  bash "$image_tool" has "$1" "FLOWFORGE_EXAMPLE_IMAGE=$VERSION"
}

if ! have "$HELLO"; then
  bash "$image_tool" http "$HELLO" \
    "Hello from FlowForge: the hello-http example ($HELLO; examples/hello-http.yaml, also used by hello-stopped.yaml)" \
    --change "ENV FLOWFORGE_EXAMPLE_IMAGE=$VERSION"
  echo "built $HELLO"
fi

if ! have "$HELLO_HEALTHCHECK"; then
  bash "$image_tool" healthcheck "$HELLO_HEALTHCHECK" "$HELLO" \
    --page "Hello from FlowForge: the hello-healthcheck example ($HELLO_HEALTHCHECK; examples/hello-healthcheck.yaml)" \
    --interval=5s --timeout=2s --start-period=2s --retries=3
  echo "built $HELLO_HEALTHCHECK"
fi
