"""Revisions, oldest first: 0001 original schema, 0002 embedding model, 0003 documents by index."""
