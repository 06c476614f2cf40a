"""migcheck's I/O and orchestration: readers, target database access, flows, the CLI."""
