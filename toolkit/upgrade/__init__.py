"""Day-2 operation: ``k8slab upgrade``, kubeadm's upgrade of a lab, its disruption measured.

``plan`` (versions, skew policy, the steps), ``journal`` (resume), ``actions`` (what each
step does on the lab), ``steps`` (running them, stage by stage), ``disruption`` (the
workload and the probes), ``report``, and ``run`` (the whole of it).
"""

from toolkit.upgrade.plan import UpgradeError
from toolkit.upgrade.report import UpgradeResult
from toolkit.upgrade.run import upgrade

__all__ = ["UpgradeError", "UpgradeResult", "upgrade"]
