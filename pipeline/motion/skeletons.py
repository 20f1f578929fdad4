"""Joint-name maps from source skeletons to the 17 canonical keypoints.

Choices, the same for every skeleton:
- ``pelvis``: the root/hips joint. ``torso``: the upper spine / chest joint (CMU ``Chest2`` or ``Spine1``,
  Mixamo ``Spine2``), whose rotation is the chest's orientation. ``head``: the head joint (top of the neck).
- ``*_hip``: the hip joint centre (femur head: CMU ``LeftHip``/``LeftUpLeg``, not ``LHipJoint`` which sits at
  the pelvis origin). ``*_shoulder``: the upper-arm joint (not the clavicle). ``*_wrist``: the hand joint.
  ``*_ankle``: the ankle/foot joint. ``*_toe``: the toe base joint.

A map file is YAML ``{canonical_name: source_joint_name}`` naming all 17 keypoints. Names are matched
case-insensitively after dropping a namespace prefix (``mixamorig:LeftArm`` matches ``LeftArm``).
"""

from __future__ import annotations

from pathlib import Path

import yaml

from pipeline.errors import InputError
from pipeline.motion.human import CANONICAL_JOINTS


def _sided(common: dict[str, str], sided: dict[str, str]) -> dict[str, str]:
    out = dict(common)
    for key, name in sided.items():
        out[f"left_{key}"] = name.format(L="Left", l="L")
        out[f"right_{key}"] = name.format(L="Right", l="R")
    return out


# CMU conversion that keeps the ASF bone names (lowerback/Chest/Chest2, LeftCollar/LeftShoulder/LeftElbow).
CMU_ASF = _sided(
    {"pelvis": "Hips", "torso": "Chest2", "head": "Head"},
    {
        "shoulder": "{L}Shoulder",
        "elbow": "{L}Elbow",
        "wrist": "{L}Wrist",
        "hip": "{L}Hip",
        "knee": "{L}Knee",
        "ankle": "{L}Ankle",
        "toe": "{L}Toe",
    },
)
# CMU conversion with MotionBuilder names (LHipJoint/LeftUpLeg/LeftLeg/LeftFoot/LeftToeBase, Spine/Spine1).
CMU_MB = _sided(
    {"pelvis": "Hips", "torso": "Spine1", "head": "Head"},
    {
        "shoulder": "{L}Arm",
        "elbow": "{L}ForeArm",
        "wrist": "{L}Hand",
        "hip": "{L}UpLeg",
        "knee": "{L}Leg",
        "ankle": "{L}Foot",
        "toe": "{L}ToeBase",
    },
)
# Mixamo (names usually carry a "mixamorig:" prefix, dropped before matching).
MIXAMO = {**CMU_MB, "torso": "Spine2"}

# Tried in this order; the first whose 17 names all exist (and whose distinguishing joints exist) wins.
BUILTIN_MAPS: dict[str, tuple[dict[str, str], tuple[str, ...]]] = {
    "cmu": (CMU_ASF, ("LeftCollar", "LeftElbow")),
    "mixamo": (MIXAMO, ("Spine2",)),
    "cmu_mb": (CMU_MB, ("LHipJoint",)),
    "motionbuilder": (CMU_MB, ()),
}


def norm(name: str) -> str:
    return name.rsplit(":", 1)[-1].strip().lower()


def load_joint_map(spec: str | Path | dict[str, str], origin: str) -> dict[str, str]:
    """Read and check a joint map (YAML file or dict) naming a source joint for every canonical keypoint."""
    if isinstance(spec, dict):
        data, where = spec, origin
    else:
        where = str(spec)
        try:
            data = yaml.safe_load(Path(spec).read_text())
        except OSError as e:
            raise InputError(where, f"cannot read joint map: {e.strerror}") from None
        except yaml.YAMLError as e:
            raise InputError(where, f"joint map is not valid YAML: {str(e).splitlines()[0]}") from None
    if not isinstance(data, dict):
        raise InputError(where, "joint map must be a mapping {canonical_name: source_joint_name}")
    unknown = sorted(set(map(str, data)) - set(CANONICAL_JOINTS))
    if unknown:
        raise InputError(where, f"joint map has unknown keypoints {unknown}; valid: {list(CANONICAL_JOINTS)}")
    missing = [n for n in CANONICAL_JOINTS if n not in data]
    if missing:
        raise InputError(where, f"joint map lacks keypoints {missing}")
    return {str(k): str(v) for k, v in data.items()}


def resolve_joint_map(
    names: tuple[str, ...] | list[str], mapping: dict[str, str] | None, origin: str
) -> tuple[str, dict[str, int]]:
    """Pick the map (given, or the first built-in that fits) and return (map name, {canonical: joint index})."""
    index: dict[str, int] = {}
    for i, n in enumerate(names):
        index.setdefault(norm(n), i)
    if mapping is not None:
        missing = {k: v for k, v in mapping.items() if norm(v) not in index}
        if missing:
            raise InputError(origin, f"joints named in the joint map are not in the skeleton: {missing}")
        return "user", {k: index[norm(v)] for k, v in mapping.items()}
    for name, (m, marks) in BUILTIN_MAPS.items():
        if all(norm(v) in index for v in m.values()) and all(norm(v) in index for v in marks):
            return name, {k: index[norm(v)] for k, v in m.items()}
    shown = ", ".join(names[:8]) + (", ..." if len(names) > 8 else "")
    raise InputError(
        origin,
        f"unknown skeleton (joints {shown}): pass a joint map YAML {{canonical: source joint}} for "
        f"{', '.join(CANONICAL_JOINTS)}",
    )
