"""The HTML report: real runs rendered, parsed back with html.parser, and checked element by element."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from stagekit import Pipeline, RunResult, StageError, stage
from stagekit.graph.dag import Dag
from stagekit.report.html import write_report

DURATION = re.compile(r"\d+(\.\d+)? (ms|s)|\d+ min \d+ s")
XSS = "<script>alert('x')</script>"
VOID = {"meta", "link", "br", "img", "input", "hr", "col", "source"}


class Element:
    def __init__(self, tag: str, attrs: dict[str, str]) -> None:
        self.tag, self.attrs = tag, attrs
        self.children: list[Element] = []
        self.texts: list[str] = []

    @property
    def classes(self) -> list[str]:
        return self.attrs.get("class", "").split()

    def text(self) -> str:
        return "".join(self.texts) + "".join(c.text() for c in self.children)

    def all(self, tag: str, cls: str | None = None) -> list[Element]:
        found, todo = [], list(self.children)
        while todo:
            el = todo.pop(0)
            if el.tag == tag and (cls is None or cls in el.classes):
                found.append(el)
            todo.extend(el.children)
        return found


class Tree(HTMLParser):
    """Build an element tree, asserting that every end tag closes the element it should."""

    def __init__(self, text: str) -> None:
        super().__init__(convert_charrefs=True)
        self.root = Element("#root", {})
        self.stack = [self.root]
        self.feed(text)
        self.close()
        assert self.stack == [self.root], f"unclosed: {[e.tag for e in self.stack[1:]]}"

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        el = Element(tag, {k: v or "" for k, v in attrs})
        self.stack[-1].children.append(el)
        if tag not in VOID:
            self.stack.append(el)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.stack[-1].children.append(Element(tag, {k: v or "" for k, v in attrs}))

    def handle_endtag(self, tag: str) -> None:
        assert self.stack[-1].tag == tag, f"</{tag}> closes <{self.stack[-1].tag}>"
        self.stack.pop()

    def handle_data(self, data: str) -> None:
        self.stack[-1].texts.append(data)


# --- a real pipeline ----------------------------------------------------------------------------------------

@stage(provides=["prices"], params={"n": 300})
def make_prices(n: int) -> pd.Series:
    steps = np.random.default_rng(7).normal(0.0005, 0.01, n)
    return pd.Series(100 * np.exp(np.cumsum(steps)), index=pd.bdate_range("2021-01-04", periods=n), name="price")


@stage(requires=["prices"], provides=["equity_curve"])
def equity(prices: pd.Series) -> pd.Series:
    curve: pd.Series = prices / prices.iloc[0]
    return curve


@stage(requires=["equity_curve"], provides=["metrics"])
def summarize(equity_curve: pd.Series) -> dict[str, Any]:
    return {"days": len(equity_curve), "sharpe": 1.25, "big": 1234567.891, "tiny": 0.00001234}


@stage(requires=["prices"], provides=["table"])
def tabulate(prices: pd.Series) -> pd.DataFrame:
    return pd.DataFrame({f"c{j}": prices.to_numpy()[:30] * j for j in range(15)},
                        index=prices.index[:30]).rename_axis("date")


@stage(requires=["prices"], provides=["note"], params={"label": XSS})
def annotate(prices: pd.Series, label: str) -> list[Any]:
    return [label, len(prices), 2.5]


STAGES = [make_prices, equity, summarize, tabulate, annotate]


@pytest.fixture(scope="module")
def run() -> tuple[RunResult, Dag]:
    pipeline = Pipeline(STAGES)
    return pipeline.run(), pipeline.dag()


def render(tmp_path: Path, result: RunResult, dag: Dag, **kwargs: Any) -> tuple[str, Element]:
    path = write_report(tmp_path / "out" / "report.html", result, dag, title=kwargs.pop("title", "demo"), **kwargs)
    assert path == tmp_path / "out" / "report.html"
    text = path.read_text(encoding="utf-8")
    return text, Tree(text).root


def artifact(root: Element, name: str) -> Element:
    [found] = [d for d in root.all("div", "artifact") if d.attrs["data-artifact"] == name]
    return found


def test_the_header_names_the_run(tmp_path: Path, run: tuple[RunResult, Dag]) -> None:
    result, dag = run
    _, root = render(tmp_path, result, dag, title="my <b>demo</b>")
    [header] = root.all("header")
    text = header.text()
    assert root.all("h1")[0].text() == "my <b>demo</b>"  # escaped, so it parses back as text
    for expected in (result.run_id, "sequential", "succeeded", "5 ok"):
        assert expected in text
    assert DURATION.search(text)
    assert root.all("title")[0].text().startswith("my <b>demo</b>")
    assert "stagekit 0.1.0" in root.all("footer")[0].text()


def test_the_dag_has_one_box_per_stage_with_its_time_and_an_arrow_per_edge(
    tmp_path: Path, run: tuple[RunResult, Dag]
) -> None:
    result, dag = run
    _, root = render(tmp_path, result, dag)
    [svg] = root.all("svg", "dag")
    nodes = svg.all("g", "node")
    assert [n.attrs["data-stage"] for n in nodes] == dag.order
    for node in nodes:
        name = node.attrs["data-stage"]
        assert node.attrs["data-status"] == "ok" and "ok" in node.classes
        assert len(node.all("rect")) == 3  # the box, the bar's track, the bar
        texts = [t.text() for t in node.all("text")]
        assert texts[0] == name and DURATION.fullmatch(texts[2]) and texts[3].endswith("%")
        tip = node.all("title")[0].text()
        assert f"provides: {', '.join(dag.stages[name].provides)}" in tip and "plugin: -" in tip
        assert f"requires: {', '.join(dag.stages[name].requires) or '-'}" in tip
    edges = svg.all("path", "edge")
    assert len(edges) == sum(len(d) for d in dag.deps.values()) == 4
    assert all(e.attrs["marker-end"] == "url(#arrow)" and e.attrs["d"].startswith("M") for e in edges)
    assert {e.all("title")[0].text() for e in edges} >= {"make_prices → equity: prices",
                                                          "equity → summarize: equity_curve"}
    assert svg.all("marker")[0].attrs["id"] == "arrow"
    slow = [n for n in nodes if "slow" in n.classes]
    assert 1 <= len(slow) <= 3
    slowest = max(result.stages.values(), key=lambda r: r.duration).name
    assert slowest in {n.attrs["data-stage"] for n in slow}


def test_boxes_sit_below_the_stages_they_wait_for(tmp_path: Path, run: tuple[RunResult, Dag]) -> None:
    result, dag = run
    _, root = render(tmp_path, result, dag)
    y = {g.attrs["data-stage"]: float(g.all("rect")[0].attrs["y"]) for g in root.all("g", "node")}
    for src, dst in dag.edges():
        assert y[dst] > y[src]


def test_the_stage_table_lists_every_stage_in_dag_order(tmp_path: Path, run: tuple[RunResult, Dag]) -> None:
    result, dag = run
    _, root = render(tmp_path, result, dag)
    [section] = [s for s in root.all("section") if s.attrs.get("id") == "stages"]
    rows = section.all("tr")[1:]
    assert [r.all("td")[0].text() for r in rows] == dag.order
    for row in rows:
        name, plugin, status, time, provided, error = (c.text() for c in row.all("td"))
        assert plugin == "-" and status == "ok" and DURATION.fullmatch(time) and error == ""
        assert provided == ", ".join(dag.stages[name].provides)


def test_default_artifacts_are_what_the_last_stages_provided(tmp_path: Path, run: tuple[RunResult, Dag]) -> None:
    result, dag = run
    _, root = render(tmp_path, result, dag)
    shown = [d.attrs["data-artifact"] for d in root.all("div", "artifact")]
    assert shown == ["table", "note", "metrics"]  # in DAG order; equity_curve and prices feed other stages


def test_metrics_render_as_a_table_with_formatted_numbers(tmp_path: Path, run: tuple[RunResult, Dag]) -> None:
    result, dag = run
    _, root = render(tmp_path, result, dag, artifacts=["metrics"])
    rows = {r.all("td")[0].text(): r.all("td")[1].text() for r in artifact(root, "metrics").all("tr")}
    assert rows == {"days": "300", "sharpe": "1.25", "big": "1,234,567.89", "tiny": "1.2340e-05"}


def test_a_dated_series_renders_as_a_line_chart(tmp_path: Path, run: tuple[RunResult, Dag]) -> None:
    result, dag = run
    _, root = render(tmp_path, result, dag, artifacts=["equity_curve"])
    box = artifact(root, "equity_curve")
    [chart] = box.all("svg", "chart")
    points = [tuple(map(float, p.split(","))) for p in chart.all("polyline")[0].attrs["points"].split()]
    assert len(points) == 300
    width, height = float(chart.attrs["width"]), float(chart.attrs["height"])
    assert all(0 <= x <= width and 0 <= y <= height for x, y in points)
    assert [x for x, _ in points] == sorted(x for x, _ in points)
    curve = result.artifacts["equity_curve"]
    lowest = min(range(300), key=lambda i: curve.iloc[i])  # the lowest value is drawn highest on the page
    assert points[lowest][1] == max(y for _, y in points)
    labels = [t.text() for t in chart.all("text")]
    assert "2021-01-04" in labels and curve.index[-1].strftime("%Y-%m-%d") in labels
    assert len(labels) >= 5 + 3  # x ticks and y ticks
    caption = box.all("p")[-1].text()
    assert "300 points" in caption and "min " in caption and "max " in caption


def test_a_long_series_is_downsampled_keeping_its_extremes(tmp_path: Path, run: tuple[RunResult, Dag]) -> None:
    result, dag = run
    values = np.sin(np.linspace(0, 20, 50_000))
    values[31_337] = 5.0
    series = pd.Series(values, index=pd.date_range("2000-01-01", periods=50_000, freq="h", tz="UTC"))
    result = RunResult(result.run_id, True, {"long": series}, result.stages, {}, 1.0, "sequential")
    _, root = render(tmp_path, result, dag, artifacts=["long"])
    box = artifact(root, "long")
    points = box.all("polyline")[0].attrs["points"].split()
    assert 500 <= len(points) <= 1000
    ys = [float(p.split(",")[1]) for p in points]
    assert min(ys) < 20  # the spike survived: it is the top of the chart
    assert "50,000 points" in box.text() and "max 5" in box.text()


def test_a_frame_shows_its_shape_and_head(tmp_path: Path, run: tuple[RunResult, Dag]) -> None:
    result, dag = run
    _, root = render(tmp_path, result, dag, artifacts=["table"])
    box = artifact(root, "table")
    assert "30 rows \u00d7 15 columns" in box.text()
    rows = box.all("tr")
    assert len(rows) == 1 + 10
    assert [c.text() for c in rows[0].all("th")] == ["date", *(f"c{j}" for j in range(12))]
    assert rows[1].all("th")[0].text() == "2021-01-04"
    assert rows[1].all("td")[1].text() == f"{result.artifacts['table'].iloc[0, 1]:.4g}"


def test_other_values(tmp_path: Path, run: tuple[RunResult, Dag]) -> None:
    result, dag = run

    class Opaque:
        def __repr__(self) -> str:
            return "Opaque(" + "x" * 1000 + ")"

    values = {
        "numbers": pd.Series([3.0, 1.0, np.nan, 2.0], index=[10, 20, 30, 40]),
        "words": pd.Series(["a", "b"]),
        "short": tuple(range(100)),
        "opaque": Opaque(),
        "empty_chart": pd.Series([np.nan, np.nan], index=[1, 2]),
    }
    result = RunResult(result.run_id, True, values, result.stages, {}, 1.0, "sequential")
    _, root = render(tmp_path, result, dag, artifacts=[*values, "missing"])
    assert len(artifact(root, "numbers").all("polyline")[0].attrs["points"].split()) == 3
    assert "40" in [t.text() for t in artifact(root, "numbers").all("text")]
    assert not artifact(root, "words").all("svg") and "pandas" in artifact(root, "words").text()
    assert "0, 1, 2" in artifact(root, "short").text() and "(100 items)" in artifact(root, "short").text()
    opaque = artifact(root, "opaque").text()
    assert "Opaque(xxx" in opaque and len(opaque) < 500
    assert "no finite values" in artifact(root, "empty_chart").text()
    assert "not produced" in artifact(root, "missing").text()


def test_an_artifact_that_cannot_render_shows_its_error_and_spares_the_rest(
    tmp_path: Path, run: tuple[RunResult, Dag]
) -> None:
    result, dag = run

    class Broken:
        def __len__(self) -> int:
            raise RuntimeError("len <exploded>")

    values = {**result.artifacts, "broken": Broken()}
    result = RunResult(result.run_id, True, values, result.stages, {}, 1.0, "sequential")
    text, root = render(tmp_path, result, dag, artifacts=["broken", "metrics"])
    assert "RuntimeError: len <exploded>" in artifact(root, "broken").text()
    assert "len &lt;exploded&gt;" in text
    assert len(artifact(root, "metrics").all("tr")) == 4


def test_no_external_references(tmp_path: Path, run: tuple[RunResult, Dag]) -> None:
    result, dag = run
    text, root = render(tmp_path, result, dag, artifacts=["metrics", "equity_curve", "table", "note"])
    assert not re.search(r"https?://", text)
    assert not root.all("script") and not root.all("link") and not root.all("img") and not root.all("iframe")
    assert not re.search(r"\b(src|href)=", text)
    assert set(re.findall(r"url\([^)]*\)", text)) == {"url(#arrow)"}
    assert "@import" not in text


def test_text_is_escaped(tmp_path: Path, run: tuple[RunResult, Dag]) -> None:
    result, dag = run
    text, root = render(tmp_path, result, dag, title=XSS)
    assert "<script" not in text and "&lt;script&gt;" in text
    assert not root.all("script")
    assert XSS in artifact(root, "note").text()  # shown as text


def test_a_failed_run_shows_what_failed_and_what_was_cancelled(tmp_path: Path) -> None:
    @stage(requires=["prices"], provides=["signal"])
    def explode(prices: pd.Series) -> pd.Series:
        raise ValueError("bad <input>\nsecond line")

    @stage(requires=["signal"], provides=["orders"])
    def trade(signal: pd.Series) -> int:
        return 1

    pipeline = Pipeline([make_prices, equity, explode, trade])
    with pytest.raises(StageError) as caught:
        pipeline.run(executor="thread", workers=2)
    result = caught.value.result
    text, root = render(tmp_path, result, pipeline.dag())
    assert "failed" in root.all("header")[0].text() and "explode" in root.all("header")[0].text()
    status = {g.attrs["data-stage"]: g.attrs["data-status"] for g in root.all("g", "node")}
    assert status == {"make_prices": "ok", "equity": "ok", "explode": "failed", "trade": "cancelled"}
    rows = {r.all("td")[0].text(): r.all("td") for r in root.all("tr") if r.all("td")}
    assert rows["explode"][5].text() == "ValueError: bad <input>"
    assert rows["trade"][2].text() == "cancelled"
    assert "bad &lt;input&gt;" in text and "second line" not in text
    shown = {d.attrs["data-artifact"]: d.text() for d in root.all("div", "artifact")}
    assert set(shown) == {"equity_curve", "orders"}  # the sinks: equity, and trade downstream of explode
    assert "not produced" in shown["orders"] and "svg" not in shown["orders"]
    assert artifact(root, "equity_curve").all("polyline")


def test_writes_are_atomic(tmp_path: Path, run: tuple[RunResult, Dag], monkeypatch: pytest.MonkeyPatch) -> None:
    result, dag = run
    path = tmp_path / "report.html"
    write_report(path, result, dag, title="first")
    before = path.read_bytes()
    broken = RunResult(result.run_id, True, result.artifacts, dict(result.stages), {}, None, "x")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        write_report(path, broken, dag, title="second")
    assert path.read_bytes() == before
    monkeypatch.setattr(os, "fsync", lambda fd: (_ for _ in ()).throw(OSError("disk full")))
    with pytest.raises(OSError, match="disk full"):
        write_report(path, result, dag, title="third")
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.html"]  # no temporary file left


def random_dag(count: int, seed: int) -> list[Any]:
    rng = np.random.default_rng(seed)

    def combine(**inputs: int) -> int:
        return len(inputs)

    stages = []
    for i in range(count):
        window = range(max(0, i - 12), i)
        picks = sorted(rng.choice(list(window), size=min(len(window), int(rng.integers(0, 4))), replace=False))
        stages.append(stage(combine, name=f"stage_{i:03d}", requires=[f"a{j}" for j in picks], provides=[f"a{i}"]))
    return stages


def boxes(root: Element) -> list[tuple[float, float, float, float]]:
    out = []
    for g in root.all("g", "node"):
        r = g.all("rect")[0].attrs
        out.append((float(r["x"]), float(r["y"]), float(r["width"]), float(r["height"])))
    return out


def test_a_hundred_stage_dag_lays_out_without_overlapping_boxes(tmp_path: Path) -> None:
    pipeline = Pipeline(random_dag(100, seed=3))
    result, dag = pipeline.run(), pipeline.dag()
    _, root = render(tmp_path, result, dag)
    [svg] = root.all("svg", "dag")
    placed = boxes(root)
    assert len(placed) == 100 and len({y for _, y, _, _ in placed}) > 5
    width, height = float(svg.attrs["width"]), float(svg.attrs["height"])
    for i, (x, y, w, h) in enumerate(placed):
        assert 0 <= x <= width - w and 0 <= y <= height - h
        for x2, y2, w2, h2 in placed[i + 1:]:
            assert x + w <= x2 or x2 + w2 <= x or y + h <= y2 or y2 + h2 <= y, "two boxes overlap"
    assert len(svg.all("path", "edge")) == sum(len(d) for d in dag.deps.values())


def test_a_long_chain_lays_out_without_recursion(tmp_path: Path) -> None:
    def step(**inputs: int) -> int:
        return 1

    chain = [stage(step, name=f"s{i}", requires=[f"a{i - 1}"] if i else [], provides=[f"a{i}"]) for i in range(1500)]
    pipeline = Pipeline(chain)
    _, root = render(tmp_path, pipeline.run(), pipeline.dag())
    xs = {x for x, _, _, _ in boxes(root)}
    assert len(boxes(root)) == 1500 and len(xs) == 1  # a chain is a straight column


def test_importing_the_report_module_does_not_import_pandas() -> None:
    code = ("import sys, stagekit.report.html\n"
            "print(sorted(m for m in ('pandas', 'numpy', 'pyarrow') if m in sys.modules))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert proc.stdout.strip() == "[]"


def test_after_edges_are_dashed_and_an_empty_pipeline_still_renders(tmp_path: Path) -> None:
    @stage(provides=["a"])
    def first() -> int:
        return 1

    @stage(after=["first"], provides=["b"])
    def second() -> dict[str, int]:
        return {f"k{i}": i for i in range(300)}

    pipeline = Pipeline([first, second])
    _, root = render(tmp_path, pipeline.run(), pipeline.dag())
    [edge] = root.all("path", "edge")
    assert "after" in edge.classes and edge.all("title")[0].text() == "first → second: (after)"
    assert len(artifact(root, "b").all("tr")) == 200 and "first 200 of 300 entries" in artifact(root, "b").text()
    empty = Pipeline([])
    _, root = render(tmp_path, empty.run(), empty.dag())
    [svg] = root.all("svg", "dag")
    assert not svg.all("g", "node") and float(svg.attrs["height"]) > 0
    assert "no artifacts to show" in root.text()


def test_layers_are_ordered_to_avoid_crossings(tmp_path: Path) -> None:
    def make(**inputs: int) -> int:
        return 1

    # declared so that declaration order would cross every edge: sources a0..a3, consumers in reverse
    sources = [stage(make, name=f"src{i}", provides=[f"a{i}"]) for i in range(4)]
    consumers = [stage(make, name=f"use{i}", requires=[f"a{i}"], provides=[f"b{i}"]) for i in reversed(range(4))]
    pipeline = Pipeline(sources + consumers)
    _, root = render(tmp_path, pipeline.run(), pipeline.dag())
    x = {g.attrs["data-stage"]: float(g.all("rect")[0].attrs["x"]) for g in root.all("g", "node")}
    assert sorted(range(4), key=lambda i: x[f"src{i}"]) == sorted(range(4), key=lambda i: x[f"use{i}"])
    for i in range(4):
        assert x[f"src{i}"] == x[f"use{i}"]  # each consumer straight below its source


@pytest.mark.parametrize(("low", "high", "expected"), [
    (0.9744, 1.178, ["1.00", "1.05", "1.10", "1.15"]),
    (-5, 5, ["-4", "-2", "0", "2", "4"]),
    (1000, 1e6, ["200,000", "400,000", "600,000", "800,000", "1,000,000"]),
])
def test_axis_ticks_are_round_numbers(low: float, high: float, expected: list[str]) -> None:
    from stagekit.report.chart_svg import nice_ticks

    assert nice_ticks(low, high) == expected


@pytest.mark.parametrize(("seconds", "text"), [(0.00042, "0.4 ms"), (0.25, "250 ms"), (3.14159, "3.14 s"),
                                               (125.0, "2 min 5 s")])
def test_durations_read_naturally(seconds: float, text: str) -> None:
    from stagekit.report.format import duration

    assert duration(seconds) == text


def test_each_stages_log_lines_are_shown_escaped_and_bounded(tmp_path: Path) -> None:
    import logging

    from stagekit.report.logs import MAX_LINES

    log = logging.getLogger("report_test")

    @stage(provides=["x"])
    def talkative() -> int:
        for i in range(MAX_LINES + 5):
            log.warning("line %d %s", i, XSS)
        return 1

    @stage(requires=["x"], provides=["y"])
    def calm(x: int) -> int:
        log.info("calm and <quiet>")
        return x

    @stage(requires=["y"], provides=["z"])
    def mute(y: int) -> int:
        return y

    pipeline = Pipeline([talkative, calm, mute])
    root_logger = logging.getLogger()
    before = root_logger.level
    root_logger.setLevel(logging.INFO)  # the run keeps INFO records (the driver's level, by default)
    try:
        result = pipeline.run(executor="process", workers=2)
    finally:
        root_logger.setLevel(before)
    text, root = render(tmp_path, result, pipeline.dag())
    blocks = {d.attrs["data-stage"]: d for d in root.all("details", "logs")}
    assert set(blocks) == {"talkative", "calm"}  # a stage that logged nothing has no block
    assert "open" in blocks["talkative"].attrs and "open" not in blocks["calm"].attrs  # warnings open theirs
    lines = [span.text() for span in blocks["talkative"].all("span", "lv-WARNING")]
    assert len(lines) == MAX_LINES and lines[0].endswith(f"WARNING report_test: line 0 {XSS}")
    assert f"first {MAX_LINES:,} of {MAX_LINES + 5:,} lines" in blocks["talkative"].text()
    assert "<script" not in text and not root.all("script")
    assert [span.text()[13:] for span in blocks["calm"].all("span", "lv-INFO")] == [
        "INFO report_test: calm and <quiet>"]  # after the time, HH:MM:SS.mmm


def test_a_run_that_logged_nothing_says_so(tmp_path: Path, run: tuple[RunResult, Dag]) -> None:
    result, dag = run
    _, root = render(tmp_path, result, dag)
    [section] = [s for s in root.all("section") if s.attrs.get("id") == "logs"]
    assert "no stage logged anything" in section.text()


def test_an_abandoned_stage_is_counted_in_the_header(tmp_path: Path) -> None:
    import attrs

    pipeline = Pipeline([make_prices, equity])
    result = pipeline.run()
    records = dict(result.stages)
    records["equity"] = attrs.evolve(records["equity"], status="abandoned")
    abandoned = attrs.evolve(result, ok=False, stages=records)
    _, root = render(tmp_path, abandoned, pipeline.dag())
    assert "1 abandoned" in root.all("header")[0].text()


def test_a_cached_stage_shows_what_it_saved_and_why_each_stage_ran(tmp_path: Path) -> None:
    import attrs

    pipeline = Pipeline([make_prices, equity, summarize])
    result = pipeline.run()
    records = dict(result.stages)
    records["make_prices"] = attrs.evolve(records["make_prices"], status="cached", duration=0.0, saved=3.25,
                                          reason="cached from run abc")
    records["equity"] = attrs.evolve(records["equity"], reason="code changed")
    _, root = render(tmp_path, attrs.evolve(result, stages=records), pipeline.dag())
    header = root.all("header")[0].text()
    assert "2 ok" in header and "1 cached" in header and "3.25 s (by the cached stages)" in header
    [section] = [s for s in root.all("section") if s.attrs.get("id") == "stages"]
    assert [th.text() for th in section.all("th")] == ["stage", "plugin", "status", "time", "provided", "reason",
                                                       "error"]
    cells = {r.all("td")[0].text(): [c.text() for c in r.all("td")] for r in section.all("tr")[1:]}
    assert cells["make_prices"][2:6] == ["cached", "saved 3.25 s", "prices", "cached from run abc"]
    assert cells["equity"][2] == "ok" and DURATION.fullmatch(cells["equity"][3]) and cells["equity"][5] == (
        "code changed")
    assert cells["summarize"][5] == ""
    [node] = [n for n in root.all("g", "node") if n.attrs["data-stage"] == "make_prices"]
    assert "cached" in node.classes and node.attrs["data-status"] == "cached"
    texts = [t.text() for t in node.all("text")]
    assert texts[2] == "cached · saved 3.25 s" and texts[3] == ""
    tip = node.all("title")[0].text()
    assert "status: cached" in tip and "reason: cached from run abc" in tip
    assert "cached (reused from the run store)" in root.all("p", "legend")[0].text()
