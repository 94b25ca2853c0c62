# FlowForge plugin manager: `forgectl serve`, compiled, on Node 24 LTS.
#
#   docker build -t flowforge/plugin-manager .
#   docker compose up -d            # see docker-compose.yml and .env.example
#
# The base image is a build argument, NODE_IMAGE, node:24-slim by default: point it at a
# mirror or a local copy (`--build-arg NODE_IMAGE=registry.example/node:24-slim`, or
# NODE_IMAGE in .env for compose). CI builds this file FROM a local stand-in made without
# any registry (test/compose/stand-ins/build.sh) and runs the compose file end to end
# (test/compose/compose.test.ts). Both stages use the same image: npm ci in the runtime
# stage installs the production dependencies for the Node that runs them.
#
# The Docker socket. The manager creates plugin containers through the engine's API, so
# the container needs the host's socket: mount it (-v /var/run/docker.sock:/var/run/docker.sock,
# or set DOCKER_HOST). Access to that socket is root on the host, whoever holds it. The
# process runs as root in this image, because that works on every host. Running it as the
# image's `node` user instead (`--user node --group-add <gid of the socket>`) needs the
# socket's group id, which differs from host to host. It protects the container's own files,
# but not the host: that user can still start a privileged container through the socket.
# Give this container to no one you would not give root on the host.
#
# test/packaging/packaging.test.ts checks that every path copied below exists after
# `npm run build`; test/compose/compose.test.ts builds the image and looks inside it.

ARG NODE_IMAGE=node:24-slim

# --- build: compile TypeScript to dist/src --------------------------------------------
FROM ${NODE_IMAGE} AS build
# Marks this stage's image, which the legacy builder keeps untagged: the compose test
# removes the ones its build left behind.
LABEL io.flowforge.stage=build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
# npm run build's second step: the one-file build of the daemon (dist/bundle/, esbuild).
COPY scripts/bundle-daemon.mjs ./scripts/
RUN npm run build

# --- runtime: production dependencies and the compiled code ----------------------------
FROM ${NODE_IMAGE}
ENV NODE_ENV=production
WORKDIR /app
# package.json marks the package root: the daemon finds migrations/ next to it
# (src/config.ts packageRoot()). schema/ is for editors only and is not needed here.
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund && npm cache clean --force
COPY --from=build /app/dist ./dist
COPY migrations ./migrations
# The web console's scripts and styles (plain files, served from /console/assets/; uPlot comes
# from node_modules). CATALOG_DIR defaults to /app/catalog: mount your catalog there.
COPY public ./public
# `forgectl` on the PATH, e.g. `docker compose exec plugin-manager forgectl migrate`.
# specs/ is the default SPECS_DIR (mount your spec folder there); data/ is the embedded
# database's DATA_DIR, used only when neither DATABASE_URL nor POSTGRES_HOST is set.
RUN printf '#!/bin/sh\nexec node /app/dist/src/cli/forgectl.js "$@"\n' > /usr/local/bin/forgectl \
 && chmod 755 /usr/local/bin/forgectl \
 && mkdir -p specs data
EXPOSE 4000
# node itself: the slim image has no curl or wget. The start period covers the database
# connection (DB_CONNECT_DEADLINE, 60 s by default) and the migrations.
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:'+(process.env.PORT||4000)+'/healthz').then(r=>process.exit(r.ok?0:1)).catch(()=>process.exit(1))"]
# SIGTERM (docker stop) stops the daemon gracefully: it stops taking input, lets running
# reconciles finish and closes the database. Plugin containers keep running.
STOPSIGNAL SIGTERM
CMD ["node", "dist/src/cli/forgectl.js", "serve"]
