"""Example apps: the same small shop on FastAPI and on Flask."""
