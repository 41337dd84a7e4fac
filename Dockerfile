# One image for every service of the lab: each variant (`lab serve <variant>`) and the load
# generator (`lab load`). Node comes from NODE_IMAGE (a local seeded image where there is no
# registry).
ARG NODE_IMAGE=node:24-bookworm-slim

FROM ${NODE_IMAGE} AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY services ./services
RUN npx tsc -p tsconfig.build.json

FROM ${NODE_IMAGE} AS deps
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund

FROM ${NODE_IMAGE}
ENV NODE_ENV=production \
    HOST=0.0.0.0 \
    PORT=25000 \
    METRICS_PORT=9464
WORKDIR /app
COPY package.json ./
COPY --from=deps /app/node_modules ./node_modules
COPY --from=build /app/dist/services ./dist/services
COPY services/server/healthcheck.sh /usr/local/bin/lab-healthcheck
# The only scenario files the control API reads (LOAD_SCENARIO_DIR defaults to /app/scenarios).
COPY scenarios ./scenarios
RUN ln -s /app/dist/services/cli/index.js /usr/local/bin/lab && chmod +x /app/dist/services/cli/index.js
USER node
EXPOSE 25000 9464
# Bash, not Node: a check is an exec every interval (see services/server/healthcheck.sh).
HEALTHCHECK --interval=60s --timeout=3s --start-period=60s --retries=3 CMD ["lab-healthcheck"]
# The commit the image was built from, for the run records of lab load and lab sweep (the image
# has no .git): docker build --build-arg LAB_COMMIT=$(git rev-parse HEAD). Empty: unknown.
# Last, so that a new commit rebuilds no earlier layer.
ARG LAB_COMMIT=
ENV LAB_COMMIT=${LAB_COMMIT}
# --no-memory-reducer: V8 otherwise shrinks the heap each time a process falls idle, a full
# collection that an idle lab's processes ran again after every scrape (Prometheus asks every 5 s):
# a third of what answering a scrape cost them (benchmarks/idle.ts). Cluster workers and pool
# processes are forked with the same flags.
ENTRYPOINT ["node", "--no-memory-reducer", "dist/services/cli/index.js"]
CMD ["variants"]
