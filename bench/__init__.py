"""termshare's benchmark suite: `python -m bench.run` (see README, section "Performance")."""
