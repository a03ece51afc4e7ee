"""stagekit integration-test fixture plugin package (beta)."""
