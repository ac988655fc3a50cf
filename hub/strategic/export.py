"""The released dataset as files: CSV (always) and Parquet (the ``[strategic]`` extra).

The CSV is the dataset's canonical bytes (``Dataset.csv_bytes``), so ``sha256sum`` of the
file is the digest the release event carried and the audit recorded. The Parquet file holds
the same rows and columns (``count`` a nullable int32), for the analysts' tools; its bytes
depend on the pyarrow version, so it is not what the digest covers.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hub.strategic import StrategicError
from hub.strategic.dataset import COLUMNS, Dataset

__all__ = ["ExportedFiles", "export_dataset", "write_csv", "write_parquet"]

#: what to install when pyarrow is missing (pyproject's optional dependencies)
_EXTRA_HINT = (
    "install the hub with its [strategic] extra (pip install 'hub[strategic]') for Parquet "
    "files and the console's charts"
)


class ExportedFiles(dict[str, Path]):
    """Format -> path of each file written (``csv``, ``parquet``)."""


def write_csv(dataset: Dataset, path: Path) -> Path:
    """Write the canonical CSV bytes; the file's SHA-256 is ``dataset.sha256``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(dataset.csv_bytes())
    return path


def _pyarrow() -> tuple[Any, Any]:
    try:
        import pyarrow as pa  # type: ignore[import-untyped]  # pyarrow ships no type stubs
        import pyarrow.parquet as pq  # type: ignore[import-untyped]  # (ditto)
    except ImportError as exc:
        raise StrategicError(
            f"Parquet export: expected the pyarrow package, not installed; {_EXTRA_HINT}"
        ) from exc
    return pa, pq


def write_parquet(dataset: Dataset, path: Path) -> Path:
    """Write the dataset's rows as Parquet (needs the ``[strategic]`` extra)."""
    pa, pq = _pyarrow()
    cells = dataset.cells
    columns = {
        "period": pa.array([dataset.period] * len(cells), type=pa.string()),
        "district": pa.array([c.district for c in cells], type=pa.string()),
        "level": pa.array([c.level for c in cells], type=pa.string()),
        "area": pa.array([c.area for c in cells], type=pa.string()),
        "category": pa.array([c.category for c in cells], type=pa.string()),
        "count": pa.array([c.count for c in cells], type=pa.int32()),
        "status": pa.array(
            ["suppressed" if c.count is None else "released" for c in cells], type=pa.string()
        ),
    }
    assert tuple(columns) == COLUMNS  # noqa: S101 - the two forms hold the same columns
    table = pa.table(columns).replace_schema_metadata(
        {
            "s17a.period": dataset.period,
            "s17a.threshold": str(dataset.threshold),
            "s17a.csv_sha256": dataset.sha256,
        }
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path)
    return path


def export_dataset(dataset: Dataset, directory: Path, *, parquet: bool = True) -> ExportedFiles:
    """Write ``s17a-<period>.csv`` (and ``.parquet``) under ``directory``.

    Parquet is checked for first, so a hub without the extra fails before writing anything.
    """
    if parquet:
        _pyarrow()
    stem = directory / f"s17a-{dataset.period}"
    files = ExportedFiles(csv=write_csv(dataset, stem.with_suffix(".csv")))
    if parquet:
        files["parquet"] = write_parquet(dataset, stem.with_suffix(".parquet"))
    return files
