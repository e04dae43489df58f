"""The end-to-end fixtures (real processes, PTYs) for the operations tests."""

from ..e2e.conftest import env, home, procs

__all__ = ["env", "home", "procs"]
