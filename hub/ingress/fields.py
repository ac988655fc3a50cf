"""Which data field a schema error is about, as a JSON Pointer into the request body.

The codec names the field as a pointer into the payload (``field /address/district``,
``hub.schemas.pointers``); older spellings (fastavro's ``uk.csp.common.Address.district``,
the hub's dotted ``address.district``) map the same way. The body holds the payload under
``data``, so this is ``/data/address/district``.
"""

from __future__ import annotations

from typing import Any

from hub.schemas.pointers import message_pointer

__all__ = ["pointer_for"]


def pointer_for(schema: Any, message: str) -> str:
    """The JSON Pointer (RFC 6901) of the field ``message`` names, or ``/data`` if none."""
    pointer = message_pointer(schema, message)
    return "/data" if pointer is None else f"/data{pointer}"
