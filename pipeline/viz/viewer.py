"""`mimic view`: a web viewer (viser) of human and robot motions with per-frame quality overlays.

The robot is drawn as one mesh per body, posed each frame from ``RobotMotion.body_pos_w`` / ``body_quat_w``;
the human skeleton (the scaled keypoints the retargeter saw) beside or over it; a second robot motion
(``compare``) in lockstep beside it. Overlays: feet in contact (green), joints near (orange) or beyond (red)
their limits, self-collision contacts (red points), floor penetration in the frame info.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.viz.catalog import ClipEntry, LoadedClip, load_clip
from pipeline.viz.tracks import (
    BAD_RGB,
    CONTACT_RGB,
    RobotDrawing,
    Track,
    _rgb255,
    joint_groups,
    prepare,
    skeleton_segments,
)

HUMAN_OFFSETS = {"beside": np.array([0.0, 1.0, 0.0]), "overlay": np.zeros(3)}
COMPARE_OFFSET = np.array([0.0, -1.0, 0.0])
COMPARE_TINT = np.array([0.35, 0.55, 0.95])
PICK = "(pick a clip)"
SPEEDS = ("0.1", "0.25", "0.5", "1", "2")
PLOT_COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2")


class MotionViewer:
    """A viser server showing one clip at a time (a dropdown picks among ``entries``)."""

    def __init__(
        self,
        entries: Sequence[ClipEntry],
        *,
        compare: LoadedClip | None = None,
        host: str = "127.0.0.1",
        port: int = 8080,
        progress: Callable[[str, int, int], None] | None = None,
    ) -> None:
        import viser

        self.entries = list(entries)
        self.console_progress = progress
        self.server = viser.ViserServer(host=host, port=port, verbose=False)
        self.url = f"http://{host}:{self.server.get_port()}"
        scene, gui = self.server.scene, self.server.gui
        scene.set_up_direction("+z")
        scene.add_grid("/floor", width=8.0, height=8.0, cell_size=0.5, position=(0.0, 0.0, 0.0))
        self.track: Track | None = None
        self.compare = prepare(compare, progress=self._progress_fn("compare")) if compare else None
        self.robots: dict[str, RobotDrawing] = {}
        self.compare_drawing: RobotDrawing | None = None
        self.lock = threading.RLock()
        self.playing = False
        self.frame = 0
        self._followed_xy: np.ndarray | None = None  # root xy the cameras were last carried to

        with gui.add_folder("Clip"):
            labels = [e.label for e in self.entries]
            self.clip_dropdown = gui.add_dropdown("clip", (PICK, *labels), initial_value=PICK)
            self.loading = gui.add_progress_bar(0.0, visible=False)
            self.summary = gui.add_markdown("No clip loaded.")
        with gui.add_folder("Timeline"):
            self.frame_slider = gui.add_slider("frame", min=0, max=1, step=1, initial_value=0)
            self.play_button = gui.add_button("Play")
            self.speed = gui.add_dropdown("speed", SPEEDS, initial_value="1")
            self.prev_bad = gui.add_button("Previous bad frame")
            self.next_bad = gui.add_button("Next bad frame")
            self.info = gui.add_markdown("")
        with gui.add_folder("Display"):
            self.human_mode = gui.add_dropdown(
                "human", ("beside", "overlay", "hidden"), initial_value="beside"
            )
            self.show_overlays = gui.add_checkbox("overlays", initial_value=True)
            self.follow = gui.add_checkbox("camera follows the robot", initial_value=True)
        with gui.add_folder("Joint angles") as self.plot_folder:
            self.plot_group = gui.add_dropdown("joints", ("left leg",), initial_value="left leg")
            self.plot: Any = None

        self.bones = scene.add_line_segments(
            "/human/bones", np.zeros((1, 2, 3)), (230, 140, 40), thickness=0.02
        )
        self.keypoints = scene.add_point_cloud(
            "/human/keypoints", np.zeros((1, 3)), (220, 70, 50), point_size=0.05, point_shape="circle"
        )
        self.contact_points = scene.add_point_cloud(
            "/overlay/contacts",
            np.zeros((1, 3)),
            _rgb255(CONTACT_RGB),
            point_size=0.08,
            point_shape="circle",
            visible=False,
        )
        self.collision_points = scene.add_point_cloud(
            "/overlay/self_collision",
            np.zeros((1, 3)),
            _rgb255(BAD_RGB),
            point_size=0.06,
            point_shape="circle",
            visible=False,
        )
        self.scene_handles: list[Any] = []
        self.scene: Any = None

        self.frame_slider.on_update(self._on_slider)
        self.play_button.on_click(lambda _: self.set_playing(not self.playing))
        self.prev_bad.on_click(lambda _: self._jump(-1))
        self.next_bad.on_click(lambda _: self._jump(1))
        self.human_mode.on_update(lambda _: self.show(self.frame))
        self.show_overlays.on_update(lambda _: self.show(self.frame))
        self.plot_group.on_update(lambda _: self._update_plot())
        self.clip_dropdown.on_update(lambda _: self._on_pick())
        self._place_camera(None)
        if len(self.entries) == 1:
            self.clip_dropdown.visible = False
            self.select(0)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._play_loop, name="mimic-view-playback", daemon=True)
        self._thread.start()

    # --- loading -------------------------------------------------------------------------------------------

    def _progress_fn(self, what: str) -> Callable[[int, int], None]:
        def report(done: int, total: int) -> None:
            if self.console_progress is not None:
                self.console_progress(what, done, total)
            if hasattr(self, "loading"):
                self.loading.visible = done < total
                self.loading.value = 100.0 * done / max(total, 1)  # type: ignore[misc]

        return report

    def _on_slider(self, _: Any) -> None:
        if int(self.frame_slider.value) != self.frame:
            self.show(int(self.frame_slider.value))

    def _on_pick(self) -> None:
        label = self.clip_dropdown.value
        if label != PICK and (self.track is None or self.track.clip.entry.label != label):
            self.select([e.label for e in self.entries].index(label))

    def select(self, index: int) -> None:
        """Load and show ``entries[index]`` (progress in the GUI and on the console)."""
        entry = self.entries[index]
        self.set_playing(False)
        self.summary.content = f"Loading **{entry.name}** ..."
        self.loading.visible = True
        track = prepare(load_clip(entry), progress=self._progress_fn(entry.name))
        with self.lock:
            self.track = track
            if self.clip_dropdown.value != entry.label:
                self.clip_dropdown.value = entry.label  # type: ignore[misc]
            for drawing in self.robots.values():
                drawing.set_visible(False)
            if track.robot is not None:
                if track.robot.robot not in self.robots:
                    self.robots[track.robot.robot] = RobotDrawing(
                        self.server,
                        track.robot.robot,
                        f"/robot/{track.robot.robot}",
                        offset=np.zeros(3),
                        tint=None,
                    )
                self.robots[track.robot.robot].set_visible(True)
            if self.compare is not None and self.compare.robot is not None and self.compare_drawing is None:
                self.compare_drawing = RobotDrawing(
                    self.server,
                    self.compare.robot.robot,
                    "/compare",
                    offset=COMPARE_OFFSET,
                    tint=COMPARE_TINT,
                )
            self._place_camera(track)
            self._followed_xy = None
            self.summary.content = self._summary(track)
            self.loading.visible = False
            self._add_scene(entry)
            groups = joint_groups(track.robot.joint_names) if track.robot is not None else {}
            self.plot_group.options = tuple(groups) or ("left leg",)
            self.frame = 0
            self.frame_slider.max = max(track.num_frames - 1, 1)
            self._update_plot()
            self.frame_slider.value = 0  # type: ignore[misc]
            self.show(0)

    def _place_camera(self, track: Track | None) -> None:
        """Look at the first frame from the front-left, wide enough for the robot, the human and a compare.

        Moved only when the clip starts somewhere else (> 0.5 m away): a moved camera glides in the browser.
        """
        centre = np.zeros(3)
        if track is not None and track.robot is not None:
            centre = track.robot.root_pos_w[0].copy()
        elif track is not None and track.skeleton_pos_w.shape[1]:
            centre = track.skeleton_pos_w[0].mean(axis=0)
        centre[1] += 0.5 if self.compare is None else 0.0
        centre[2] = 0.7
        centre[1] += 0.4  # the GUI panel covers the right of the picture: shift the figures left of it
        if track is not None and np.linalg.norm(self.server.initial_camera.look_at - centre) < 0.5:
            return
        self.server.initial_camera.look_at = centre
        self.server.initial_camera.position = centre + np.array([3.2, 1.6, 0.9])

    def _summary(self, track: Track) -> str:
        e = track.clip.entry
        lines = [
            f"**{e.name}**: {track.num_frames} frames at {track.fps:g} fps ({track.num_frames / track.fps:.1f} s), quality: **{e.status}**"
        ]
        if e.quality:
            keys = (
                "keypoint_err_mean_mm",
                "foot_skate_mean_mm_s",
                "floor_penetration_max_mm",
                "joint_limit_violations",
                "self_collisions",
            )
            lines += [f"- {k}: {e.quality[k]}" for k in keys if k in e.quality]
        if track.flags is not None:
            lines.append(f"- bad frames: {int(track.flags.bad.sum())}")
        if self.compare is not None:
            lines.append(f"- compare (blue robot): {self.compare.clip.entry.name}")
        return "\n".join(lines)

    def _add_scene(self, entry: ClipEntry) -> None:
        """Draw the clip's objects and terrain when a scene file (``<clip>.scene.npz``) sits beside it."""
        for h in self.scene_handles:
            h.remove()
        self.scene_handles = []
        self.scene = None
        path = entry.scene
        if path is None:
            return
        from pipeline.motion.scene import Scene

        self.scene = scene = Scene.load(path)
        for obj in scene.objects:
            self.scene_handles.append(
                self.server.scene.add_mesh_simple(
                    f"/scene/{obj.name}",
                    obj.vertices.astype(np.float32),
                    obj.faces.astype(np.uint32),
                    color=(150, 120, 90) if obj.static else (200, 150, 60),
                    position=obj.pos_w[0],
                    wxyz=obj.quat_w[0],
                )
            )

    def _update_plot(self) -> None:
        track = self.track
        if self.plot is not None:
            self.plot.remove()
            self.plot = None
        if track is None or track.robot is None:
            return
        idx = joint_groups(track.robot.joint_names).get(self.plot_group.value, [])
        if not idx:
            return
        t = np.arange(track.num_frames) / track.fps
        data = (t, *(track.robot.dof_pos[:, j] for j in idx))
        series = (
            {"label": "t (s)"},
            *(
                {
                    "label": track.robot.joint_names[j].removesuffix("_joint"),
                    "stroke": PLOT_COLORS[k % len(PLOT_COLORS)],
                    "width": 1.5,
                }
                for k, j in enumerate(idx)
            ),
        )
        with self.plot_folder:
            self.plot = self.server.gui.add_uplot(data, series, title="joint angle (rad)", aspect=1.3)  # type: ignore[arg-type]

    # --- drawing -------------------------------------------------------------------------------------------

    def show(self, frame: int) -> None:
        """Draw ``frame`` of the current clip (and the compare motion at the same time)."""
        with self.lock:
            track = self.track
            if track is None:
                return
            frame = int(np.clip(frame, 0, track.num_frames - 1))
            self.frame = frame
            overlays = bool(self.show_overlays.value)
            with self.server.atomic():
                if track.robot is not None:
                    self.robots[track.robot.robot].pose(track.robot, frame, track.flags, overlays)
                if (
                    self.compare is not None
                    and self.compare.robot is not None
                    and self.compare_drawing is not None
                ):
                    j = min(round(frame / track.fps * self.compare.fps), self.compare.num_frames - 1)
                    self.compare_drawing.pose(self.compare.robot, j, self.compare.flags, overlays)
                self._draw_human(track, frame)
                self._draw_scene(frame / track.fps)
                self._draw_overlays(track, frame, overlays)
                self._follow(track, frame)
            if int(self.frame_slider.value) != frame:
                self.frame_slider.value = frame  # type: ignore[misc]

    def _follow(self, track: Track, frame: int) -> None:
        """Carry every camera (and the one new browsers start with) along the root's horizontal travel since the
        last drawn frame, so a walking robot stays in view; the viewing angle and distance are the user's."""
        if track.robot is None:
            return
        xy = track.robot.root_pos_w[frame, :2]
        last, self._followed_xy = self._followed_xy, xy.copy()
        if last is None or not self.follow.value:
            return
        delta = np.array([*(xy - last), 0.0])
        if not delta.any():
            return
        cameras: list[Any] = [
            self.server.initial_camera,
            *(c.camera for c in self.server.get_clients().values()),
        ]
        for camera in cameras:
            camera.look_at = np.asarray(camera.look_at) + delta
            camera.position = np.asarray(camera.position) + delta

    def _draw_scene(self, t: float) -> None:
        if self.scene is None:
            return
        for obj, handle in zip(self.scene.objects, self.scene_handles, strict=True):
            if not obj.static:
                i = min(round(t * self.scene.fps), len(obj.pos_w) - 1)
                handle.position, handle.wxyz = obj.pos_w[i], obj.quat_w[i]

    def _draw_human(self, track: Track, frame: int) -> None:
        mode = self.human_mode.value
        visible = mode != "hidden" and track.skeleton_pos_w.shape[1] > 0
        self.bones.visible = self.keypoints.visible = visible
        if not visible:
            return
        offset = HUMAN_OFFSETS[mode] if track.robot is not None else np.zeros(3)
        pos = track.skeleton_pos_w[min(frame, len(track.skeleton_pos_w) - 1)] + offset
        segments = skeleton_segments(track.skeleton_names, track.skeleton_parents, pos)
        if len(segments):
            self.bones.points = segments.astype(np.float32)
        self.keypoints.points = pos.astype(np.float32)

    def _draw_overlays(self, track: Track, frame: int, overlays: bool) -> None:
        flags = track.flags
        lines = [f"**frame {frame} / {track.num_frames - 1}**, t = {frame / track.fps:.2f} s"]
        if flags is None:
            self.contact_points.visible = self.collision_points.visible = False
            self.info.content = "\n\n".join(lines)
            return
        feet = flags.foot_pos_w[frame][flags.contacts[frame, :2]]
        self.contact_points.visible = overlays and len(feet) > 0
        if len(feet):
            self.contact_points.points = (feet - [0.0, 0.0, 0.02]).astype(np.float32)
        hits = flags.self_collision_pos_w[frame]
        self.collision_points.visible = overlays and len(hits) > 0
        if len(hits):
            self.collision_points.points = hits.astype(np.float32)
        names = track.robot.joint_names if track.robot is not None else ()
        side = [n for n, c in zip(("left", "right"), flags.contacts[frame], strict=False) if c]
        near = [names[j].removesuffix("_joint") for j in np.flatnonzero(flags.near_limit[frame])]
        pairs = [f"{a} / {b}" for a, b in flags.self_collision_pairs[frame]]
        lines += [
            f"feet in contact: {', '.join(side) or 'none'}",
            f"floor penetration: {flags.floor_penetration_mm[frame]:.1f} mm",
            f"self-collision: {'; '.join(pairs) + f' ({flags.self_collision_depth_mm[frame]:.1f} mm)' if pairs else 'none'}",
            f"near joint limits: {', '.join(near) or 'none'}",
            f"this frame: {'**BAD**' if flags.bad[frame] else 'ok'} ({int(flags.bad.sum())} bad frames in the clip)",
        ]
        self.info.content = "\n\n".join(lines)

    # --- playback ------------------------------------------------------------------------------------------

    def set_playing(self, playing: bool) -> None:
        self.playing = playing
        if hasattr(self, "play_button"):
            self.play_button.label = "Pause" if playing else "Play"

    def _jump(self, direction: int) -> None:
        self.jump_bad(direction)

    def jump_bad(self, direction: int) -> int | None:
        track = self.track
        if track is None or track.flags is None:
            return None
        target = track.flags.next_bad(self.frame, direction)
        if target is not None:
            self.set_playing(False)
            self.show(target)
        return target

    def _play_loop(self) -> None:
        last = time.monotonic()
        position = 0.0
        while not self._stop.is_set():
            time.sleep(1 / 30)
            now = time.monotonic()
            dt, last = now - last, now
            track = self.track
            if not self.playing or track is None:
                position = float(self.frame)
                continue
            position += dt * track.fps * float(self.speed.value)
            if position > track.num_frames - 1:
                position = 0.0
            if int(position) != self.frame:
                self.show(int(position))

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        self.server.stop()


