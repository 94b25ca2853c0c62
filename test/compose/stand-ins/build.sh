#!/usr/bin/env bash
# Local stand-ins for the two public base images of the compose service, built from Debian's
# packages and the npm registry, without any Docker registry (none is reachable here):
#
#   flowforge-local/debian:bookworm-slim  a minbase debootstrap of Debian 12 from the machine's
#                                         mirror, trimmed like debian:bookworm-slim (no docs,
#                                         man pages, translations or apt lists)
#   flowforge-local/node:24-slim          stands in for node:24-slim (the Dockerfile's NODE_IMAGE):
#                                         the Debian base with Node and npm from the npm registry
#                                         (scripts/node-dist.sh) in /usr/local, user `node` (1000:1000)
#   flowforge-local/postgres:15           stands in for postgres:15 (the compose file's
#                                         POSTGRES_IMAGE): Debian's postgresql-15 and an entrypoint
#                                         that does what the official one does with POSTGRES_USER,
#                                         POSTGRES_PASSWORD and POSTGRES_DB (postgres-entrypoint.sh)
#
#   bash test/compose/stand-ins/build.sh          # builds what is missing or outdated
#   bash test/compose/stand-ins/build.sh --list   # NODE_IMAGE=... and POSTGRES_IMAGE=... (.env lines)
#
# Idempotent and cached: each image carries FLOWFORGE_STAND_IN=<version> in its environment
# (the Node image also its Node version) and is kept until that changes; FORCE=1 rebuilds.
# The first build takes 2-4 minutes (debootstrap about 40 s, postgresql-15 from the mirror),
# later runs under a second. Needs root (debootstrap), debootstrap, Docker and npm.
#
# One addition the public node image does not have: the build machine's CA bundle, trusted
# through NODE_EXTRA_CA_CERTS. These machines reach the npm registry through a TLS-inspecting
# egress proxy whose CA is in that bundle; without it `npm ci` in the Dockerfile's build
# stages could not verify the registry. It is a public certificate list, no secret.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../../.." && pwd)"

# Bump when a stand-in changes, so machines that kept an older build rebuild it.
VERSION=1
SUITE=bookworm
BASE_IMAGE=flowforge-local/debian:$SUITE-slim
NODE_IMAGE=flowforge-local/node:24-slim
POSTGRES_IMAGE=flowforge-local/postgres:15
node_version=$(bash "$root/scripts/node-dist.sh" --version | awk '{print $2}')

if [ "${1:-}" = --list ]; then
  printf 'NODE_IMAGE=%s\nPOSTGRES_IMAGE=%s\n' "$NODE_IMAGE" "$POSTGRES_IMAGE"
  exit 0
fi
[ $# -eq 0 ] || { echo "usage: $0 [--list]" >&2; exit 2; }
case "$node_version" in 24.*) ;; *) echo "build.sh: $NODE_IMAGE must hold Node 24, scripts/node-dist.sh gives $node_version" >&2; exit 1 ;; esac

# The legacy builder, as docker-compose v1 uses it (no buildx here). It warns about its
# deprecation on every build: show its output only on failure.
export DOCKER_BUILDKIT=0

has() { # has IMAGE NAME=VALUE...
  [ "${FORCE:-0}" != 1 ] || return 1
  local image=$1 env
  shift
  env=$(docker image inspect -f '{{range .Config.Env}}{{println .}}{{end}}' "$image" 2>/dev/null) || return 1
  for pair in "$@"; do grep -qxF "$pair" <<<"$env" || return 1; done
}

# build IMAGE CONTEXT_DIR: docker build, then the image it replaced is removed if nothing uses it.
build() {
  local image=$1 context=$2 previous output
  previous=$(docker image inspect -f '{{.Id}}' "$image" 2>/dev/null || true)
  output=$(docker build --force-rm -t "$image" "$context" 2>&1) || { printf '%s\n' "$output" >&2; return 1; }
  if [ -n "$previous" ] && [ "$previous" != "$(docker image inspect -f '{{.Id}}' "$image")" ]; then
    docker rmi "$previous" >/dev/null 2>&1 || true
  fi
  echo "built $image"
}

