"""The catalog: YAML files loaded with positions, validated against JSON Schemas."""
