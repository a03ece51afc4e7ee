"""Immutable workspace snapshots. ``workspace.Workspace`` is the front door; below it ``snapshot`` (create,
restore, checkout, delete, gc) and ``verify``, then ``manifest``, ``store`` and ``statcache``, and at the
bottom ``layout`` (the workspace directory, its paths and locks)."""
