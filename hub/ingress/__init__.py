"""HTTP ingress: CloudEvents over HTTPS for systems that cannot speak Kafka (issue 7).

``create_app`` is the ASGI app (FastAPI); ``build_app`` wires it to a data dir's keys,
tokens, protocol and broker; ``TokenStore`` keeps the per-party bearer tokens as hashes.
"""

from hub.ingress.app import CLOUDEVENTS_JSON, RecentIds, TrustedProxy, create_app
from hub.ingress.problems import PROBLEM_BASE, ProblemKind
from hub.ingress.server import KafkaSender, build_app, serve
from hub.ingress.tokens import TokenStore

__all__ = [
    "CLOUDEVENTS_JSON",
    "PROBLEM_BASE",
    "KafkaSender",
    "ProblemKind",
    "RecentIds",
    "TokenStore",
    "TrustedProxy",
    "build_app",
    "create_app",
    "serve",
]
