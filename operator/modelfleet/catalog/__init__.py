"""Catalog: model architectures and GPU facts with default prices, shipped as data plus lookups.

Pure: reads only the YAML packaged next to this file. Never imports plan, kube or kopf.
"""

from modelfleet.catalog.gpus import GPU, GPUCatalog, default_gpus, parse_gpus
from modelfleet.catalog.models import MLA, ModelArch, ModelCatalog, default_models, parse_models

__all__ = [
    "GPU",
    "MLA",
    "GPUCatalog",
    "ModelArch",
    "ModelCatalog",
    "default_gpus",
    "default_models",
    "parse_gpus",
    "parse_models",
]
