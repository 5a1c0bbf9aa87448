"""The ``kube`` backend: the same manifests on a real Kubernetes cluster (kind or any
kubeconfig), with Argo Rollouts, a Gateway API implementation and Prometheus installed at pinned
versions. See ``docs/kube-backend.md``."""
