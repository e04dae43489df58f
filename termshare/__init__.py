"""termshare: end-to-end encrypted terminal sharing through a blind relay."""

__version__ = "0.1.0"
