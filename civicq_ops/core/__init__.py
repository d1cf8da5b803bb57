"""The base layer: vocabulary every stage shares; it imports nothing above it."""
