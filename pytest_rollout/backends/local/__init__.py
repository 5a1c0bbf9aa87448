"""The local backend: pods as processes, HAProxy as the router, a real Prometheus."""
