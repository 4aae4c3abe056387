"""Redis and SeaweedFS a test may kill and restart; they live in :mod:`modomo.demo.servers`
so ``bench/chaos.py`` uses the same ones."""

from modomo.demo.servers import ACCESS_KEY, SECRET_KEY, RedisServer, SeaweedFS, weed_binary

__all__ = ["ACCESS_KEY", "SECRET_KEY", "RedisServer", "SeaweedFS", "weed_binary"]
