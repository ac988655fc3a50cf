"""A router worker and the audit sink import what they run, not the rest of the hub's stack.

``hub up`` starts both for every hub (the test suite about 140 times a run), so each import
they do not need is paid again at every start. A fresh interpreter here builds what
``python -m hub.agents.worker`` and ``python -m hub.agents.sink_worker`` build before they
connect (the faust app and worker, the sink and its store), as ``hub.cli.main`` is checked
in ``test_cli_lazy``, and none of the heavy packages below may be among its modules: the
web console's and the ingress API's (FastAPI, Jinja2, uvicorn), the CLI's (typer, click),
PostgreSQL's driver (the default state and audit stores are SQLite), and the benchmarks',
notebooks' and browser tests' (matplotlib, numpy, pyarrow, selenium, hypothesis).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

#: packages (and hub packages) a worker or sink process must not import on the default
#: settings; each is installed in the dev environment, so importing it would succeed
HEAVY = (
    "hub.cli", "hub.web", "hub.ingress", "fastapi", "starlette", "jinja2", "uvicorn",
    "typer", "click", "psycopg", "matplotlib", "numpy", "pyarrow", "selenium", "hypothesis",
    "pyinstrument",
)  # fmt: skip

_PROBE = """
import json, sys
from hub.agents import sink_worker, worker  # what ``python -m`` runs
from hub.agents.app import create_app
from hub.agents.sink import sink_factory
from hub.envelope.crypto import DataKeyCache
from hub.envelope.party import PartyEnvelope
from hub.keys.file_store import FileKeyStore
from hub.keys.model import HUB_PARTY, KeySuite
from hub.keys.store import ensure_dev_keys
from hub.policies.loader import load_protocol
from hub.settings import HubSettings

settings = HubSettings()
protocol = load_protocol(settings.protocol)
keys = FileKeyStore(settings.keys_dir)
# the supervisor's part, before it starts the processes
ensure_dev_keys(keys, [p for p in protocol.party_ids if not protocol.is_peer(p)],
                suite=KeySuite(protocol.crypto.suite))
# the worker's (hub.agents.worker.main) and the sink's (hub.agents.sink_worker._main)
app = create_app(settings, protocol=protocol, bootstrap=settings.kafka_bootstrap)
worker.build_worker(app, settings)
envelope = PartyEnvelope(HUB_PARTY, store=keys, cache=DataKeyCache(max_uses=1, max_age=1.0))
sink_factory(settings, parties=protocol.party_ids, envelope=envelope)()
print(json.dumps(sorted(sys.modules)))
"""


def _imported_by_worker_and_sink(data_dir: Path) -> set[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HUB_")}
    env.update(HUB_DATA_DIR=str(data_dir), HUB_KAFKA_BOOTSTRAP="127.0.0.1:9")  # never dialled
    done = subprocess.run(
        [sys.executable, "-c", _PROBE], capture_output=True, text=True, env=env, check=False
    )
    assert done.returncode == 0, done.stderr
    return set(json.loads(done.stdout.strip().splitlines()[-1]))


def test_a_worker_and_the_sink_import_no_heavy_package_they_do_not_use(tmp_path: Path) -> None:
    imported = _imported_by_worker_and_sink(tmp_path / "data")
    # the probe did build them: their own stack is there
    assert {
        "faust",
        "aiokafka",
        "hub.agents.app",
        "hub.agents.sink",
        "hub.audit.sqlite",
    } <= imported
    heavy = sorted(m for m in imported if m in HEAVY or m.startswith(tuple(f"{h}." for h in HEAVY)))
    assert not heavy, f"imported by a worker or the audit sink and not needed: {heavy}"
