"""One module per resource; each handler parses, calls one use-case, builds the response."""
