"""The blind relay: a Starlette app around the routing core (termshare.protocol.router).

This package must never import termshare.protocol.keys, .share, .viewer or cryptography
(tests/test_layers.py): it routes ciphertext by envelope only.
"""

from .app import RelayConfig, create_app

__all__ = ["RelayConfig", "create_app"]
