"""Scenario files: YAML source with line origins, validation into the typed model, the published schema."""
