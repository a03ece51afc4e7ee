"""stagekit integration-test fixture plugin package (misspelt)."""
