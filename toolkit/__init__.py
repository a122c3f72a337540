"""k8slab: build Kubernetes lab clusters on real hosts and prove they work."""

__version__ = "0.1.0"
