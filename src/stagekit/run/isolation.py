"""Isolation of branches: a stage cannot change what another stage sees, under every executor.

Values are shared between stages, never copied, so the runner forks a context for eight branches for free.
What a stage is handed is guarded instead, where the stage runs (:func:`guard`, called by ``run_task``):

* a pandas ``DataFrame`` or ``Series`` arrives as a shallow copy. Under copy-on-write (pandas 3 always; pandas
  2 with ``pd.options.mode.copy_on_write = True``) a shallow copy shares the data until either side writes,
  so every in-place edit (``frame[col] = ...``, ``frame.loc[...] = ...``, ``drop(inplace=True)``, renaming
  columns or the index) changes the stage's copy only, and costs nothing until then (about 8 us a frame).
  Under pandas 2 without copy-on-write a shallow copy would share writes, so the frame is copied deeply:
  correct, but it costs a copy per stage (enable copy-on-write to make it free);
* a numpy array arrives as a read-only view: an in-place edit raises ``ValueError: assignment destination is
  read-only`` in the stage that tried it;
* anything else (a dict, a list, an object) arrives as is. ``isolation="strict"`` (opt-in) pickles each
  such input before the stage, hands the stage a copy made from that pickle, and fingerprints the copy
  after it: the stage that changed one fails with an :class:`~stagekit.errors.InputMutatedError` naming it
  and the artifact, and nobody else saw the change. The fingerprint is a hash of the copy's pickle, taken
  before and after; the cost, three serializations and one deserialization of each such input per stage, is
  why it is not the default. Values that cannot be pickled are handed as they are, unchecked.

Process and Ray workers receive their own deserialized copies, so an edit there never reached another stage;
the guard makes the in-driver executors behave the same, and ``strict`` reports the edit under all of them.
"""

from __future__ import annotations

import hashlib
import pickle
import sys
from collections.abc import Mapping
from typing import Any

from stagekit.errors import InputMutatedError

# classes whose values nothing can change in place: handed as they are, never fingerprinted
_PLAIN: frozenset[type] = frozenset({int, float, complex, bool, str, bytes, type(None), range, frozenset})
_KIND: dict[type, int] = dict.fromkeys(_PLAIN, 0)  # class -> 0 plain, 1 numpy array, 2 pandas frame, 3 other
_ARRAY, _FRAME, _OTHER = 1, 2, 3


def _kind(cls: type) -> int:
    kind = _KIND.get(cls)
    if kind is None:
        kind = _OTHER
        np = sys.modules.get("numpy")  # a value can only be an array if numpy is imported: no import here
        pd = sys.modules.get("pandas")
        if np is not None and issubclass(cls, np.ndarray):
            kind = _ARRAY
        elif pd is not None and issubclass(cls, pd.DataFrame | pd.Series):
            kind = _FRAME
        _KIND[cls] = kind
    return kind


def _kind_of(cls: type) -> int:
    kind = _KIND.get(cls)
    return _kind(cls) if kind is None else kind


def guard(kwargs: dict[str, Any], requires: tuple[str, ...]) -> dict[str, Any]:
    """``kwargs`` with each required artifact that could be changed in place handed as a copy-on-write copy
    (frames) or a read-only view (arrays); ``kwargs`` itself when there is none (no new dict)."""
    out: dict[str, Any] | None = None
    for name in requires:
        value = kwargs[name]
        kind = _kind_of(value.__class__)
        if kind == _ARRAY:
            if not value.flags.writeable:
                continue
            handed = value.view()
            handed.flags.writeable = False
        elif kind == _FRAME:
            handed = _frame_copy(value)
        else:
            continue
        if out is None:
            out = dict(kwargs)
        out[name] = handed
    return kwargs if out is None else out


def _frame_copy(frame: Any) -> Any:
    return frame.copy(deep=not _copy_on_write())


def _copy_on_write() -> bool:
    """Whether a shallow copy of a frame is isolated: pandas 3, or pandas 2 with copy-on-write enabled."""
    pd = sys.modules["pandas"]
    if int(pd.__version__.split(".", 1)[0]) >= 3:
        return True
    return pd.options.mode.copy_on_write is True


# --- strict: fingerprints before and after ----------------------------------------------------------------


def strict_copies(kwargs: dict[str, Any], requires: tuple[str, ...]) -> tuple[dict[str, Any], dict[str, bytes]]:
    """For ``isolation="strict"``: ``kwargs`` with each required artifact that :func:`guard` does not isolate
    (arrays and frames are; plain immutable values cannot change) replaced by a copy made from its pickle,
    and the fingerprint of each such pickle (values that cannot be pickled are left as they are)."""
    found: dict[str, bytes] = {}
    out: dict[str, Any] | None = None
    for name in requires:
        value = kwargs[name]
        kind = _kind_of(value.__class__)
        if kind != _OTHER:
            continue
        try:
            copy = pickle.loads(pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL))
            # the copy's own pickle, which is what the one after the stage is compared with (a set rebuilt
            # from a pickle may iterate in another order than the original: never a false alarm)
            digest = _digest(pickle.dumps(copy, protocol=pickle.HIGHEST_PROTOCOL))
        except Exception:
            continue
        if out is None:
            out = dict(kwargs)
        out[name] = copy
        found[name] = digest
    return (kwargs if out is None else out), found


def _digest(data: bytes) -> bytes:
    return hashlib.blake2b(data, digest_size=16).digest()


def _fingerprint(value: Any) -> bytes | None:
    try:
        return _digest(pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL))
    except Exception:
        return None


def changed(stage: str, kwargs: Mapping[str, Any], before: dict[str, bytes]) -> InputMutatedError | None:
    """The error naming the first input (in the stage's order) whose fingerprint changed, else None."""
    for name, digest in before.items():
        if _fingerprint(kwargs[name]) != digest:
            value = kwargs[name]
            return InputMutatedError(
                f"stage {stage!r} changed its input artifact {name!r} ({type(value).__name__}) in place; other "
                "stages that read it may see the change (isolation='strict' checks every input): return a new "
                "value instead", stage=stage, artifact=name)
    return None
