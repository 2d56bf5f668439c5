"""One adapter per vendor API, each through the vendor's official SDK."""
