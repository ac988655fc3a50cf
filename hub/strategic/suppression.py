"""Small-number suppression of a table with totals, so no suppressed cell can be recovered.

A table of counts is published with its row totals, column totals and grand total. Primary
suppression hides every cell (totals included) below the protocol's threshold. That alone is
not enough: a row with one hidden cell gives it away by subtraction from the row total, and
subtler patterns give a cell away by combining several rows and columns. Secondary suppression
hides more cells until neither is possible.

The test used here is exact. Write the table with its margins negated and the grand total as
it is: then every row and every column sums to zero, and these are all the relations a reader
has. Take the hidden cells as edges of a bipartite graph between the table's rows and columns
(margins included). The hidden values a reader cannot pin down are exactly those on a cycle
of that graph: adding and subtracting a number around a cycle keeps every row and column sum,
and nothing else does. So a hidden cell is recoverable if and only if its edge is a *bridge*
(on no cycle); a line (row or column) with exactly one hidden cell is the simplest case.

``suppress`` first hides each line's lone hidden cell's cheapest partner in that line (the
usual rule: the next-smallest cell, interior cells before totals), and when no line has a
lone hidden cell, closes a cycle through each remaining bridge with the cheapest cell that
does, until no hidden cell is recoverable. It never releases a cell below the threshold.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

__all__ = ["augmented", "recoverable", "suppress"]

Cell = tuple[int, int]
#: the order cells are hidden in: lower first
Cost = Callable[[Cell], tuple[int, int, int, int]]


def augmented(values: Sequence[Sequence[int]]) -> list[list[int]]:
    """The table with a total column, a total row and the grand total (last row, last column)."""
    rows = [list(row) for row in values]
    width = len(rows[0]) if rows else 0
    table = [[*row, sum(row)] for row in rows]
    table.append([sum(row[j] for row in rows) for j in range(width)] + [sum(map(sum, rows))])
    return table


def suppress(values: Sequence[Sequence[int]], *, threshold: int) -> list[list[bool]]:
    """Which cells of ``augmented(values)`` to hide: primary and secondary suppression.

    Args:
        values: the interior counts, one list per row, all rows the same length (>= 1).
        threshold: cells (totals included) below this are hidden (primary suppression).

    Returns:
        A mask the shape of ``augmented(values)``: True where the count is hidden.
    """
    if not values or not values[0] or any(len(row) != len(values[0]) for row in values):
        raise ValueError("suppress: expected a non-empty table with rows of equal length")
    table = augmented(values)
    rows, cols = len(table), len(table[0])
    hidden = [[table[i][j] < threshold for j in range(cols)] for i in range(rows)]

    def cost(cell: Cell) -> tuple[int, int, int, int]:
        i, j = cell
        margins = (i == rows - 1) + (j == cols - 1)  # hide an interior cell before a total
        return (margins, table[i][j], i, j)

    while True:
        lone = _lone_partner(hidden, cost)
        if lone is not None:
            hidden[lone[0]][lone[1]] = True
            continue
        closing = _cycle_closer(hidden, cost)
        if closing is None:
            return hidden
        hidden[closing[0]][closing[1]] = True


def recoverable(hidden: Sequence[Sequence[bool]]) -> list[Cell]:
    """Hidden cells a reader can work out exactly from the released cells and totals.

    ``hidden`` is a mask over an augmented table (``augmented``); the answer is every hidden
    cell whose edge is a bridge of the rows-columns graph of hidden cells (module docstring).
    """
    edges = [(i, j) for i, row in enumerate(hidden) for j, is_hidden in enumerate(row) if is_hidden]
    return [edge for edge in edges if _is_bridge(edge, edges)]


def _lone_partner(hidden: list[list[bool]], cost: Cost) -> Cell | None:
    """The cheapest visible cell in the first line that has exactly one hidden cell."""
    rows, cols = len(hidden), len(hidden[0])
    lines: list[list[Cell]] = [[(i, j) for j in range(cols)] for i in range(rows)]
    lines += [[(i, j) for i in range(rows)] for j in range(cols)]
    for line in lines:
        if sum(hidden[i][j] for i, j in line) == 1:
            visible = [c for c in line if not hidden[c[0]][c[1]]]
            return min(visible, key=cost)
    return None


def _cycle_closer(hidden: list[list[bool]], cost: Cost) -> Cell | None:
    """The cheapest cell that puts the first bridge on a cycle, or None if none is a bridge.

    Removing bridge (r, c) splits its component into the side of row r and the side of
    column c; any row on c's side with any column on r's side closes a cycle through it.
    """
    rows, cols = len(hidden), len(hidden[0])
    edges = [(i, j) for i in range(rows) for j in range(cols) if hidden[i][j]]
    for edge in edges:
        if not _is_bridge(edge, edges):
            continue
        others = [e for e in edges if e != edge]
        row_side = _reach(("r", edge[0]), others)
        col_side = _reach(("c", edge[1]), others)
        candidates = [
            (i, j)
            for kind_i, i in col_side
            if kind_i == "r"
            for kind_j, j in row_side
            if kind_j == "c" and not hidden[i][j]
        ]
        if not candidates:  # a lone hidden cell in a line: _lone_partner handles it first
            candidates = [
                (i, j)
                for i in range(rows)
                for j in range(cols)
                if not hidden[i][j] and (i == edge[0] or j == edge[1])
            ]
        return min(candidates, key=cost)
    return None


def _is_bridge(edge: Cell, edges: Sequence[Cell]) -> bool:
    others = [e for e in edges if e != edge]
    return ("c", edge[1]) not in _reach(("r", edge[0]), others)


def _reach(start: tuple[str, int], edges: Sequence[Cell]) -> set[tuple[str, int]]:
    """The vertices (("r", row) or ("c", column)) connected to ``start`` by ``edges``."""
    adjacent: dict[tuple[str, int], list[tuple[str, int]]] = {}
    for i, j in edges:
        adjacent.setdefault(("r", i), []).append(("c", j))
        adjacent.setdefault(("c", j), []).append(("r", i))
    seen = {start}
    todo = [start]
    while todo:
        for nxt in adjacent.get(todo.pop(), ()):
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return seen
