"""Sharing protocols as data: model, loader, engine (evaluate -> Decision), checker."""

from hub.policies.engine import evaluate, minimise
from hub.policies.loader import load_protocol
from hub.policies.model import Protocol

__all__ = ["Protocol", "evaluate", "load_protocol", "minimise"]
