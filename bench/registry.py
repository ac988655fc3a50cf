"""Every benchmark by name, imported only when it runs.

To add a benchmark: write ``bench/<name>.py`` exposing ``BENCHMARK = Benchmark(...)`` and add
one line below. Modules are imported lazily so that ``python -m bench crypto`` does not pay
for (or depend on) faust and a broker, and a broken benchmark does not stop the others.
"""

from __future__ import annotations

import importlib

from bench._harness import Benchmark

__all__ = ["load", "names"]

#: name -> module; run in this order by ``python -m bench``
_MODULES: dict[str, str] = {
    "crypto": "bench.crypto",
    "fanout": "bench.fanout",
    "passthrough": "bench.passthrough",
    "hub": "bench.hub_e2e",
    "floor": "bench.floor",
    "audit": "bench.audit_scale",
    "scaleout": "bench.scale_out",
}


def names() -> list[str]:
    """Registered benchmark names, in run order."""
    return list(_MODULES)


def load(name: str) -> Benchmark:
    """The ``Benchmark`` registered as ``name``.

    Raises:
        KeyError: no benchmark has that name.
    """
    try:
        module = _MODULES[name]
    except KeyError:
        raise KeyError(f"benchmark {name!r}: expected one of {', '.join(_MODULES)}") from None
    benchmark = importlib.import_module(module).BENCHMARK
    if not isinstance(benchmark, Benchmark) or benchmark.name != name:
        raise TypeError(f"{module}.BENCHMARK: expected a Benchmark named {name!r}")
    return benchmark
