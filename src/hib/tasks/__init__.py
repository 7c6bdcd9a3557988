"""What a model is scored on: task-level pieces (metrics, losses) shared by every method."""
