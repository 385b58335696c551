"""MLflow plumbing shared by the steps: opening and closing step runs, the upstream lookup, the fingerprint cache
and claims, the model registry."""
