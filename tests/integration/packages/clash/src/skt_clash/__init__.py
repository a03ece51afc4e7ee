"""stagekit integration-test fixture plugin package (clash)."""
