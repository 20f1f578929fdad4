"""The `mimic` command. Each subcommand is registered by a small ``_add_<name>`` function below.

Bad input ends with a one-line message naming the file and the problem on stderr and exit status 2.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from pipeline.errors import MimicError

Handler = Callable[[argparse.Namespace], int | None]
COMMANDS: list[Callable[[argparse._SubParsersAction], None]] = []


def command(fn: Callable[[argparse._SubParsersAction], None]) -> Callable[[argparse._SubParsersAction], None]:
    COMMANDS.append(fn)
    return fn


@command
def _add_retarget(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("retarget", help="retarget one clip to a robot: writes OUT.npz and OUT.quality.json")
    p.add_argument("clip", help="a mocap clip (bvh, DeepMimic txt, AMASS npz) or a HumanMotion npz")
    p.add_argument("--robot", default="g1", help="robot name (robots/<name>/robot.yaml)")
    p.add_argument("-o", "--output", required=True, help="output RobotMotion .npz")
    p.add_argument("--format", dest="fmt", default=None, help="input format if the suffix is ambiguous")
    p.add_argument("--body-model", default=None, help="SMPL-X model folder for AMASS input")

    def run(a: argparse.Namespace) -> int:
        from pipeline.retarget.run import retarget_file

        retarget_file(a.clip, a.output, robot=a.robot, fmt=a.fmt, body_model=a.body_model)
        return 0

    p.set_defaults(run=run)


@command
def _add_render(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "render", help="render a RobotMotion to video (offscreen), scaled human keypoints beside it"
    )
    p.add_argument("motion", help="RobotMotion .npz")
    p.add_argument("-o", "--output", required=True, help="output .mp4")
    p.add_argument("--width", type=int, default=640)
    p.add_argument("--height", type=int, default=480)

    def run(a: argparse.Namespace) -> int:
        from pipeline.viz.render import render_file

        render_file(a.motion, a.output, width=a.width, height=a.height)
        return 0

    p.set_defaults(run=run)


@command
def _add_add_clip(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("add-clip", help="validate a clip, copy it into motions/raw, dvc add it, register it")
    p.add_argument("path", help="the clip file")
    p.add_argument("--name", default=None, help="clip name (default: the file's stem)")
    p.add_argument("--format", dest="fmt", default=None, help="input format if the suffix is ambiguous")
    p.add_argument("--joint-map", default=None, help="BVH joint-name map YAML {canonical: source joint}")
    p.add_argument("--unit", default=None, help="BVH unit: m, cm, mm, inch, cmu (default: detected)")
    p.add_argument("--body-model", default=None, help="SMPL-X model folder for AMASS input")
    p.add_argument(
        "--subject-height", type=float, default=None, help="subject's height, m (sets video scale)"
    )
    p.add_argument("--intrinsics", default=None, help="video camera FX,FY,CX,CY in pixels")
    p.add_argument("--hfov", type=float, default=None, help="video camera horizontal field of view, degrees")

    def run(a: argparse.Namespace) -> int:
        from pipeline.clips import add_clip
        from pipeline.errors import InputError

        video: dict[str, float] = {}
        if a.intrinsics:
            try:
                fx, fy, cx, cy = (float(v) for v in a.intrinsics.split(","))
            except ValueError:
                raise InputError("--intrinsics", "expected four numbers FX,FY,CX,CY") from None
            video.update(fx=fx, fy=fy, cx=cx, cy=cy)
        if a.hfov is not None:
            video["hfov_deg"] = a.hfov
        out = add_clip(
            a.path,
            name=a.name,
            fmt=a.fmt,
            joint_map=a.joint_map,
            unit=a.unit,
            body_model=a.body_model,
            subject_height=a.subject_height,
            video=video or None,
        )
        print(f"added {out}: tracked by DVC and registered in params.yaml; run `dvc repro`")
        return 0

    p.set_defaults(run=run)


@command
def _add_deploy(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "deploy", help="run a policy bundle on a robot (in-process MuJoCo or DDS), with safety"
    )
    p.add_argument("--bundle", required=True, help="bundle folder (policy.onnx, deploy.json, motion.npz)")
    p.add_argument("--robot", choices=["sim", "dds"], default="sim", help="robot interface")
    p.add_argument("--iface", default=None, help="network interface for DDS (e.g. eth0, lo)")
    p.add_argument("--domain", type=int, default=0, help="DDS domain id")
    p.add_argument("--model", default="g1", help="the connected robot (robots/<name>)")
    p.add_argument("--dry-run", action="store_true", help="build every command but publish none")
    p.add_argument("--log", default=None, help="run log .npz (default build/deploy-logs/deploy-<time>.npz)")
    p.add_argument("--hold-s", type=float, default=2.5, help="sim only: harness holds the base this long")
    p.add_argument("--watchdog-ms", type=float, default=100.0, help="fault when the newest state is older")
    p.add_argument("--max-tilt-deg", type=float, default=60.0, help="fall detection threshold")
    p.add_argument("--start-pose", choices=["default", "reference"], default="default",
                   help="soft start to the default pose or to the reference's first frame (sim: the robot starts "
                        "standing there)")  # fmt: skip
    p.add_argument("--rt-priority", type=int, default=0,
                   help="dds: run the control loop under SCHED_FIFO at this priority (needs CAP_SYS_NICE)")  # fmt: skip
    p.add_argument("--warm-ms", type=float, default=2.0,
                   help="dds: run the step's work (discarded) this long before each tick to keep it cache-hot")  # fmt: skip

    def run(a: argparse.Namespace) -> int:
        from pipeline.deploy.run import deploy, summary
        from pipeline.deploy.runtime import RunConfig
        from pipeline.deploy.safety import SafetyConfig

        safety = SafetyConfig(watchdog_s=a.watchdog_ms / 1e3, max_tilt_deg=a.max_tilt_deg)
        result = deploy(a.bundle, a.robot, iface=a.iface, domain=a.domain, robot=a.model, log_path=a.log,
                        hold_s=a.hold_s, cfg=RunConfig(dry_run=a.dry_run, safety=safety, start_pose=a.start_pose,
                                                 rt_priority=a.rt_priority, warm_s=a.warm_ms / 1e3))  # fmt: skip
        stats = ", ".join(f"{k} {v:.3f}" for k, v in summary(result).items())
        print(f"mimic deploy: {result.message} ({stats})")
        return 0

    p.set_defaults(run=run)


@command
def _add_sim_robot(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "sim-robot", help="the G1 in MuJoCo behind rt/lowcmd / rt/lowstate (DDS), like the hardware"
    )
    p.add_argument("--model", default="g1", help="robot (robots/<name>)")
    p.add_argument("--domain", type=int, default=0, help="DDS domain id")
    p.add_argument("--iface", default="lo", help="network interface ('auto' lets CycloneDDS choose)")
    p.add_argument(
        "--hold-s", type=float, default=0.0, help="harness holds the base this long after the first command"
    )
    p.add_argument("--start-bundle", default=None,
                   help="start at rest in this bundle's first reference frame (as a gantry lowers the robot)")  # fmt: skip
    p.add_argument("--duration", type=float, default=None, help="stop after this much simulated time (s)")
    p.add_argument("--record", default=None, help="write the trajectory (.npz) on exit")
    p.add_argument(
        "--fault", default="none", choices=["none", "drop", "stall", "bad-crc"], help="fault injection"
    )
    p.add_argument(
        "--fault-at",
        type=float,
        default=0.0,
        help="simulated time (s) after the first command the fault starts",
    )

    def run(a: argparse.Namespace) -> int:
        from pathlib import Path

        from pipeline.deploy.bridge import BridgeConfig, serve

        return serve(BridgeConfig(
            robot=a.model, domain=a.domain, iface=None if a.iface == "auto" else a.iface, hold_s=a.hold_s,
            duration_s=a.duration, fault=a.fault, fault_at=a.fault_at, record=Path(a.record) if a.record else None,
            start_bundle=Path(a.start_bundle) if a.start_bundle else None,
        ))  # fmt: skip

    p.set_defaults(run=run)


@command
def _add_view(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "view", help="web viewer (127.0.0.1) of human and robot motions with per-frame quality overlays"
    )
    p.add_argument(
        "clips", nargs="*", help="clip names (walk, retarget/walk) or motion .npz files (none: all)"
    )
    p.add_argument("--compare", default=None, help="a second robot motion shown beside it in lockstep")
    p.add_argument("--port", type=int, default=8080)
    p.add_argument("--data", default="data", help="folder of built clips (human/, robot/)")

    def run(a: argparse.Namespace) -> int:
        from pipeline.viz.viewer import view

        view(a.clips, compare=a.compare, port=a.port, data_dir=a.data)
        return 0

    p.set_defaults(run=run)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mimic", description="Human motion to a humanoid tracking policy.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in COMMANDS:
        add(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.run(args) or 0)
    except MimicError as e:
        print(f"mimic {args.command}: error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print(f"mimic {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
