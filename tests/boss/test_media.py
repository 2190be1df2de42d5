"""Media helpers."""

import io

import pytest
from PIL import Image

from heihei.boss import media
from tests.boss.conftest import jpeg_bytes, png_bytes


@pytest.mark.parametrize("count", range(1, 10))
def test_layout_fits_the_canvas_without_overlap(count):
    tile, corners = media.layout(count)
    assert len(corners) == count
    assert tile == (150 if count <= 4 else 100)
    boxes = [(x, y, x + tile, y + tile) for x, y in corners]
    for box in boxes:
        assert box[0] >= 0 and box[1] >= 0 and box[2] <= 340 and box[3] <= 340
    for i, a in enumerate(boxes):
        for b in boxes[i + 1:]:
            assert a[2] <= b[0] or b[2] <= a[0] or a[3] <= b[1] or b[3] <= a[1]


def test_layout_matches_the_original_for_five():
    assert media.layout(5) == (100, [(65, 65), (175, 65), (10, 175), (120, 175), (230, 175)])


def test_group_picture_tiles_avatars_and_falls_back_to_the_default():
    red, blue = png_bytes((230, 10, 10), (90, 40)), jpeg_bytes((30, 60), (10, 10, 230))
    picture = Image.open(io.BytesIO(media.compose_group_picture([red, None, blue, b"junk"],
                                                                 media.default_avatar_jpeg())))
    assert picture.format == "JPEG" and picture.size == (340, 340)
    tile, corners = media.layout(4)
    center = [picture.getpixel((x + tile // 2, y + tile // 2)) for x, y in corners]
    assert center[0][0] > 180 and center[0][2] < 60
    assert center[2][2] > 180 and center[2][0] < 60
    assert abs(center[1][0] - center[3][0]) < 10  # both the default avatar
    many = media.compose_group_picture([red] * 12, media.default_avatar_jpeg())
    assert Image.open(io.BytesIO(many)).size == (340, 340)
    empty = media.compose_group_picture([], media.default_avatar_jpeg())
    assert Image.open(io.BytesIO(empty)).getpixel((170, 170)) == pytest.approx((200, 200, 200), abs=3)


def test_whole_seconds():
    assert [media.whole_seconds(s) for s in (0.01, 0.5, 1.49, 2.6, 59.5)] == [1, 1, 1, 3, 60]


def test_image_bombs_are_refused(tmp_path):
    path = tmp_path / "huge.png"
    Image.new("1", (10000, 5000)).save(path)  # 50 M pixels, a few kB on disk
    with pytest.raises(media.MediaError, match="larger than"):
        media.image_to_jpeg(str(path), str(tmp_path / "out.jpg"))


def test_playlists_never_reach_the_network_or_other_files(tmp_path):
    path = tmp_path / "list"
    path.write_text("#EXTM3U\n#EXTINF:1,\nfile:///etc/passwd\n#EXTINF:1,\nhttp://127.0.0.1:9/x.mp3\n")
    with pytest.raises(media.MediaError):
        media.probe_audio(str(path), 60)
