"""The loopback feed server, the offline demo and `demo --serve`; the tests use the same server."""
