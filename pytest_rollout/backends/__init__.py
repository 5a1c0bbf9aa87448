"""Where experiments run: ``local`` (real processes on this machine) and ``kube``."""
