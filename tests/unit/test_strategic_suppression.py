"""Small-number suppression: nothing below the threshold is released, nothing hidden recoverable.

``recoverable`` is checked against an independent exact computation (Gaussian elimination
over fractions of the row and column equations a reader has), and the property tests hold
``suppress`` to both: no released cell under the threshold, no line with a single hidden
cell (subtraction from a total), and no hidden cell determined by any combination of them.
"""

from __future__ import annotations

from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hub.strategic.suppression import augmented, recoverable, suppress


def _determined(hidden: list[list[bool]]) -> set[tuple[int, int]]:
    """Hidden cells fixed by the released cells and totals: exact linear algebra.

    The reader knows every released cell; the unknowns are the hidden ones. Each row says
    its cells sum to its total, each column likewise (the total row and column too). A hidden
    cell is determined iff its unit vector lies in the row space of those equations.
    """
    rows, cols = len(hidden), len(hidden[0])
    unknowns = [(i, j) for i in range(rows) for j in range(cols) if hidden[i][j]]
    index = {cell: k for k, cell in enumerate(unknowns)}
    equations: list[list[Fraction]] = []
    lines = [[(i, j) for j in range(cols)] for i in range(rows)]
    lines += [[(i, j) for i in range(rows)] for j in range(cols)]
    for line in lines:
        *inner, total = line
        vector = [Fraction(0)] * len(unknowns)
        for cell in inner:
            if cell in index:
                vector[index[cell]] += 1
        if total in index:
            vector[index[total]] -= 1
        if any(vector):
            equations.append(vector)

    def rank(matrix: list[list[Fraction]]) -> int:
        m = [row[:] for row in matrix]
        r = 0
        for c in range(len(unknowns)):
            pivot = next((k for k in range(r, len(m)) if m[k][c] != 0), None)
            if pivot is None:
                continue
            m[r], m[pivot] = m[pivot], m[r]
            for k in range(len(m)):
                if k != r and m[k][c] != 0:
                    factor = m[k][c] / m[r][c]
                    m[k] = [a - factor * b for a, b in zip(m[k], m[r], strict=True)]
            r += 1
        return r

    base = rank(equations)
    found = set()
    for cell, k in index.items():
        unit = [Fraction(0)] * len(unknowns)
        unit[k] = Fraction(1)
        if rank([*equations, unit]) == base:
            found.add(cell)
    return found


def _show(values: list[list[int]], hidden: list[list[bool]]) -> list[list[object]]:
    table = augmented(values)
    return [
        ["*" if h else v for v, h in zip(row, mask, strict=True)]
        for row, mask in zip(table, hidden, strict=True)
    ]


def test_a_lone_small_cell_takes_the_next_smallest_of_its_row_and_column_with_it() -> None:
    values = [[12, 3, 8], [7, 9, 20], [11, 15, 16]]
    hidden = suppress(values, threshold=5)
    shown = _show(values, hidden)
    assert shown[0][1] == "*"  # the 3: primary
    assert shown[0][2] == "*"  # row 0's next smallest (8 before 12)
    assert shown[1][1] == "*"  # column 1's next smallest (9 before 15)
    assert recoverable(hidden) == []
    assert _determined(hidden) == set()
    assert shown[3][3] == 101  # the grand total stays released


def test_nothing_small_hides_nothing() -> None:
    assert not any(map(any, suppress([[5, 6], [7, 8]], threshold=5)))


def test_a_small_total_is_hidden_and_so_is_enough_to_protect_it() -> None:
    values = [[1, 1], [20, 30]]
    hidden = suppress(values, threshold=5)
    assert hidden[0] == [True, True, True]  # both cells and their row total (2)
    assert _determined(hidden) == set()


def test_a_bridge_between_two_protected_blocks_is_closed() -> None:
    """Every line with 0 or 2+ hidden cells is not enough: a bridge is still recoverable."""
    hidden = [
        [True, True, False, False, False],
        [True, True, True, False, False],
        [False, False, True, True, False],
        [False, False, True, True, False],
        [False, False, False, False, False],
    ]
    # rows 1 and column 2: cell (1, 2) joins two 2x2 blocks and lies on no cycle
    assert all(sum(r) != 1 for r in hidden)
    assert all(sum(c) != 1 for c in zip(*hidden, strict=True))
    assert recoverable(hidden) == [(1, 2)]
    assert _determined(hidden) == {(1, 2)}


def test_suppress_refuses_a_ragged_table() -> None:
    with pytest.raises(ValueError, match="equal length"):
        suppress([[1, 2], [3]], threshold=5)


_counts = st.one_of(st.integers(0, 6), st.integers(0, 40))
_tables = st.integers(1, 5).flatmap(
    lambda width: st.lists(
        st.lists(_counts, min_size=width, max_size=width), min_size=1, max_size=5
    )
)


@settings(max_examples=300, deadline=None)
@given(values=_tables, threshold=st.integers(1, 10))
def test_no_released_cell_is_small_and_no_hidden_cell_is_recoverable(
    values: list[list[int]], threshold: int
) -> None:
    hidden = suppress(values, threshold=threshold)
    table = augmented(values)
    for row, mask in zip(table, hidden, strict=True):
        for value, is_hidden in zip(row, mask, strict=True):
            assert is_hidden or value >= threshold
    # subtraction from a released total: no line holds exactly one hidden cell
    assert all(sum(mask) != 1 for mask in hidden)
    assert all(sum(column) != 1 for column in zip(*hidden, strict=True))
    # nor any combination of rows and columns
    assert _determined(hidden) == set()
    assert recoverable(hidden) == []


@settings(max_examples=200, deadline=None)
@given(values=_tables, threshold=st.integers(1, 10))
def test_recoverable_agrees_with_linear_algebra(values: list[list[int]], threshold: int) -> None:
    """On primary suppression alone (often recoverable), the bridge test is exact."""
    table = augmented(values)
    primary = [[v < threshold for v in row] for row in table]
    assert set(recoverable(primary)) == _determined(primary)
