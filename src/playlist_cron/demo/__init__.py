"""The loopback feed server and the offline demo; the tests use the same server."""
