"""`mimic view` as a person sees it: the viewer served on a free port, opened in headless Chromium.

Needs Debian's chromium (/usr/bin/chromium; `.ci/run` installs it) and Playwright for Python, which drives
that browser (no browser download). The scene is rendered by WebGL in software (SwiftShader).
"""

from __future__ import annotations

import io
import shutil
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest

from pipeline.viz.catalog import list_clips, load_clip, resolve
from pipeline.viz.viewer import MotionViewer
from tests.viewer_fixtures import swinging_arm, write_clip

pytestmark = pytest.mark.slow

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
VIEWPORT = {"width": 1100, "height": 600}
PANEL_WIDTH = 360  # the GUI panel on the right, excluded from scene comparisons
TOP = 170  # the notification in the top left (software WebGL), excluded too
FRAMES = 60
BAD = (40, 41, 42)  # frames where the left knee is pushed beyond its limit
TIMEOUT_S = 180.0


def _chromium() -> str:
    path = shutil.which("chromium") or "/usr/bin/chromium"
    if not Path(path).exists():
        pytest.fail("Debian's chromium is not installed (apt-get install -y chromium; .ci/run does it)")
    return path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait(what: str, condition: Callable[[], bool], timeout: float = TIMEOUT_S) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("data")
    motion = swinging_arm(frames=FRAMES)
    qpos = motion.qpos.copy()
    knee = motion.joint_names.index("left_knee_joint")
    qpos[list(BAD), 7 + knee] = 3.0  # beyond the knee's upper limit (2.88 rad)
    from pipeline.robot.motion import RobotMotion

    bad = RobotMotion.from_qpos(
        "g1",
        qpos,
        motion.fps,
        contacts=motion.contacts,
        keypoint_names=motion.keypoint_names,
        keypoint_pos_w=motion.keypoint_pos_w,
    )
    write_clip(d, "swing", bad, {"joint_limit_violations": len(BAD), "self_collisions": 0})
    write_clip(d, "still", swinging_arm(frames=10, amplitude=0.0), {"passed": True})
    return d


@pytest.fixture(scope="module")
def browser() -> Iterator:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=_chromium(), headless=True, args=CHROMIUM_ARGS)
        yield b
        b.close()


class Page:
    """A browser tab on a viewer, with screenshots as arrays of the 3D scene area."""

    def __init__(self, browser, viewer: MotionViewer) -> None:
        self.viewer = viewer
        self.page = browser.new_page(viewport=VIEWPORT)
        self.page.goto(viewer.url)
        self.page.wait_for_selector("canvas", timeout=TIMEOUT_S * 1000)
        _wait("the browser to connect", lambda: len(viewer.server.get_clients()) > 0)
        self.settle()

    def shot(self, name: str | None = None) -> np.ndarray:
        png = self.page.screenshot(timeout=TIMEOUT_S * 1000)
        if name:
            Path(name).write_bytes(png)
        return iio.imread(io.BytesIO(png))[TOP:, : VIEWPORT["width"] - PANEL_WIDTH, :3].astype(np.int16)

    def settle(self, quiet: int = 2) -> np.ndarray:
        """Screenshot until ``quiet`` comparisons in a row find nothing changed (messages sent and applied,
        meshes uploaded, frame rendered); on a loaded machine one quiet pair can fall inside a stall."""
        previous = self.shot()
        calm = 0
        deadline = time.monotonic() + TIMEOUT_S
        while time.monotonic() < deadline:
            time.sleep(0.75)
            current = self.shot()
            calm = calm + 1 if changed(previous, current) == 0 else 0
            if calm >= quiet:
                return current
            previous = current
        raise AssertionError("the scene never stopped changing")


def changed(a: np.ndarray, b: np.ndarray) -> int:
    """Number of pixels whose colour differs by more than 40 (of 255) in some channel."""
    return int((np.abs(a - b).max(axis=-1) > 40).sum())


def changed_areas(a: np.ndarray, b: np.ndarray) -> int:
    """:func:`changed` without one-pixel-wide differences (anti-aliasing along edges and grid lines):
    only pixels whose four neighbours changed too."""
    m = np.abs(a - b).max(axis=-1) > 40
    core = m[1:-1, 1:-1] & m[:-2, 1:-1] & m[2:, 1:-1] & m[1:-1, :-2] & m[1:-1, 2:]
    return int(core.sum())


@pytest.fixture(scope="module")
def swing_page(browser, data_dir) -> Iterator[Page]:
    """`mimic view --compare swing` with no clip: the clip list, then "swing" picked in the dropdown."""
    entries = list_clips(data_dir)
    assert [e.label for e in entries] == ["still [robot, pass]", "swing [robot, fail]"]
    viewer = MotionViewer(entries, compare=load_clip(resolve("swing", data_dir)), port=_free_port())
    page = Page(browser, viewer)
    try:
        assert viewer.track is None
        page.page.locator('input[role=combobox][value="(pick a clip)"]').click()
        page.page.get_by_role("option", name="swing [robot, fail]").click()
        _wait("the picked clip to load", lambda: viewer.track is not None)
        assert viewer.track is not None and viewer.track.clip.entry.name == "swing"
        viewer.server.flush()
        page.settle(quiet=3)
        yield page
    finally:
        page.page.close()
        viewer.stop()


