"""The result document: the typed layout, its JSON Schema, the environment record, atomic write and versioned load."""
