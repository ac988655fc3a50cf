# The hub image: router workers (`python -m hub.agents.worker`) and the `hub` CLI.
# Used by docker-compose.yml (hub-init, hub-worker-1/2) and deploy/k8s/hub.yaml.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    HUB_DATA_DIR=/var/lib/hub

WORKDIR /src
COPY pyproject.toml README.md ./
COPY hub ./hub
RUN pip install . \
    && useradd --system --uid 10001 --home-dir /var/lib/hub --create-home hub

USER 10001
WORKDIR /var/lib/hub
# One router worker per container; the orchestrator restarts it (it resumes from committed
# offsets). `hub up` is the single-host supervisor and is not used in containers.
CMD ["python", "-m", "hub.agents.worker"]
