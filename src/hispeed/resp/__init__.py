"""Redis, as hispeed talks to it: a RESP2 client built for whole batches (`client`), the key
templates and value text that the Redis sink, source and lookups share (`templates`), and
cached lookups by key (`lookup`).

The Redis connectors, the REDIS_* functions, the dashboard and the Redis bench use it. It
sits in the core layer: it imports only `hispeed.errors`, so anything above may use it.
"""
