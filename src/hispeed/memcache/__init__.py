"""memcached: the client the memcached sink and the MEMCACHED_GET function share."""
