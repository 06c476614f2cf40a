"""migcheck's rules: pure polars functions and declarations, no I/O beyond reading mappings."""