def view(
    args: Sequence[str],
    *,
    compare: str | None = None,
    port: int = 8080,
    data_dir: str | Path = "data",
    block: bool = True,
) -> MotionViewer:
    """Resolve the arguments (InputError before anything starts), start the viewer, print its address."""
    from rich.progress import Progress

    from pipeline.errors import InputError
    from pipeline.viz.catalog import list_clips, resolve

    entries = [resolve(a, data_dir) for a in args] if args else list_clips(data_dir)
    if not entries:
        raise InputError(data_dir, "no built clips (data/human/*.npz, data/robot/*.npz) and no file given")
    other = resolve(compare, data_dir) if compare else None
    if other is not None and other.robot is None:
        raise InputError(compare, "--compare needs a robot motion")
    with Progress(transient=True) as bar:
        tasks: dict[str, Any] = {}

        def progress(what: str, done: int, total: int) -> None:
            if what not in tasks:
                tasks[what] = bar.add_task(f"overlays {what}", total=total)
            bar.update(tasks[what], completed=done)

        viewer = MotionViewer(
            entries, compare=load_clip(other) if other else None, port=port, progress=progress
        )
    viewer.console_progress = None  # later loads (picked in the browser) show progress in the GUI
    if not args:
        for e in entries:
            print(f"  {e.label}")
    print(f"mimic view: serving {len(entries)} clip(s) at {viewer.url} (Ctrl-C stops)", flush=True)
    if block:
        try:
            while True:
                time.sleep(3600)
        finally:
            viewer.stop()
    return viewer
