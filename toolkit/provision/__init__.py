"""Provisioning a lab's hosts into a cluster: the playbooks, phase by phase."""
