"""The command line: a thin Typer skin over the library."""
