"""s17A depersonalised data and the Strategic Assessment (issue 19).

Crime and Disorder Act 1998 s17A puts a duty on the responsible authorities to share
depersonalised information; the Crime and Disorder (Prescribed Information) Regulations 2007
make the information periods quarters, each disclosed by the end of the next, by general
postcode (the outward code) or ward. The hub keeps each partner's quarterly counts, tracks
who is late, and releases the partnership dataset with small numbers suppressed.

- ``periods``: information periods (``Quarter``) and when each is due;
- ``suppression``: primary and secondary small-number suppression of a table with totals;
- ``dataset``: all partners' counts for one period, by district and ward or outward code,
  suppressed, as cells, CSV bytes and their SHA-256;
- ``export``: CSV and Parquet files (Parquet needs the ``[strategic]`` extra);
- ``chart``: the console's per-district trend over eight quarters, drawn as SVG;
- ``register``: the hub's store of submissions, alerts sent and releases;
- ``sweep``: late-submitter alerts and releases, published as the hub's own events.
"""

from __future__ import annotations

from hub.errors import HubError

__all__ = ["StrategicError"]


class StrategicError(HubError):
    """An s17A request cannot be met: a bad period, a missing extra, no submissions."""
