"""The live progress display is itself a lifecycle plugin; on a terminal it rewrites one status line."""

from __future__ import annotations

import io

from stagekit import Host, Pipeline, stage
from stagekit.cli.progress import Progress


def test_progress_counts_stages_and_names_the_last_one() -> None:
    stream = io.StringIO()
    progress = Progress(stream, enabled=True)
    stages = [stage(lambda: 1, name="first", provides=["a"]), stage(lambda a: a, name="second", requires=["a"],
                                                                    provides=["b"])]
    Pipeline(stages, host=Host(plugins=[("progress", progress)], autoload=False, env={})).run()
    progress.close()
    text = stream.getvalue()
    assert "[0/2]" in text and "[2/2]" in text and "last: second" in text
    assert text.endswith("\r\x1b[2K")  # the line is cleared at the end


def test_progress_is_silent_when_not_on_a_terminal() -> None:
    stream = io.StringIO()
    progress = Progress(stream, enabled=False)
    Pipeline([stage(lambda: 1, name="only", provides=["a"])],
             host=Host(plugins=[("progress", progress)], autoload=False, env={})).run()
    progress.close()
    assert stream.getvalue() == "" and progress.done == 1


def test_a_cached_stage_is_counted_with_the_time_it_saved() -> None:
    from types import SimpleNamespace

    from stagekit.records import StageRecord

    stream = io.StringIO()
    progress = Progress(stream, enabled=True)
    run = SimpleNamespace(stages=("a", "b"))
    progress.stagekit_before_run(run)
    progress.stagekit_after_stage(run, SimpleNamespace(name="a"), StageRecord("a", status="cached", saved=3.25))
    assert progress.last == "a cached (saved 3.25s)"  # drawn at most 10 times a second: not necessarily now
    progress.stagekit_before_stage(run, SimpleNamespace(name="b"))
    progress.stagekit_after_stage(run, SimpleNamespace(name="b"), StageRecord("b", status="ok", duration=0.5))
    progress.close()
    text = stream.getvalue()
    assert "[2/2]" in text and "1 cached (saved 3.2s)" in text and "last: b 0.50s" in text
    assert (progress.done, progress.cached, progress.saved) == (2, 1, 3.25)
