module k8slab.local/cloud-provider-k8slab

go 1.24.0
