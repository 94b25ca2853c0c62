#!/usr/bin/env bash
# Builds tiny images from Debian's static busybox, without any registry. Shared by the test
# images (test/images/build.sh) and the example images (examples/build-image.sh).
#
#   busybox-image.sh http IMAGE PAGE [docker-import options...]
#       busybox httpd on port 8080 serving /www: index.html holds PAGE, /health answers "ok".
#       PID 1 is a shell that traps SIGTERM and exits 0 (httpd as PID 1 would ignore it),
#       so `docker stop` ends it at once. Extra options (e.g. --change "ENV K=V") come last.
#   busybox-image.sh healthcheck IMAGE FROM_IMAGE [--page PAGE] [HEALTHCHECK options...]
#       FROM_IMAGE (an http image) plus a Docker HEALTHCHECK that fetches /health with
#       busybox wget; --page replaces its index.html. Default options:
#       --interval=1s --timeout=1s --retries=2
#   busybox-image.sh rootfs DIR PAGE
#       only the root filesystem: bin/busybox with applets (sh sleep httpd wget cat echo),
#       www/index.html (PAGE), www/health ("ok"), tmp/.
#   busybox-image.sh import DIR IMAGE [docker-import options...]
#       `docker import` of DIR as IMAGE.
#   busybox-image.sh has IMAGE NAME=VALUE
#       exits 0 when IMAGE exists and its environment holds NAME=VALUE (a build marker).
#   busybox-image.sh check
#       exits 1 with a hint when busybox-static is missing.
#
# Needs busybox-static (apt-get install busybox-static) and a Docker engine.
set -euo pipefail

BUSYBOX=/bin/busybox
HTTP_PORT=8080
HTTP_CMD='CMD ["/bin/sh", "-c", "trap \"exit 0\" TERM; /bin/busybox httpd -f -p '$HTTP_PORT' -h /www & wait"]'

die() { echo "busybox-image.sh: $*" >&2; exit 2; }

need_busybox() {
  dpkg -s busybox-static >/dev/null 2>&1 && [ -x "$BUSYBOX" ] ||
    { echo "busybox-image.sh: busybox-static is needed (apt-get install busybox-static)" >&2; exit 1; }
}

rootfs() { # rootfs DIR PAGE
  local dir=$1 page=$2
  need_busybox
  mkdir -p "$dir/bin" "$dir/www" "$dir/tmp"
  # /tmp as everywhere: writable by every user (a tmpfs mounted there takes this mode too).
  chmod 1777 "$dir/tmp"
  cp "$BUSYBOX" "$dir/bin/busybox"
  for tool in sh sleep httpd wget cat echo; do ln -sf busybox "$dir/bin/$tool"; done
  echo ok > "$dir/www/health"
  printf '%s\n' "$page" > "$dir/www/index.html"
}

import() { # import DIR IMAGE [docker-import options...]
  local dir=$1 image=$2
  shift 2
  tar -C "$dir" -c . | docker import "$@" - "$image" >/dev/null
}

http() { # http IMAGE PAGE [docker-import options...]
  local image=$1 page=$2 work
  shift 2
  work=$(mktemp -d)
  # shellcheck disable=SC2064 # expand now: the trap runs after this function's locals are gone
  trap "rm -rf '$work'" EXIT
  rootfs "$work/rootfs" "$page"
  import "$work/rootfs" "$image" --change "$HTTP_CMD" --change "EXPOSE $HTTP_PORT" "$@"
}

healthcheck() { # healthcheck IMAGE FROM_IMAGE [--page PAGE] [HEALTHCHECK options...]
  local image=$1 from=$2 work
  shift 2
  work=$(mktemp -d)
  # shellcheck disable=SC2064
  trap "rm -rf '$work'" EXIT
  {
    echo "FROM $from"
    if [ "${1:-}" = --page ]; then
      [ $# -ge 2 ] || die "--page needs a text"
      printf '%s\n' "$2" > "$work/index.html"
      echo 'COPY index.html /www/index.html'
      shift 2
    fi
    [ $# -gt 0 ] || set -- --interval=1s --timeout=1s --retries=2
    echo "HEALTHCHECK $* CMD [\"/bin/busybox\", \"wget\", \"-q\", \"-O\", \"/dev/null\", \"http://127.0.0.1:$HTTP_PORT/health\"]"
  } > "$work/Dockerfile"
  # The legacy builder warns about its deprecation on every build: show its output only on failure.
  local output
  output=$(docker build -q -t "$image" "$work" 2>&1) || { printf '%s\n' "$output" >&2; return 1; }
}

has() { # has IMAGE NAME=VALUE
  docker image inspect -f '{{range .Config.Env}}{{println .}}{{end}}' "$1" 2>/dev/null | grep -qxF "$2"
}

command=${1:-}
[ $# -gt 0 ] && shift
case "$command" in
  http) [ $# -ge 2 ] || die "usage: http IMAGE PAGE [docker-import options...]"; http "$@" ;;
  healthcheck) [ $# -ge 2 ] || die "usage: healthcheck IMAGE FROM_IMAGE [--page PAGE] [HEALTHCHECK options...]"; healthcheck "$@" ;;
  rootfs) [ $# -eq 2 ] || die "usage: rootfs DIR PAGE"; rootfs "$@" ;;
  import) [ $# -ge 2 ] || die "usage: import DIR IMAGE [docker-import options...]"; import "$@" ;;
  has) [ $# -eq 2 ] || die "usage: has IMAGE NAME=VALUE"; has "$@" ;;
  check) need_busybox ;;
  *) die "usage: busybox-image.sh http|healthcheck|rootfs|import|has|check ... (see the comment at the top)" ;;
esac
