"""Input and output: the extract readers, the target and history databases, output folders, settings."""
