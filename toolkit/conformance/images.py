"""The conformance part's images onto a lab's nodes: the bundle's own import (the
artifacts role's selection and checked ``ctr images import``, or ``docker load`` on a
Docker Engine node; playbooks/conformance_images.yml), so that every Pod of the suite finds
its image without a registry."""

from __future__ import annotations

from toolkit.bundle import conformance, parts
from toolkit.lab.spec import Lab, Node
from toolkit.progress import SILENT, Progress
from toolkit.provision.run import Phase, run_playbook
from toolkit.versions import release

PLAYBOOK = Phase("images", "conformance_images.yml")
# The artifacts role's tasks that choose and import images, and nothing else.
ROLE_TAGS = ("artifacts_select", "artifacts_images")


def import_images(lab: Lab, runner: Node, progress: Progress = SILENT) -> None:
    """Import what is missing: the specs' images on every Kubernetes node, the conformance
    image on ``runner``; an error naming the build command if the part is not built."""
    rel = release(lab.kubernetes_version)
    parts.load_part(rel.version, conformance.NAME)
    run_playbook(
        lab,
        PLAYBOOK,
        {
            "conformance_images": conformance.test_image_tags(rel),
            "conformance_runner_image": conformance.runner_image(rel),
            "conformance_runner_node": runner.name,
        },
        tags=ROLE_TAGS,
        progress=progress,
    )
