"""Growing and shrinking a lab (``k8slab scale``): the spec is the source of truth."""

from toolkit.scale.plan import ScaleError, ScalePlan, ScaleRequest, plan
from toolkit.scale.run import ScaleResult, resume, scale

__all__ = ["ScaleError", "ScalePlan", "ScaleRequest", "ScaleResult", "plan", "resume", "scale"]
