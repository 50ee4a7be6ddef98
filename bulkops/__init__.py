"""bulkops: rate-limited, resumable, undoable bulk operations for the Statsig Console API."""

__version__ = "0.1.0"

__all__ = ["__version__"]
