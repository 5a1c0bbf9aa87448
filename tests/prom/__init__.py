"""Tests of the Prometheus client and the managed Prometheus server."""
