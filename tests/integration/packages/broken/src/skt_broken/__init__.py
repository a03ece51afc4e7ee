"""stagekit integration-test fixture plugin package (broken)."""
