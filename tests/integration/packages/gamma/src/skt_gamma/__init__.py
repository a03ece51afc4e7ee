"""stagekit integration-test fixture plugin package (gamma)."""
