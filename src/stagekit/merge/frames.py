"""Column-wise three-way merges for pandas DataFrames and pyarrow Tables.

Every column is merged like a mapping's key: left alone by every branch, it is kept; added or changed by one
branch, it takes that branch's column; changed by several, they must agree (type-aware, NaN equals NaN) or
it is a conflict naming the column; dropped by a branch and left alone by the others, it is dropped. The
result holds base's columns first (in base's order), then new columns in branch order. The rows are not
merged: every branch must keep the same rows (the same index for DataFrames, the same number of rows for
Tables), or the merge fails saying so.

Speed: a column a branch left alone is recognised by its memory (the same buffers as base's), so it is never
compared value by value, and the result reuses the branches' columns without copying them.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from typing import Any

from stagekit.errors import MergeConflictError
from stagekit.merge.describe import short_repr

__all__ = ["arrow_equal", "dataframes_equal", "merge_arrow_table", "merge_dataframe"]


class _Side:
    """The columns of one frame or table: labels, memory identity and values, looked up by position."""

    def __init__(self, frame: Any, labels: list[Any], raw: Callable[[int], Any]) -> None:
        self.frame = frame
        self.labels = labels
        self.where = {label: i for i, label in enumerate(labels)}
        self._raw = raw
        self._keys: dict[int, Any] = {}
        self.by_memory = True  # False when the same memory need not mean the same column (other rows)

    def key(self, pos: int) -> Any:
        """What identifies the column's memory (None if unknown); equal keys mean equal columns."""
        if not self.by_memory:
            return None
        if pos not in self._keys:
            self._keys[pos] = self.memory_key(self._raw(pos))
        return self._keys[pos]

    def same(self, pos: int, other: _Side, other_pos: int) -> bool:
        mine = self.key(pos)
        return mine is not None and mine == other.key(other_pos)

    def agrees(self, pos: int, other: _Side, other_pos: int) -> bool:
        return self.same(pos, other, other_pos) or self.equal(pos, other, other_pos)

    # per library
    def memory_key(self, array: Any) -> Any:
        raise NotImplementedError

    def equal(self, pos: int, other: _Side, other_pos: int) -> bool:
        raise NotImplementedError

    def difference(self, pos: int, other: _Side, other_pos: int) -> str:
        raise NotImplementedError


def _checked_plan(base: _Side | None, sides: Sequence[_Side]) -> list[tuple[int, int]]:
    """The merge plan, after checking that no side repeats a column label (DataFrame and Table alike)."""
    for i, side in enumerate(sides):
        _unique(side, f"a branch's value (#{i + 1} of those that changed it)")
    if base is not None:
        _unique(base, "the base value")
    return _plan(base, sides)


def _plan(base: _Side | None, sides: Sequence[_Side]) -> list[tuple[int, int]]:
    """(branch, position) of every column of the result, in order."""
    plan: list[tuple[int, int]] = []
    old = base.where if base is not None else {}
    if base is not None:
        for bpos, label in enumerate(base.labels):
            pick = _base_column(label, bpos, base, sides)
            if pick is not None:
                plan.append(pick)
    added: dict[Any, list[tuple[int, int]]] = {}  # in order of first appearance, branch by branch
    for k, side in enumerate(sides):
        for pos, label in enumerate(side.labels):
            if label not in old:
                added.setdefault(label, []).append((k, pos))
    for label, holders in added.items():
        plan.append(holders[0] if len(holders) == 1 else _agree(label, holders, sides, "added"))
    return plan


def _base_column(label: Any, bpos: int, base: _Side, sides: Sequence[_Side]) -> tuple[int, int] | None:
    where = [side.where.get(label) for side in sides]
    changed = [(k, p) for k, p in enumerate(where) if p is not None and not base.same(bpos, sides[k], p)]
    if any(p is None for p in where):
        edits = [(k, p) for k, p in changed if not base.equal(bpos, sides[k], p)]
        if edits:
            k, p = edits[0]
            raise MergeConflictError(
                f"dropped by one branch and changed by another: {base.difference(bpos, sides[k], p)}"
            ).at(label)
        return None
    if not changed:
        return 0, where[0]  # type: ignore[return-value]  # every branch has it
    if len(changed) == 1:
        return changed[0]
    real = [(k, p) for k, p in changed if not base.equal(bpos, sides[k], p)]
    if not real:
        return changed[0]
    return _agree(label, real, sides, "changed")


def _agree(label: Any, holders: list[tuple[int, int]], sides: Sequence[_Side], what: str) -> tuple[int, int]:
    k0, p0 = holders[0]
    for k, p in holders[1:]:
        if not sides[k0].agrees(p0, sides[k], p):
            raise MergeConflictError(
                f"{what} by several branches to different values: {sides[k0].difference(p0, sides[k], p)}"
            ).at(label)
    return holders[0]


