#!/usr/bin/env bash
# Builds the test images from a static busybox, without any registry:
#   flowforge-test/http:1, :2        busybox httpd on 8080, /health answers "ok"; exits 0 on SIGTERM
#                                    (a shell as PID 1 with a trap: httpd as PID 1 would ignore it)
#   flowforge-test/http-healthcheck:1  the same with a Docker HEALTHCHECK
#   flowforge-test/crash:1           exits with code 3 after a moment
#   flowforge-test/echo:1            prints one line to stdout and one to stderr, then idles
# Idempotent: existing images are kept unless FORCE=1.
set -euo pipefail
# Debian's busybox-static: one binary that needs no libraries inside the image.
busybox=/bin/busybox
dpkg -s busybox-static >/dev/null 2>&1 && [ -x "$busybox" ] || { echo "build.sh: busybox-static is needed (apt-get install busybox-static)" >&2; exit 1; }

# Bump when an image changes, so machines that kept an older build rebuild it.
VERSION=2
have() {
  [ "${FORCE:-0}" != 1 ] || return 1
  docker image inspect -f '{{range .Config.Env}}{{println .}}{{end}}' "$1" 2>/dev/null | grep -qx "FLOWFORGE_TEST_IMAGE=$VERSION"
}

rootfs() { # rootfs DIR VERSION
  local dir=$1 version=$2
  mkdir -p "$dir/bin" "$dir/www" "$dir/tmp"
  cp "$busybox" "$dir/bin/busybox"
  for tool in sh sleep httpd wget cat echo; do ln -sf busybox "$dir/bin/$tool"; done
  echo ok > "$dir/www/health"
  echo "hello from version $version" > "$dir/www/index.html"
}

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

for version in 1 2; do
  image=flowforge-test/http:$version
  have "$image" && continue
  rootfs "$work/http$version" "$version"
  tar -C "$work/http$version" -c . | docker import \
    --change 'CMD ["/bin/sh", "-c", "trap \"exit 0\" TERM; /bin/busybox httpd -f -p 8080 -h /www & wait"]' \
    --change 'EXPOSE 8080' \
    --change "ENV PLUGIN_VERSION=$version" \
    --change "ENV FLOWFORGE_TEST_IMAGE=$VERSION" \
    - "$image" >/dev/null
  echo "built $image"
done

if ! have flowforge-test/http-healthcheck:1; then
  mkdir -p "$work/hc"
  printf '%s\n' 'FROM flowforge-test/http:1' \
    'HEALTHCHECK --interval=1s --timeout=1s --retries=2 CMD ["/bin/busybox", "wget", "-q", "-O", "/dev/null", "http://127.0.0.1:8080/health"]' \
    > "$work/hc/Dockerfile"
  docker build -q -t flowforge-test/http-healthcheck:1 "$work/hc" >/dev/null
  echo "built flowforge-test/http-healthcheck:1"
fi

if ! have flowforge-test/crash:1; then
  rootfs "$work/crash" crash
  tar -C "$work/crash" -c . | docker import \
    --change 'CMD ["/bin/sh", "-c", "sleep 1; exit 3"]' \
    --change "ENV FLOWFORGE_TEST_IMAGE=$VERSION" \
    --change 'EXPOSE 8080' \
    - flowforge-test/crash:1 >/dev/null
  echo "built flowforge-test/crash:1"
fi

if ! have flowforge-test/echo:1; then
  rootfs "$work/echo" echo
  # The trap lets `docker stop` end it at once: as PID 1, sh would otherwise ignore SIGTERM.
  printf '%s\n' \
    'echo "forgehook echo: hello on stdout"' \
    'echo "forgehook echo: hello on stderr" >&2' \
    "trap 'exit 0' TERM INT" \
    'while true; do sleep 1; done' \
    > "$work/echo/echo.sh"
  tar -C "$work/echo" -c . | docker import \
    --change 'CMD ["/bin/sh", "/echo.sh"]' \
    --change "ENV FLOWFORGE_TEST_IMAGE=$VERSION" \
    --change 'EXPOSE 8080' \
    - flowforge-test/echo:1 >/dev/null
  echo "built flowforge-test/echo:1"
fi