# The Debian mirror this machine's apt uses (deb822 or one-line format), else deb.debian.org.
mirror() {
  local uri
  uri=$(awk '/^URIs:/ { print $2; exit }' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
  [ -n "$uri" ] || uri=$(awk '$1 == "deb" && $2 ~ /^https?:/ && $2 !~ /security/ { print $2; exit }' /etc/apt/sources.list 2>/dev/null || true)
  echo "${uri:-http://deb.debian.org/debian}"
}

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# --- the Debian base ---------------------------------------------------------------------
if ! has "$BASE_IMAGE" "FLOWFORGE_STAND_IN=$VERSION"; then
  command -v debootstrap >/dev/null || { echo "build.sh: debootstrap is needed (apt-get install debootstrap)" >&2; exit 1; }
  [ "$(id -u)" = 0 ] || { echo "build.sh: debootstrap needs root" >&2; exit 1; }
  debian=$(mirror)
  rootfs="$work/rootfs"
  debootstrap --variant=minbase "$SUITE" "$rootfs" "$debian" >"$work/debootstrap.log" 2>&1 ||
    { tail -30 "$work/debootstrap.log" >&2; echo "build.sh: debootstrap of $SUITE from $debian failed" >&2; exit 1; }
  security=${debian%/debian}/debian-security
  printf '%s\n' "deb $debian $SUITE main" "deb $debian $SUITE-updates main" "deb $security $SUITE-security main" \
    >"$rootfs/etc/apt/sources.list"
  # As debian:*-slim: packages installed later leave out docs, man pages and translations,
  # and apt keeps neither its lists nor the downloaded packages.
  cat >"$rootfs/etc/dpkg/dpkg.cfg.d/docker-slim" <<'EOF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
path-exclude /usr/share/lintian/*
EOF
  cat >"$rootfs/etc/apt/apt.conf.d/docker-slim" <<'EOF'
APT::Install-Recommends "false";
APT::Install-Suggests "false";
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/*.bin || true"; };
EOF
  find "$rootfs/usr/share/doc" -mindepth 1 -not -name copyright -not -type d -delete
  find "$rootfs/usr/share/doc" -mindepth 1 -type d -empty -delete
  rm -rf "$rootfs"/usr/share/{man,info,lintian}/* "$rootfs"/var/cache/apt/* "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/log/*.log "$rootfs"/var/log/apt/*
  find "$rootfs/usr/share/locale" -mindepth 1 -maxdepth 1 -not -name locale.alias -exec rm -rf {} +
  # The engine provides these at run time; the build machine's must not leak into the image.
  rm -f "$rootfs/etc/hostname" "$rootfs/etc/resolv.conf" "$rootfs/etc/machine-id"
  tar -C "$rootfs" --numeric-owner -c . | docker import \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV LANG=C.UTF-8' \
    --change "ENV FLOWFORGE_STAND_IN=$VERSION" \
    --change 'CMD ["bash"]' \
    - "$BASE_IMAGE" >/dev/null
  rm -rf "$rootfs"
  echo "built $BASE_IMAGE (debootstrap $SUITE from $debian)"
fi

# --- node:24-slim ------------------------------------------------------------------------
if ! has "$NODE_IMAGE" "FLOWFORGE_STAND_IN=$VERSION" "NODE_VERSION=$node_version"; then
  context="$work/node"
  mkdir -p "$context"
  bash "$root/scripts/node-dist.sh" "$context/node" >/dev/null
  ca=${SSL_CERT_FILE:-/etc/ssl/certs/ca-certificates.crt}
  extra_ca=''
  if [ -s "$ca" ]; then
    cp "$ca" "$context/build-host-ca.crt"
    extra_ca=$'COPY build-host-ca.crt /usr/local/share/flowforge/build-host-ca.crt\nENV NODE_EXTRA_CA_CERTS=/usr/local/share/flowforge/build-host-ca.crt'
  fi
  cat >"$context/Dockerfile" <<EOF
FROM $BASE_IMAGE
# As the official image: a \`node\` user and group (1000), Node and npm in /usr/local.
RUN groupadd --gid 1000 node && useradd --uid 1000 --gid node --shell /bin/bash --create-home node
COPY node/ /usr/local/
$extra_ca
ENV NODE_VERSION=$node_version
ENV FLOWFORGE_STAND_IN=$VERSION
CMD ["node"]
EOF
  build "$NODE_IMAGE" "$context"
fi

# --- postgres:15 -------------------------------------------------------------------------
if ! has "$POSTGRES_IMAGE" "FLOWFORGE_STAND_IN=$VERSION"; then
  context="$work/postgres"
  mkdir -p "$context"
  cp "$here/postgres-entrypoint.sh" "$context/docker-entrypoint.sh"
  cat >"$context/Dockerfile" <<EOF
FROM $BASE_IMAGE
# As the official image: user postgres (999:999) made first, then Debian's packages, with
# postgresql-common told not to create a cluster (the entrypoint initialises PGDATA).
RUN groupadd --system --gid 999 postgres \\
 && useradd --system --uid 999 --gid postgres --home-dir /var/lib/postgresql --shell /bin/bash postgres \\
 && install -d -o postgres -g postgres /var/lib/postgresql
RUN export DEBIAN_FRONTEND=noninteractive \\
 && apt-get update -qq \\
 && apt-get install -y -qq postgresql-common >/dev/null \\
 && sed -ri 's/#(create_main_cluster) .*\$/\\1 = false/' /etc/postgresql-common/createcluster.conf \\
 && apt-get install -y -qq postgresql-15 >/dev/null \\
 && rm -rf /var/lib/apt/lists/*
RUN install -d -o postgres -g postgres -m 3777 /var/run/postgresql \\
 && install -d -o postgres -g postgres -m 1777 /var/lib/postgresql/data
ENV PG_MAJOR=15
ENV PATH=/usr/lib/postgresql/15/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
ENV PGDATA=/var/lib/postgresql/data
VOLUME /var/lib/postgresql/data
COPY docker-entrypoint.sh /usr/local/bin/docker-entrypoint.sh
ENTRYPOINT ["docker-entrypoint.sh"]
# Fast shutdown, as the official image.
STOPSIGNAL SIGINT
EXPOSE 5432
ENV FLOWFORGE_STAND_IN=$VERSION
CMD ["postgres"]
EOF
  build "$POSTGRES_IMAGE" "$context"
fi
