"""The manifest file: a snapshot as one JSON document, written one entry per line and read back fast.

Reading a 10,000-file manifest with ``json.loads`` and checking entry by entry took longer than hashing
the 40 MiB it describes. The lines written for plain files all have one shape, so reading matches those
with one regular expression and gives only the others (symlinks, directories, paths JSON must escape, a
hand-edited file) to ``json``. Both ways end in ``Snapshot.from_header``, which checks every entry.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import Any

from stagekit.snapshots.types import Entry, Snapshot

_PLAIN = r'[ !#-\[\]-~]*'  # printable ASCII but " and \: the same in JSON as in Python
_PLAIN_RE = re.compile(_PLAIN)
_FILE_LINE = re.compile(rf'\{{"path": "({_PLAIN})", "type": "file", "size": (\d+), "hash": "([0-9a-f]{{64}})", '
                        r'"mode": "([0-7]{4})"\}')
_FILE_LINES = re.compile(rf"(?m)^{_FILE_LINE.pattern},?$")  # the same, each a whole line of a text
_OPEN, _CLOSE, _SEP = ', "entries": [\n', "\n]}\n", ",\n"


def _line(e: Entry) -> str:
    if e.kind == "file" and _PLAIN_RE.fullmatch(e.path):  # the common case, formatted directly: 3x faster
        return (f'{{"path": "{e.path}", "type": "file", "size": {e.size}, "hash": "{e.hash}", '
                f'"mode": "{e.mode:04o}"}}')
    return json.dumps(e.to_json())


def dumps(snap: Snapshot) -> str:
    """The manifest as JSON with one entry per line: readable, diffable, and fast to write and read."""
    head = json.dumps(snap.header())
    return f"{head[:-1]}{_OPEN}{_SEP.join(map(_line, snap.entries))}{_CLOSE}"


def layout(data: bytes) -> tuple[dict[str, Any], str] | None:
    """The header and the entry lines (as one text) of a manifest laid out as ``dumps`` writes it; None if it
    is not laid out so."""
    text = data.decode()
    head, sep, body = text.partition(_OPEN)  # a JSON string holds no raw newline: only ours match
    if not sep or not body.endswith(_CLOSE):
        return None
    header = json.loads(head + "}")
    if not isinstance(header, dict):
        raise ValueError("the manifest is not a JSON object")
    return header, body[:-len(_CLOSE)]


def lines(text: str) -> list[str]:
    return text.split(_SEP) if text else []


def cut(text: str, n: int) -> list[str]:
    """``text``'s entry lines in ``n`` runs of about equal length, each a text of whole lines."""
    chunks, start = [], 0
    for i in range(1, n):
        end = text.find(_SEP, max(start, len(text) * i // n))
        if end < 0:
            break
        chunks.append(text[start:end])
        start = end + len(_SEP)
    chunks.append(text[start:])
    return [c for c in chunks if c]


def file_columns(text: str) -> tuple[list[str], list[int], list[str]] | None:
    """(paths, sizes, hashes) of the entry lines in ``text`` if every one is a plain file's line, else None.

    One regular expression pass and a few C loops: a third of the time of making an ``Entry`` per line, for
    ``verify``, which only needs these.
    """
    newlines = text.count("\n")
    if text.endswith(",") or text.count(_SEP) != newlines:  # not JSON: let ``entries`` say where
        return None
    found = _FILE_LINES.findall(text)
    if len(found) != newlines + 1:
        return None
    paths, sizes, hashes, _ = zip(*found, strict=True)
    return list(paths), list(map(int, sizes)), list(hashes)


def entries(lines: Iterable[str]) -> list[Entry]:
    """The entries of manifest lines as ``dumps`` writes them, unchecked but for their form."""
    out = []
    for line in lines:
        m = _FILE_LINE.fullmatch(line)
        if m is not None:
            out.append(Entry(m[1], "file", int(m[4], 8), int(m[2]), m[3]))
        else:
            obj = json.loads(line)
            if not isinstance(obj, dict):
                raise ValueError(f"entry {line[:80]!r} is not an object")
            out.append(Entry.from_json(obj))
    return out


def loads(data: bytes) -> Snapshot:
    """The snapshot a manifest describes; ``ValueError``, ``KeyError`` or ``TypeError`` if it is damaged."""
    laid = layout(data)
    if laid is None:  # not laid out as we write it: read it as plain JSON
        return Snapshot.from_json(json.loads(data))
    header, text = laid
    return Snapshot.from_header(header, entries(lines(text)))
