"""Reading what discovery needs from installed metadata, without the email parser."""

from __future__ import annotations

from typing import Any

from stagekit.plugins.discovery import read_headers


class FakeDist:
    def __init__(self, metadata: str | None) -> None:
        self.text = metadata
        self.metadata = {"Name": "from-importlib"}
        self.version = "9.9"
        self.requires = ["x"]

    def read_text(self, name: str) -> str | None:
        return self.text if name == "METADATA" else None


def test_headers_are_read_from_the_header_block_only() -> None:
    meta = ("Metadata-Version: 2.4\nName: stagekit-weather\nVersion: 1.2.3\n"
            "Requires-Dist: stagekit>=0.1,<0.2\nRequires-Dist: pandas\nSummary: a summary\n  folded on\n"
            "\nRequires-Dist: not-a-header (this is the description)\n")
    h = read_headers(FakeDist(meta))
    assert (h.name, h.version, h.requires) == ("stagekit-weather", "1.2.3", ("stagekit>=0.1,<0.2", "pandas"))


def test_unusual_metadata_falls_back_to_importlib() -> None:
    h: Any = read_headers(FakeDist("Metadata-Version: 2.1\n"))
    assert (h.name, h.version, h.requires) == ("from-importlib", "9.9", ("x",))
