"""Bad BVH input: one-line InputError naming the file and the problem; truncations of the real CMU clip."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.cli import main as cli_main
from pipeline.errors import InputError
from pipeline.motion import read_clip

CMU_01 = Path(__file__).resolve().parents[2] / "shared" / "data" / "cmu" / "131_01.bvh"
needs_cmu = pytest.mark.skipif(not CMU_01.is_file(), reason="CMU clips not available")

TINY = """HIERARCHY
ROOT Hips
{
  OFFSET 0 0 0
  CHANNELS 6 Xposition Yposition Zposition Zrotation Xrotation Yrotation
  JOINT Spine
  {
    OFFSET 0 10 0
    CHANNELS 3 Zrotation Xrotation Yrotation
    End Site
    {
      OFFSET 0 10 0
    }
  }
}
MOTION
Frames: 2
Frame Time: 0.0333333
0 90 0 0 0 0 0 0 0
0 90 1 0 0 0 5 0 0
"""


def _expect(tmp_path: Path, text: str, match: str, name: str = "bad.bvh") -> str:
    f = tmp_path / name
    f.write_text(text)
    with pytest.raises(InputError, match=match) as e:
        read_clip(f)
    msg = str(e.value)
    assert msg.startswith(str(f)) and "\n" not in msg
    return msg


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("", "empty file"),
        ("HIERARCY\nROOT Hips", "expected 'HIERARCHY', found 'HIERARCY'"),
        ("HIERARCHY\nROOT Hips\n{\n  OFFSET 0 0\n", "OFFSET of 'Hips' is not a number|truncated"),
        (TINY.replace("Frames: 2", "Frames: 0"), "zero frames"),
        (TINY.replace("Frames: 2", "Frames: 3"), "truncated BVH: header says 3 frames, found 2"),
        (TINY.replace("Frames: 2", "Frames: 1"), "header says 1 frames but 2 frame lines"),
        (TINY.replace("0 90 1 0 0 0 5 0 0", "0 90 1 0 0 0 5 0"), "frame 1 has 8 values but the hierarchy declares 9"),
        (TINY.replace("0 90 1 0 0 0 5 0 0", "0 90 1 0 0 0 5 0 0 7"), "frame 1 has 10 values"),
        (TINY.replace("0 90 1 0 0 0 5 0 0", "0 90 1 0 nan 0 5 0 0"), "NaN or infinite value at frame 1, channel 4"),
        (TINY.replace("0 90 1 0 0 0 5 0 0", "0 90 1 0 x 0 5 0 0"), "not a number"),
        (TINY.replace("CHANNELS 3 Zrotation Xrotation Yrotation", "CHANNELS 2 Zrotation Xrotation Yrotation"),
         "unexpected 'Yrotation' inside joint 'Spine'"),
        (TINY.replace("CHANNELS 3", "CHANNELS three"), "channel count of 'Spine' is 'three'"),
        (TINY.replace("Zrotation Xrotation Yrotation\n    End", "Zrotation Xrotation Wrotation\n    End"),
         "unknown channel 'wrotation'"),
        (TINY.replace("Frame Time: 0.0333333", "Frame Time: 0"), "Frame Time"),
        (TINY.split("MOTION")[0], "no MOTION section"),
        (TINY.replace("}\nMOTION", "MOTION"), "truncated BVH|unexpected"),
        (TINY, "unknown skeleton"),
    ],
)  # fmt: skip
def test_malformed_bvh(tmp_path: Path, text: str, match: str) -> None:
    _expect(tmp_path, text, match)


@needs_cmu
@pytest.mark.parametrize("fraction", [0.001, 0.01, 0.05, 0.5, 0.999])
def test_truncated_cmu_clip(tmp_path: Path, fraction: float) -> None:
    data = CMU_01.read_bytes()
    cut = data[: int(len(data) * fraction)]
    if fraction > 0.5:  # cut inside a frame line
        cut = cut[: cut.rstrip().rfind(b" ")]
    f = tmp_path / "cut.bvh"
    f.write_bytes(cut)
    with pytest.raises(InputError, match=r"truncated|values but the hierarchy declares") as e:
        read_clip(f)
    assert str(f) in str(e.value) and "\n" not in str(e.value)


@needs_cmu
def test_cmu_with_nan_and_dropped_line(tmp_path: Path) -> None:
    lines = CMU_01.read_text().splitlines()
    start = lines.index("MOTION") + 3
    nan = list(lines)
    vals = nan[start + 500].split()
    vals[7] = "NaN"
    nan[start + 500] = " ".join(vals)
    _expect(tmp_path, "\n".join(nan), "NaN or infinite value at frame 500, channel 7")
    dropped = lines[: start + 10] + lines[start + 11 :]
    _expect(tmp_path, "\n".join(dropped), "truncated BVH: header says 994 frames, found 993")


@needs_cmu
def test_cmu_wrong_units_override(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="not a human height: wrong units"):
        read_clip(CMU_01, unit="m")


def test_cli_one_line_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    f = tmp_path / "zero.bvh"
    f.write_text(TINY.replace("Frames: 2", "Frames: 0"))
    out = tmp_path / "out.npz"
    assert cli_main(["retarget", str(f), "-o", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and str(f) in err and "zero frames" in err
    assert not out.exists()
    assert cli_main(["retarget", str(tmp_path / "missing.bvh"), "-o", str(out)]) == 2
    assert "file not found" in capsys.readouterr().err
