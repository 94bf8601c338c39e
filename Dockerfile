# syntax=docker/dockerfile:1
# Tally's images, used by docker-compose.yml:
#   app                one image for the API, the worker and the Zuora sandbox (compose picks the command)
#   bigquery-emulator  the local BigQuery stand-in, from the pins in devstack/requirements.txt

ARG NODE_IMAGE=node:20-bookworm-slim
ARG PYTHON_IMAGE=python:3.11-slim

# ---- deps: production node_modules only, installed from the lock file -----------------------
FROM ${NODE_IMAGE} AS deps
# package.json's `allowScripts` lists the dependencies whose install scripts we vetted. npm 11
# reads it (advisory since 11.16, enforced from npm 12); the npm 10 in node:20 ignores it, so
# install the npm the lock file was made with.
ARG NPM_VERSION=11.19.1
RUN npm install --global --no-audit --no-fund npm@${NPM_VERSION}
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund

# ---- app: the TypeScript sources, run by tsx (a runtime dependency), as the `node` user -------
FROM ${NODE_IMAGE} AS app
ENV NODE_ENV=production \
    NPM_CONFIG_UPDATE_NOTIFIER=false
WORKDIR /app
# Owned by root and only readable by `node`: the running process cannot rewrite its own code.
COPY --from=deps /app/node_modules ./node_modules
COPY package.json package-lock.json tsconfig.json ./
COPY core ./core
COPY db ./db
COPY activities ./activities
COPY workflows ./workflows
COPY workers ./workers
COPY api ./api
COPY zuora-sandbox ./zuora-sandbox
# The Zuora sandbox keeps its state in /data; a named volume mounted there starts with this owner.
RUN mkdir -p /data && chown node:node /data
USER node
EXPOSE 3000 8070 9464
CMD ["node", "--import", "tsx", "api/main.ts"]

# ---- bigquery-emulator: bqemulator + DuckDB with its spatial extension placed offline ---------
FROM ${PYTHON_IMAGE} AS bigquery-emulator
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONUNBUFFERED=1
RUN useradd --create-home --uid 10001 bqemulator \
 && mkdir -p /data && chown bqemulator:bqemulator /data
# The pins live in one file; take the emulator's four and leave the Temporal binaries (for `npm start`) out.
COPY devstack/requirements.txt /tmp/requirements.txt
RUN grep -E '^(bqemulator|duckdb|duckdb-extension-spatial|numpy)([=<>!~ ;]|$)' /tmp/requirements.txt > /tmp/emulator-requirements.txt \
 && test "$(wc -l < /tmp/emulator-requirements.txt)" -eq 4 \
 && pip install -r /tmp/emulator-requirements.txt
COPY docker/bigquery-emulator/place-spatial-extension.py /usr/local/lib/tally/place-spatial-extension.py
# The emulator without its automatic time-travel copies of whole tables (the file says why).
COPY devstack/bqemulator-start.py /usr/local/lib/tally/bqemulator-start.py
ENV BQEMU_TIME_TRAVEL_RETENTION_DAYS=0
# DuckDB looks for extensions under $HOME: the same HOME when placing spatial and when serving.
ENV HOME=/home/bqemulator
USER bqemulator
RUN python /usr/local/lib/tally/place-spatial-extension.py
WORKDIR /data
EXPOSE 9050 9060
CMD ["python", "/usr/local/lib/tally/bqemulator-start.py", "start", "--rest-host", "0.0.0.0", "--rest-port", "9050", "--grpc-host", "0.0.0.0", "--grpc-port", "9060", "--project", "tally-local", "--persistent", "--data-dir", "/data"]
