"""Avro schemas, one ``<event type>.avsc`` per event type and version, and their codec."""

from hub.schemas.codec import SchemaRegistry, to_jsonable

__all__ = ["SchemaRegistry", "to_jsonable"]
