#!/usr/bin/env python3
"""
SPEC 4 Pixels: colours as the browser shows them (issue 22). Renderers capture in
Chromium, so a video whose stream carries no matrix is shown with Chromium's guess
(BT.709 for a coded picture of 720 lines or more, BT.601 below that and for VP9/AV1), a
tagged one with its own matrix and range; `untagged=cli` gives the ffmpeg CLI's guess
(BT.601 always).

The oracle is Chromium itself: a page shows the `<video>` paused at a frame's time and
headless Debian Chromium takes a screenshot; the same slot's PNG (and JPEG) read through
the mount must not differ from it by more than 2 levels per channel on the colour bars
(the mean of the signed difference: a colour shift, what a wrong matrix makes; the wrong
guess shifts a channel by 5-7 levels). The sources are still SMPTE bars, so which frame
the browser shows after the seek cannot matter.

Before this change the untagged HD H.264 case failed (the CLI's BT.601 guess: green
-5.7 levels against Chromium's picture).
"""

import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import hftest as h  # noqa: E402
from hftest import check, test  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
LIMIT = 2.0  # levels, mean signed difference per channel over the bars


def bars(out, size, codec_args, filters="format=yuv420p"):
    pattern = "smptehdbars" if size != "854x480" else "smptebars"
    h.ffmpeg_gen(out, ["-f", "lavfi", "-i", "%s=size=%s:rate=30:duration=2" % (pattern, size)],
                 filters, codec_args)


X264 = ["-c:v", "libx264", "-preset", "veryfast", "-crf", "16"]


@h.generator("col_hd_untagged.mp4")
def _g1(out):
    bars(out, "1920x1080", X264)


@h.generator("col_sd_untagged.mp4")
def _g2(out):
    bars(out, "854x480", X264)


@h.generator("col_hd_untagged_vp9.webm")
def _g3(out):
    bars(out, "1920x1080", ["-c:v", "libvpx-vp9", "-b:v", "0", "-crf", "20", "-deadline",
                            "realtime", "-cpu-used", "8", "-row-mt", "1"])


@h.generator("col_hd_bt709.mp4")
def _g4(out):
    bars(out, "1920x1080", X264 + ["-colorspace", "bt709", "-color_primaries", "bt709",
                                   "-color_trc", "bt709"])


@h.generator("col_hd_bt601.mp4")
def _g5(out):
    bars(out, "1920x1080", X264 + ["-colorspace", "smpte170m", "-color_primaries",
                                   "smpte170m", "-color_trc", "smpte170m"])


@h.generator("col_hd_full.mp4")
def _g6(out):
    bars(out, "1920x1080", X264 + ["-colorspace", "bt709", "-color_primaries", "bt709",
                                   "-color_trc", "bt709", "-color_range", "pc"],
         "scale=out_range=full:out_color_matrix=bt709,format=yuvj420p")


# name: (width, height, the matrix .hfinfo must say, guessed)
CASES = {
    "col_hd_untagged.mp4": (1920, 1080, "bt709", True),
    "col_sd_untagged.mp4": (854, 480, "smpte170m", True),
    "col_hd_untagged_vp9.webm": (1920, 1080, "smpte170m", True),
    "col_hd_bt709.mp4": (1920, 1080, "bt709", False),
    "col_hd_bt601.mp4": (1920, 1080, "smpte170m", False),
    "col_hd_full.mp4": (1920, 1080, "bt709", False),
}
T = "1"  # the time shown: a segment @1+0.5@2, slot 0


def screenshot(tmp, video, w, hh):
    """Chromium's picture of the <video> paused at T, as an Image."""
    page = os.path.join(tmp, "video.html")
    with open(page, "w") as f:
        f.write('<!doctype html><html><body style="margin:0;background:#000">'
                '<video id=v muted preload=auto style="display:block;width:%dpx;height:%dpx" '
                'src="file://%s"></video><script>const v=document.getElementById("v");'
                'v.addEventListener("loadeddata",()=>{v.currentTime=%s;});</script>'
                '</body></html>' % (w, hh, video, T))
    shot = os.path.join(tmp, "shot.png")
    if os.path.exists(shot):
        os.unlink(shot)
    p = subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
         "--no-first-run", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", "--hide-scrollbars", "--force-device-scale-factor=1",
         "--force-color-profile=srgb", "--autoplay-policy=no-user-gesture-required",
         "--user-data-dir=" + os.path.join(tmp, "profile"), "--virtual-time-budget=5000",
         "--window-size=%d,%d" % (w, hh), "--screenshot=" + shot, "file://" + page],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=120)
    check(p.returncode == 0 and os.path.exists(shot),
          "chromium failed (%d): %s" % (p.returncode, p.stderr.decode()[-2000:]))
    with open(shot, "rb") as f:
        return h.decode_images([f.read()])[0]


