"""The local rollout engine: Argo Rollouts semantics for the subset pytest-rollout supports."""