def _unique(side: _Side, what: str) -> None:
    if len(side.where) != len(side.labels):
        labels = side.labels
        dupes = sorted({x for x in labels if labels.count(x) > 1}, key=repr)
        raise MergeConflictError(
            f"{what} has duplicate column labels {dupes}; columns cannot be merged by name"
        )


def own_merge(branches: list[Any]) -> Callable[[Any, list[Any]], Any] | None:
    """The class's ``__stagekit_merge__`` classmethod, if any: every built-in merge defers to it."""
    method = getattr(type(branches[0]), "__stagekit_merge__", None)
    return method if callable(method) else None


# --- pandas ------------------------------------------------------------------------------------------


def _numpy_key(array: Any) -> tuple[Any, ...]:
    return (array.__array_interface__["data"][0], array.shape, array.strides, array.dtype)


class _PandasSide(_Side):
    def __init__(self, frame: Any) -> None:
        mgr = getattr(frame, "_mgr", None)
        self._blocks: Any = getattr(mgr, "blocks", None)
        self._blknos: Any = getattr(mgr, "blknos", None)
        self._blklocs: Any = getattr(mgr, "blklocs", None)
        if self._blknos is None or self._blklocs is None:
            self._blocks = None
        self._block_keys: dict[int, Any] = {}
        # to_numpy(object) lists string labels about twice as fast as tolist()
        labels = frame.columns.to_numpy(dtype=object).tolist()
        super().__init__(frame, labels, lambda i: frame.iloc[:, i].array)

    def key(self, pos: int) -> Any:
        if not self.by_memory:
            return None
        if self._blocks is None:  # no block manager to ask: one Series per column (slower, public API)
            return super().key(pos)
        # a column's memory is its block's memory and its row in the block: one key per block, not column
        blkno = int(self._blknos[pos])
        if blkno not in self._block_keys:
            self._block_keys[blkno] = self.memory_key(self._blocks[blkno].values)
        block_key = self._block_keys[blkno]
        return None if block_key is None else (block_key, int(self._blklocs[pos]))

    def memory_key(self, array: Any) -> Any:
        np = sys.modules["numpy"]
        if isinstance(array, np.ndarray):
            return _numpy_key(array)
        parts = [_numpy_key(x) for attr in ("_ndarray", "_data", "_mask")
                 if isinstance(x := getattr(array, attr, None), np.ndarray)]
        arrow = getattr(array, "_pa_array", None)
        if arrow is not None:
            parts.append(_arrow_key(arrow))
        return (array.dtype, *parts) if parts else None

    def series(self, pos: int) -> Any:
        return self.frame.iloc[:, pos]

    def equal(self, pos: int, other: _Side, other_pos: int) -> bool:
        assert isinstance(other, _PandasSide)
        return bool(self.series(pos).equals(other.series(other_pos)))

    def difference(self, pos: int, other: _Side, other_pos: int) -> str:
        assert isinstance(other, _PandasSide)
        return _series_difference(self.series(pos), other.series(other_pos))


def _series_difference(a: Any, b: Any) -> str:
    if a.dtype != b.dtype:
        return f"dtype {a.dtype} vs {b.dtype}"
    if not a.index.equals(b.index):
        return f"different rows: {short_repr(a)} vs {short_repr(b)}"
    try:
        same = (a.eq(b).fillna(False) | (a.isna() & b.isna())).to_numpy(dtype=bool)
    except Exception:  # a dtype without elementwise comparison
        return f"{short_repr(a)} vs {short_repr(b)}"
    count = int((~same).sum())
    if count == 0:
        return f"{short_repr(a)} vs {short_repr(b)}"
    i = int((~same).argmax())
    return (f"{count} of {len(a)} rows differ, the first at index {_scalar(a.index[i])}: "
            f"{_scalar(a.iloc[i])} vs {_scalar(b.iloc[i])}")


def _scalar(value: Any) -> str:
    item = getattr(value, "item", None)  # numpy scalars print as np.float64(...) otherwise
    return short_repr(item() if callable(item) and getattr(value, "ndim", None) == 0 else value, 30)


def merge_dataframe(base: Any, branches: list[Any]) -> Any:
    """Column-wise three-way merge of DataFrames; every branch must keep the same index."""
    own = own_merge(branches)
    if own is not None:
        return own(base, branches)
    pd = sys.modules["pandas"]
    index = branches[0].index
    for branch in branches[1:]:
        if branch.index is not index and not branch.index.equals(index):
            raise MergeConflictError(
                "the branches' row indexes differ (" + _index_difference(index, branch.index) + "); a "
                "DataFrame is merged column by column, so every branch must keep the same rows in the same "
                "order"
            )
    old = _PandasSide(base) if isinstance(base, pd.DataFrame) else None
    if old is not None and base.index is not index and not base.index.equals(index):
        old.by_memory = False
    plan = _checked_plan(old, [_PandasSide(b) for b in branches])
    return _assemble_frame(pd, plan, branches)


