#!/usr/bin/env bash
# Builds the test images from a static busybox, without any registry:
#   flowforge-test/http:1, :2        busybox httpd on 8080, /health answers "ok"; exits 0 on SIGTERM
#                                    (a shell as PID 1 with a trap: httpd as PID 1 would ignore it)
#   flowforge-test/http-healthcheck:1  the same with a Docker HEALTHCHECK
#   flowforge-test/unhealthy:1       http:2 with a Docker HEALTHCHECK that never passes
#   flowforge-test/http-volume:1, :2 http with a VOLUME (anonymous volume) at /www/data
#   flowforge-test/crash:1           exits with code 3 after a moment
#   flowforge-test/echo:1            prints one line to stdout and one to stderr, then idles
# Idempotent: existing images are kept unless FORCE=1.
# The busybox rootfs, the httpd image and the HEALTHCHECK variant come from
# scripts/busybox-image.sh, shared with examples/build-image.sh.
set -euo pipefail
image_tool="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)/scripts/busybox-image.sh"
# Debian's busybox-static: one binary that needs no libraries inside the image.
bash "$image_tool" check

# Bump when an image changes, so machines that kept an older build rebuild it.
VERSION=3
have() {
  [ "${FORCE:-0}" != 1 ] || return 1
  bash "$image_tool" has "$1" "FLOWFORGE_TEST_IMAGE=$VERSION"
}

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

for version in 1 2; do
  image=flowforge-test/http:$version
  have "$image" && continue
  bash "$image_tool" http "$image" "hello from version $version" \
    --change "ENV PLUGIN_VERSION=$version" \
    --change "ENV FLOWFORGE_TEST_IMAGE=$VERSION"
  echo "built $image"
done

if ! have flowforge-test/http-healthcheck:1; then
  bash "$image_tool" healthcheck flowforge-test/http-healthcheck:1 flowforge-test/http:1 --interval=1s --timeout=1s --retries=2
  echo "built flowforge-test/http-healthcheck:1"
fi

# A release whose Docker HEALTHCHECK never passes (it fetches a page that does not exist):
# a rollout to it is rolled back once Docker calls it unhealthy.
if ! have flowforge-test/unhealthy:1; then
  printf '%s\n' 'FROM flowforge-test/http:2' \
    'HEALTHCHECK --interval=1s --timeout=1s --retries=2 CMD ["/bin/busybox", "wget", "-q", "-O", "/dev/null", "http://127.0.0.1:8080/missing"]' \
    > "$work/Dockerfile.unhealthy"
  # The legacy builder warns about its deprecation on every build: show its output only on failure.
  output=$(docker build -q -t flowforge-test/unhealthy:1 -f "$work/Dockerfile.unhealthy" "$work" 2>&1) || { printf '%s\n' "$output" >&2; exit 1; }
  echo "built flowforge-test/unhealthy:1"
fi

# An image that declares a VOLUME (an anonymous volume per container) at /www/data, served over HTTP.
for version in 1 2; do
  image=flowforge-test/http-volume:$version
  have "$image" && continue
  bash "$image_tool" http "$image" "hello from volume version $version" \
    --change "ENV PLUGIN_VERSION=$version" \
    --change "ENV FLOWFORGE_TEST_IMAGE=$VERSION" \
    --change 'VOLUME /www/data'
  echo "built $image"
done

if ! have flowforge-test/crash:1; then
  bash "$image_tool" rootfs "$work/crash" "hello from version crash"
  bash "$image_tool" import "$work/crash" flowforge-test/crash:1 \
    --change 'CMD ["/bin/sh", "-c", "sleep 1; exit 3"]' \
    --change "ENV FLOWFORGE_TEST_IMAGE=$VERSION" \
    --change 'EXPOSE 8080'
  echo "built flowforge-test/crash:1"
fi

if ! have flowforge-test/echo:1; then
  bash "$image_tool" rootfs "$work/echo" "hello from version echo"
  # The trap lets `docker stop` end it at once: as PID 1, sh would otherwise ignore SIGTERM.
  printf '%s\n' \
    'echo "forgehook echo: hello on stdout"' \
    'echo "forgehook echo: hello on stderr" >&2' \
    "trap 'exit 0' TERM INT" \
    'while true; do sleep 1; done' \
    > "$work/echo/echo.sh"
  bash "$image_tool" import "$work/echo" flowforge-test/echo:1 \
    --change 'CMD ["/bin/sh", "/echo.sh"]' \
    --change "ENV FLOWFORGE_TEST_IMAGE=$VERSION" \
    --change 'EXPOSE 8080'
  echo "built flowforge-test/echo:1"
fi
