"""The reference HTTP service: a small, production-shaped app whose release variants come from env.

Run it from the repository root as ``python -m service --host H --port P``; apply its database
migrations with ``python -m service migrate``. ``service.launcher`` starts it for tests.
"""