def dataframes_equal(a: Any, b: Any) -> bool:
    """``a.equals(b)``, but columns sharing memory are not compared and the first difference stops it."""
    if not (a.columns.equals(b.columns) and a.index.equals(b.index)):
        return False
    left, right = _PandasSide(a), _PandasSide(b)
    if len(left.where) != len(left.labels):  # duplicate labels: let pandas decide
        return bool(a.equals(b))
    return all(left.agrees(i, right, i) for i in range(len(left.labels)))


def _index_difference(a: Any, b: Any) -> str:
    if len(a) != len(b):
        return f"{len(a)} rows vs {len(b)} rows"
    extra, missing = b.difference(a), a.difference(b)
    if len(extra) or len(missing):
        return f"rows {short_repr(list(missing[:3]), 40)} vs {short_repr(list(extra[:3]), 40)}"
    return "the same labels in a different order"


def _assemble_frame(pd: Any, plan: list[tuple[int, int]], frames: list[Any]) -> Any:
    runs: list[tuple[int, list[int]]] = []
    for k, pos in plan:
        if runs and runs[-1][0] == k:
            runs[-1][1].append(pos)
        else:
            runs.append((k, [pos]))
    if not runs:
        return frames[0].iloc[:, []]
    pieces = [
        frames[k] if positions == list(range(frames[k].shape[1])) else frames[k].take(positions, axis=1)
        for k, positions in runs
    ]
    return pieces[0] if len(pieces) == 1 else pd.concat(pieces, axis=1)


# --- pyarrow -----------------------------------------------------------------------------------------


def _arrow_key(chunked: Any) -> tuple[Any, ...]:
    chunks = getattr(chunked, "chunks", [chunked])
    return (chunked.type, tuple(
        (c.offset, len(c), tuple(0 if b is None else b.address for b in c.buffers())) for c in chunks
    ))


class _ArrowSide(_Side):
    def __init__(self, table: Any) -> None:
        super().__init__(table, list(table.column_names), table.column)

    def memory_key(self, array: Any) -> Any:
        return _arrow_key(array)

    def equal(self, pos: int, other: _Side, other_pos: int) -> bool:
        return bool(arrow_equal(self.frame.column(pos), other.frame.column(other_pos)))

    def difference(self, pos: int, other: _Side, other_pos: int) -> str:
        a, b = self.frame.column(pos), other.frame.column(other_pos)
        if a.type != b.type:
            return f"type {a.type} vs {b.type}"
        return f"{short_repr(a)} vs {short_repr(b)}"


def merge_arrow_table(base: Any, branches: list[Any]) -> Any:
    """Column-wise three-way merge of Arrow Tables; rows align by position, so row counts must match."""
    own = own_merge(branches)
    if own is not None:
        return own(base, branches)
    pa = sys.modules["pyarrow"]
    rows = [b.num_rows for b in branches]
    if len(set(rows)) > 1:
        raise MergeConflictError(
            f"the branches' tables have different numbers of rows ({', '.join(map(str, rows))}); a Table is "
            "merged column by column, so every branch must keep the same rows in the same order"
        )
    old = _ArrowSide(base) if isinstance(base, pa.Table) else None
    plan = _checked_plan(old, [_ArrowSide(b) for b in branches])
    schema = pa.schema([branches[k].schema.field(p) for k, p in plan], metadata=branches[0].schema.metadata)
    return pa.Table.from_arrays([branches[k].column(p) for k, p in plan], schema=schema)


def arrow_equal(a: Any, b: Any) -> bool | None:
    """Equality of pyarrow values (``.equals``), counting NaN equal to NaN in floating columns."""
    equals = getattr(a, "equals", None)
    if not callable(equals):
        return None
    if equals(b):
        return True
    pa = sys.modules["pyarrow"]
    if isinstance(a, (pa.Table, pa.RecordBatch)):
        if not a.schema.equals(b.schema) or a.num_rows != b.num_rows:
            return False
        return all(arrow_equal(x, y) for x, y in zip(a.columns, b.columns, strict=True))
    if isinstance(a, (pa.Array, pa.ChunkedArray)) and pa.types.is_floating(a.type) and a.type == b.type:
        if len(a) != len(b) or a.null_count != b.null_count:
            return False
        np = sys.modules.get("numpy") or __import__("numpy")
        if not a.is_null().equals(b.is_null()):
            return False
        xa = a.fill_null(0).to_numpy(zero_copy_only=False)
        xb = b.fill_null(0).to_numpy(zero_copy_only=False)
        return bool(np.array_equal(xa, xb, equal_nan=True))
    return False
