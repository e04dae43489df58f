"""The termshare protocol core: pure, deterministic, no I/O (docs/PROTOCOL.md).

Import from the submodules (`termshare.protocol.share`, `.viewer`, `.router`, ...). This package
file imports nothing, so that the relay can import `router` without pulling in the crypto module
(`keys`): the relay is blind by construction, and tests/test_layers.py checks it.
Randomness (`rng`) and time (`clock`) are injected by the drivers.
"""
