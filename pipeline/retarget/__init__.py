"""Kinematic retargeting: per-segment scaling, then a differential-IK QP per frame, then a quality report."""

from pipeline.retarget.config import RetargetConfig
from pipeline.retarget.core import retarget
from pipeline.retarget.quality import QUALITY_KEYS, quality

__all__ = ["QUALITY_KEYS", "RetargetConfig", "quality", "retarget"]