def test_robot_human_and_compare_robot_are_drawn(swing_page, tmp_path):
    v = swing_page.viewer
    full = swing_page.settle()
    swing_page.shot(str(tmp_path / "scene.png"))
    assert v.robots["g1"].handles and v.compare_drawing is not None
    try:
        v.robots["g1"].set_visible(False)
        no_robot = swing_page.settle()
        v.compare_drawing.set_visible(False)
        no_robots = swing_page.settle()
        v.human_mode.value = "hidden"
        v.show_overlays.value = False
        empty = swing_page.settle()
        robot_px, compare_px = changed(full, no_robot), changed(no_robot, no_robots)
        human_px = changed(no_robots, empty)
        for name, img in {"empty": empty, "full": full, "no_robot": no_robot, "no_robots": no_robots}.items():
            iio.imwrite(tmp_path / f"{name}.png", img.astype(np.uint8))
        assert robot_px > 2000, f"robot covers only {robot_px} px"
        assert compare_px > 2000, f"compare robot covers only {compare_px} px"
        assert human_px > 300, f"human skeleton covers only {human_px} px"
        # The robot stands between the compare robot (-y) and the human skeleton (+y) in the picture.
        cols = {
            name: np.median(np.nonzero(np.abs(a - b).max(axis=-1) > 40)[1])
            for name, (a, b) in {
                "robot": (full, no_robot),
                "compare": (no_robot, no_robots),
                "human": (no_robots, empty),
            }.items()
        }
        assert min(cols["compare"], cols["human"]) < cols["robot"] < max(cols["compare"], cols["human"]), cols
        # The robot is drawn in its own (grey) colours: most of its pixels are unsaturated.
        px = full[np.abs(full - no_robot).max(axis=-1) > 40]
        assert np.mean(px.max(axis=1) - px.min(axis=1) < 40) > 0.6
    finally:
        v.robots["g1"].set_visible(True)
        v.compare_drawing.set_visible(True)
        v.human_mode.value = "beside"
        v.show_overlays.value = True
    restored = swing_page.settle()
    swing_page.shot(str(tmp_path / "restored.png"))
    # Back as it was (up to anti-aliasing speckle along edges and grid lines).
    assert changed_areas(restored, full) < 50 < changed_areas(full, empty)


def test_timeline_moves_through_the_gui(swing_page, tmp_path):
    v, page = swing_page.viewer, swing_page.page
    v.show(0)
    start = swing_page.settle()
    # Type the frame into the slider's number box (arrow keys would also orbit the camera).
    row = page.get_by_role("slider").first.locator("xpath=ancestor::*[.//input[not(@type='hidden')]][1]")
    box = row.locator("input:not([type=hidden])").first

    def go(frame: int) -> np.ndarray:
        box.fill(str(frame))
        box.press("Enter")
        _wait(f"frame {frame} to reach the server", lambda: v.frame == frame)
        return swing_page.settle()

    quarter = FRAMES // 4  # a quarter of the swing: the arm is furthest from where it started
    moved = go(quarter)
    swing_page.shot(str(tmp_path / f"frame{quarter}.png"))
    assert page.get_by_text(f"frame {quarter} / {FRAMES - 1}").count() == 1
    assert changed_areas(start, moved) > 100, "moving the timeline did not change the picture"
    go(0)
    # On a loaded machine a settled picture can still be one message behind: look again for a while.
    deadline = time.monotonic() + 60
    while (restored := changed_areas(start, swing_page.shot())) >= changed_areas(start, moved) / 5:
        if time.monotonic() > deadline:
            raise AssertionError(f"going back to frame 0 did not restore the picture ({restored} px differ)")
        time.sleep(0.75)

    page.get_by_role("button", name="Next bad frame").click()
    _wait("the jump to the first bad frame", lambda: v.frame == BAD[0])
    page.get_by_text("BAD").first.wait_for(timeout=TIMEOUT_S * 1000)
    page.get_by_role("button", name="Next bad frame").click()
    _wait("the jump to the second bad frame", lambda: v.frame == BAD[1])
    page.get_by_role("button", name="Previous bad frame").click()
    _wait("the jump back", lambda: v.frame == BAD[0])

    v.show(0)
    page.get_by_role("button", name="Play").click()
    _wait("playback to advance", lambda: v.frame > 5, timeout=60)
    page.get_by_role("button", name="Pause").click()
    _wait("playback to pause", lambda: not v.playing, timeout=60)
