"""stagekit integration-test fixture plugin package (alpha)."""
