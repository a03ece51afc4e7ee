"""stagekit integration-test fixture plugin package (alias)."""
