"""stagekit integration-test fixture plugin package (future)."""
