"""The gateway: the public HTTP API in front of the Thread actors. It holds no thread state."""
