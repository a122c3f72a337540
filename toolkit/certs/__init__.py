"""Day-2 operation: ``k8slab certs``, the lab's certificates' expiry and their renewal.

``expiry`` (kubeadm's and openssl's answers as data), ``run`` (reading and renewing them
on the lab).
"""

from toolkit.certs.expiry import CertError, Certificate, expiring
from toolkit.certs.run import certificates, renew

__all__ = ["CertError", "Certificate", "certificates", "expiring", "renew"]
