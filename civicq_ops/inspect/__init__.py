"""Plain listings of what the server holds right now (every row, not only rows over a threshold)."""
