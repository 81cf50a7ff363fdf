"""Training utilities: callbacks (and, built on them, trainers)."""
