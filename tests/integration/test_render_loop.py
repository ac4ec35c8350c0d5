#!/usr/bin/env python3
"""
A small version of the render benchmark's capture loop (tools/render-bench/render.js,
issue 19): headless Debian Chromium driven by puppeteer-core, one clip of a fixture placed
in a box on a larger page, its frames read from a real mount through hfmount-client's
segmentPath/openSegment/frameAtTime, handed to the page as data URIs, img.decode(), one PNG
screenshot per output frame. Each screenshot's box is compared with the ffmpeg CLI's frame
for that composition time (`ffmpeg -ss S -i SRC -t D -vf fps=F`), and outside the clip's
time on the timeline the box must show the page's background. puppeteer-core comes from
`npm ci` in tools/render-bench (tools/setup.sh --test runs it; this test runs it when
node_modules is missing, and fails, never skips, when that install fails).
"""

import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import hftest as h  # noqa: E402
from hftest import check, test  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
BENCH = os.path.normpath(os.path.join(HERE, "..", "..", "tools", "render-bench"))
CHROMIUM = "/usr/bin/chromium"

FPS = 30
CLIP_START = "0.1"      # on the timeline: output frames 0-2 are before the clip
MEDIA_START = "1.5"     # in the video
DURATION = "0.2"        # 6 slots
FRAMES = 8              # output frames captured: 3 without the clip, 5 with it
BOX = (64, 48, 320, 240)  # x, y, w, h: cfr30.mp4's own size, so no scaling anywhere
PAGE = (480, 360)
BACKGROUND = (32, 64, 96)


def ensure_puppeteer():
    check(os.access(CHROMIUM, os.X_OK), "%s is missing (tools/setup.sh --test installs it)"
          % CHROMIUM)
    if os.path.isdir(os.path.join(BENCH, "node_modules", "puppeteer-core")):
        return
    p = subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=BENCH,
                       env=dict(os.environ, PUPPETEER_SKIP_DOWNLOAD="1"),
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=300)
    check(p.returncode == 0, "npm ci in %s failed (exit %d): puppeteer-core is needed\n%s"
          % (BENCH, p.returncode, p.stdout.decode(errors="replace")[-3000:]))


def crop(png_path, box):
    x, y, w, hh = box
    p = h.run(["ffmpeg", "-nostdin", "-v", "error", "-i", png_path, "-vf",
               "crop=%d:%d:%d:%d" % (w, hh, x, y)] + h._pam_out("rgb24"))
    return h.parse_pam(p.stdout)[0]


@test
def capture_loop_pixels_match_cli_frames():
    ensure_puppeteer()
    src = h.fixture("cfr30.mp4")
    ref = h.ref_cli(src, MEDIA_START, DURATION, FPS)
    check(len(ref) == 6, "the CLI made %d frames of %s@%s+%s@%d, expected 6"
          % (len(ref), "cfr30.mp4", MEDIA_START, DURATION, FPS))
    x, y, w, hh = BOX
    spec = {"fps": FPS, "duration": 0.4, "width": PAGE[0], "height": PAGE[1],
            "background": "rgb(%d,%d,%d)" % BACKGROUND,
            "clips": [{"id": "clip", "src": src, "mediaStart": float(MEDIA_START),
                       "start": float(CLIP_START), "duration": float(DURATION),
                       "box": {"x": x, "y": y, "w": w, "h": hh},
                       "format": "png", "native": True}]}
    with h.Mount() as m, h.tempdir() as tmp:
        spec_path = os.path.join(tmp, "spec.json")
        with open(spec_path, "w") as f:
            json.dump(spec, f)
        shots = os.path.join(tmp, "shots")
        p = subprocess.run(["node", os.path.join(BENCH, "render.js"), "--spec", spec_path,
                            "--mode", "hfmount", "--mount", m.mnt, "--work",
                            os.path.join(tmp, "work"), "--out", "-", "--frames", str(FRAMES),
                            "--shot-format", "png", "--shots", shots],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=120)
        check(p.returncode == 0, "render.js failed (exit %d): %s"
              % (p.returncode, p.stderr.decode(errors="replace")[-3000:]))
        res = json.loads(p.stdout.decode().strip().splitlines()[-1])
        check(res["frames"] == FRAMES and res["images"] == FRAMES - 3,
              "render.js captured %d frames with %d images, expected %d and %d: %r"
              % (res["frames"], res["images"], FRAMES, FRAMES - 3, res))
        st = m.stats()
        check(st["frames_served"] >= FRAMES - 3, "the mount served %d frames, expected >= %d"
              % (st["frames_served"], FRAMES - 3))
        names = sorted(os.listdir(shots))
        check(names == ["shot_%05d.png" % (i + 1) for i in range(FRAMES)],
              "screenshots: %s" % names)
        for f in range(FRAMES):
            got = crop(os.path.join(shots, names[f]), BOX)
            if f < 3:
                want = h.Image(w, hh, 3, 255, bytes(BACKGROUND) * (w * hh))
                what = "the background (clip not yet on the timeline)"
            else:
                want = ref[f - 3]
                what = "the CLI's frame %d of %s@%s+%s" % (f - 3 + 1, "cfr30.mp4", MEDIA_START,
                                                            DURATION)
            errs = h.channel_errors(got, want)
            worst = max(e[1] for e in errs)
            print("  output frame %d vs %s: mean abs diff per channel %s"
                  % (f, what, " ".join("%.2f" % e[1] for e in errs)))
            check(worst <= 2.0, "output frame %d: the box differs from %s by %.2f levels "
                  "(mean abs, worst channel; at most 2)" % (f, what, worst))
            if f >= 3 and f - 3 + 1 < len(ref):
                # and it is that frame, not its neighbour
                other = max(e[1] for e in h.channel_errors(got, ref[f - 3 + 1]))
                check(other > worst + 2, "output frame %d matches the next CLI frame as well "
                      "(%.2f vs %.2f): the frame choice is not proven" % (f, other, worst))


if __name__ == "__main__":
    h.main()