def bar_shift(a, b):
    """Mean signed difference a - b per channel, and the largest mean absolute one, over
    the colour bars (the top half of SMPTE bars), every 4th pixel."""
    check((a.w, a.h) == (b.w, b.h), "sizes differ: %dx%d and %dx%d" % (a.w, a.h, b.w, b.h))
    sa, sb = a.samples(), b.samples()
    s, ab, n = [0, 0, 0], [0, 0, 0], 0
    for y in range(0, a.h // 2, 4):
        row = y * a.w
        for x in range(0, a.w, 4):
            i = (row + x) * 3
            for c in range(3):
                d = sa[i + c] - sb[i + c]
                s[c] += d
                ab[c] += abs(d)
            n += 1
    return [v / n for v in s], max(v / n for v in ab)


def frame_of(m, name, opts=None, ext="png"):
    seg = h.seg_name(name, T, "0.5", "2", opts)
    blobs = m.read_segment(seg, ext)
    return m.info(seg), h.decode_images(blobs[:1], ext)[0]


@test
def frames_show_what_chromium_shows():
    check(os.access(CHROMIUM, os.X_OK), "%s is missing (installed by tools/setup.sh --test)"
          % CHROMIUM)
    worst = []
    with h.Mount() as m, h.tempdir() as tmp:
        for name, (w, hh, matrix, guessed) in CASES.items():
            oracle = screenshot(tmp, h.fixture(name), w, hh)
            for opts, ext in ((None, "png"), ("jpg", "jpg")):
                info, ours = frame_of(m, name, opts, ext)
                check(info.get("matrix") == matrix and info.get("matrix_guessed") is guessed,
                      "%s: .hfinfo matrix %r guessed %r, expected %s %s" % (
                          name, info.get("matrix"), info.get("matrix_guessed"), matrix,
                          guessed))
                shift, mad = bar_shift(ours, oracle)
                print("  %-26s %s: shift against Chromium %s, mean abs %.2f" % (
                    name, ext, " ".join("%+.2f" % v for v in shift), mad))
                check(all(abs(v) <= LIMIT for v in shift),
                      "%s (%s): colours shifted from Chromium's by %s levels (R G B), limit %s"
                      % (name, ext, ["%.2f" % v for v in shift], LIMIT))
                worst.append(max(abs(v) for v in shift))
    print("  worst shift %.2f levels" % max(worst))


@test
def untagged_cli_is_the_clis_guess_and_tagged_sources_ignore_it():
    with h.Mount() as m:
        # untagged HD: the CLI's pixels exactly with untagged=cli, the browser's without
        name = "col_hd_untagged.mp4"
        info, ours = frame_of(m, name, "untagged=cli")
        check(info.get("matrix") == "smpte170m" and info.get("matrix_guessed") is True,
              "untagged=cli: .hfinfo %r %r" % (info.get("matrix"), info.get("matrix_guessed")))
        ref = h.ref_fps(h.fixture(name), T, "0.5", "2")[:1]
        h.assert_frames_equal([ours], ref, name + "@untagged=cli against the CLI")
        _, browser = frame_of(m, name)
        shift, _ = bar_shift(browser, ours)
        check(max(abs(v) for v in shift) > 3, "the browser's guess and the CLI's give the same "
              "colours on HD bars: %r" % shift)
        # tagged: the option changes nothing, and both spellings share the images
        name = "col_hd_bt709.mp4"
        before = m.stats()["images_encoded"]
        _, a = frame_of(m, name)
        _, b = frame_of(m, name, "untagged=cli")
        check(a.data == b.data, "untagged=cli changed a tagged source's pixels")
        check(m.stats()["images_encoded"] - before == 1, "a tagged source's two spellings "
              "encoded %d images for one frame" % (m.stats()["images_encoded"] - before))
        ref = h.ref_fps(h.fixture(name), T, "0.5", "2")[:1]
        h.assert_frames_equal([a], ref, name + " (tagged) against the CLI")


@test
def images_of_the_old_guess_are_not_served():
    """The image key of an untagged source names its guess: the browser's and the CLI's
    images of untagged HD are two images, while an untagged SD source, whose guesses
    agree, shares one."""
    with h.Mount() as m:
        for name, images in (("col_hd_untagged.mp4", 2), ("col_sd_untagged.mp4", 1)):
            before = m.stats()["images_encoded"]
            frame_of(m, name)
            frame_of(m, name, "untagged=cli")
            n = m.stats()["images_encoded"] - before
            check(n == images, "%s: %d images for its two guesses, expected %d"
                  % (name, n, images))


if __name__ == "__main__":
    h.main()
