"""Running a validation: the step sequence, defined once, and its runners (local, Prefect)."""
