"""Automatic mask generation (the transformers ``mask-generation`` pipeline) over any runtime."""
