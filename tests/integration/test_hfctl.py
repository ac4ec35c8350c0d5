#!/usr/bin/env python3
"""
SPEC 9, the mount-side hfctl subcommands, run as a user would against a real mount:
status shows .hfstats' live counts; top shows running extractions with bars and n/N,
redrawing in place on a terminal (a pseudo-terminal here) and printing plain lines when
piped; prefetch exits 0 once .hfinfo says complete (and reading the frames afterwards
encodes nothing), or 1 with .hfinfo's sentence; contact-sheet writes a PNG of the
documented grid whose thumbnails show the right slots (checked with the ffmpeg CLI), each
labelled with its file number and the time of the source frame it shows: the labels are
read back from the sheet's pixels (the digits' shapes learnt from the file numbers) and
compared with the SPEC 4 choice computed from ffprobe's exact timestamps.
"""

import errno
import fcntl
import math
import os
import pty
import re
import select
import signal
import struct
import subprocess
import sys
import termios
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import hftest as h  # noqa: E402
from hftest import check, test  # noqa: E402


def hfctl(*args, timeout=60):
    """Runs hfctl ARGS with pipes; (exit status, stdout text, stderr text)."""
    p = subprocess.run([h.HFCTL_BIN] + list(args), stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=timeout)
    return p.returncode, p.stdout.decode(errors="replace"), p.stderr.decode(errors="replace")


def hfctl_pty(args, send=None, cols=200, rows=40, timeout=20):
    """Runs hfctl ARGS on a new pseudo-terminal (its controlling terminal, so Ctrl-C is a
    signal). send: bytes typed once the first screen has appeared. Returns (exit status,
    everything written to the terminal, the terminal's lflag after the exit)."""
    pid, fd = pty.fork()
    if pid == 0:
        try:
            os.execv(h.HFCTL_BIN, [h.HFCTL_BIN] + list(args))
        finally:
            os._exit(127)
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
    os.kill(pid, signal.SIGWINCH)  # the size was set after the child may have read it
    out = b""
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            r, _, _ = select.select([fd], [], [], 0.1)
            if not r:
                continue
            try:
                data = os.read(fd, 65536)
            except OSError as e:  # EIO: the child closed the terminal
                if e.errno != errno.EIO:
                    raise
                break
            if not data:
                break
            out += data
            if send and b"hfctl top" in out:
                os.write(fd, send)
                send = None
        else:
            os.kill(pid, signal.SIGKILL)
            raise AssertionError("hfctl %s did not finish within %ds on a terminal; output %r"
                                 % (" ".join(args), timeout, out[-500:]))
        lflag = termios.tcgetattr(fd)[3]
    finally:
        _, status = os.waitpid(pid, 0)
        os.close(fd)
    return os.waitstatus_to_exitcode(status), out, lflag


def one_line_error(result, what, mention, code=1):
    """result of hfctl(): exit status code and one line on stderr that names mention."""
    rc, _, err = result
    lines = [x for x in err.splitlines() if x.strip()]
    check(rc == code, "%s: exit %d, expected %d; stderr %r" % (what, rc, code, err))
    check(len(lines) == 1, "%s: expected a one-line error, got %r" % (what, err))
    check(mention in lines[0], "%s: error %r does not name %r" % (what, lines[0], mention))
    return lines[0]


def png_size(path):
    """(width, height) from a PNG's IHDR."""
    with open(path, "rb") as f:
        head = f.read(24)
    check(head[:8] == h.PNG_SIG and head[12:16] == b"IHDR", "%s is not a PNG" % path)
    return struct.unpack(">II", head[16:24])


def wait_completed(m, n, timeout=30):
    """Waits until .hfstats counts n completed extractions (the manifest is written after
    the last frame is served)."""
    deadline = time.monotonic() + timeout
    while m.stats()["extractions_completed"] < n and time.monotonic() < deadline:
        time.sleep(0.02)
    return m.stats()


def status_fields(text):
    """hfctl status output as {label: rest of line} for its 'label  values' lines."""
    out = {}
    for line in text.splitlines():
        if line[:1].strip() and len(line) > 13:
            out[line[:12].strip()] = line[13:]
    return out


# ---------------------------------------------------------------------------------------


@test
def usage_and_bad_arguments():
    for cmd in ("status", "top", "prefetch", "contact-sheet"):
        rc, out, err = hfctl(cmd, "--help")
        check(rc == 0 and out.startswith("usage: hfctl " + cmd),
              "%s --help: exit %d, %r" % (cmd, rc, out[:200]))
        rc, out, err = hfctl(cmd)
        check(rc == 2 and "usage" in err, "%s without arguments: exit %d, %r" % (cmd, rc, err))
        rc, out, err = hfctl(cmd, "--no-such-option", "/tmp")
        check(rc == 2 and "--no-such-option" in err,
              "%s --no-such-option: exit %d, %r" % (cmd, rc, err))
    for args in (("top", "-d", "0", "/tmp"), ("top", "-n", "x", "/tmp"),
                 ("status", "/tmp", "/tmp"), ("contact-sheet", "--width", "3", "/tmp", "o.png"),
                 ("contact-sheet", "--columns", "0", "/tmp", "o.png")):
        rc, out, err = hfctl(*args)
        check(rc == 2, "%s: exit %d, expected 2; %r" % (" ".join(args), rc, err))
    with h.tempdir() as d:
        for cmd in ("status", "top"):
            one_line_error(hfctl(cmd, d), cmd + " on a plain directory", d)
        one_line_error(hfctl("status", d + "/missing"), "status on a missing path",
                       d + "/missing")


@test
def status_shows_the_live_counts():
    seg = "cfr30.mp4@0+1@30"
    with h.Mount() as m:
        rc, out, err = hfctl("status", m.mnt)
        check(rc == 0, "status on a fresh mount: exit %d, %r" % (rc, err))
        f = status_fields(out)
        check(m.mnt in f.get("mount", ""), "no mount line naming %s:\n%s" % (m.mnt, out))
        check(f.get("frames", "").startswith("0 served"), "fresh mount frames line:\n" + out)
        check("0 images encoded" in f.get("frames", ""), "fresh mount:\n" + out)

        m.read_segment(seg)
        st = wait_completed(m, 1)
        rc, out, err = hfctl("status", m.mnt)
        check(rc == 0, "status: exit %d, %r" % (rc, err))
        print("  " + out.replace("\n", "\n  "))
        f = status_fields(out)
        check(st["frames_served"] == 30 and st["images_encoded"] == 30,
              ".hfstats after reading 30 frames: %r" % st)
        check("30 served" in f.get("frames", "") and "30 images encoded" in f.get("frames", ""),
              "frames line does not say 30 served, 30 images encoded:\n" + out)
        check("1 completed" in f.get("extractions", "") and "0 running" in f["extractions"],
              "extractions line:\n" + out)
        check("%d images" % st["store_images"] in f.get("store", "")
              and re.search(r"\d (KiB|MiB)", f["store"]), "store line:\n" + out)
        check(re.search(r"up \d", f["mount"]), "no uptime:\n" + out)
        check(re.search(r"hit ratio", f.get("cache", "")), "no hit ratio:\n" + out)
        phases = re.findall(r"^ +(\w+) +[\d.]+ m?s +([\d.]+)%$", out, re.M)
        check([p for p, _ in phases][:8] == ["index", "open", "seek", "decode", "convert",
                                             "transform", "encode", "write"],
              "phase table:\n" + out)
        check(abs(sum(float(x) for _, x in phases) - 100) < 1, "phase shares do not add up:\n"
              + out)


@test
def status_and_top_take_any_hfstats():
    """Fields hfctl does not know, fields missing, control characters (a file name may
    hold an escape sequence) and broken JSON, from a hand-written .hfstats."""
    with h.tempdir() as d:
        stats = os.path.join(d, ".hfstats")
        with open(stats, "w") as f:
            f.write('{"uptime_s": 3725, "frames_served": 12, "cache_hits": 3, "cache_misses": 1,'
                    ' "future_count": 42, "future_bytes": 1048576, "flag": true, "gone": null,'
                    ' "note": "caf\\u00e9 \\ud83d\\ude00 \\"q\\" \\u001b[2J",'
                    ' "nested": {"a": 1, "b": "x"}, "list": [1, 2, 3],'
                    ' "extractions": [{"segment": "a.mp4@0+1@30", "path": "/v/a.mp4@0+1@30",'
                    ' "count": 30, "frames_done": 10, "elapsed_ms": 500}],'
                    ' "time_ms": {"decode": 750, "new_phase": 250}}')
        rc, out, err = hfctl("status", d)
        check(rc == 0, "status: exit %d, %r" % (rc, err))
        f = status_fields(out)
        for label, want in (("mount", "up 1h 02m 05s"), ("frames", "12 served"),
                            ("cache", "75.0% hit ratio"), ("future_count", "42"),
                            ("future_bytes", "1.00 MiB"), ("flag", "yes"), ("gone", "none"),
                            ("note", 'caf\u00e9 \U0001f600 "q" ?[2J'), ("nested", "a 1, b x"),
                            ("list", "3 entries"), ("running", d + "/v/a.mp4@0+1@30  10/30"),
                            ("time", "1.00 s in all")):
            check(want in f.get(label, ""), "status: %r line %r lacks %r\n%s"
                  % (label, f.get(label), want, out))
        check("\x1b" not in out and "new_phase" in out and "25.0%" in out, "status:\n" + out)
        rc, out, err = hfctl("top", "-n", "1", d)
        check(rc == 0 and re.search(re.escape(d) + r"/v/a.mp4@0\+1@30 +\[#{6}\.{14}\] +10/30 ",
                                    out), "top on that .hfstats: exit %d\n%s%s" % (rc, out, err))
        for text in ("", "{", '{"a": }', '{"a": 01}', '{"a": "\\ud800"}', '{"a": 1} x', "[1]",
                     "[" * 100 + "]" * 100):
            with open(stats, "w") as f:
                f.write(text)
            one_line_error(hfctl("status", d), "status on .hfstats %r" % text[:20], stats)


def start_partial_extraction(m, seg, frames):
    """With eager = false, reading some frames leaves the segment extracting (the rest is
    never asked for): a running extraction that holds still for top to show."""
    for k in frames:
        with open(m.path(seg, "frame_%05d.png" % k), "rb") as f:
            f.read()
    x = [e for e in m.stats()["extractions"] if e["segment"] == seg]
    check(len(x) == 1, ".hfstats does not list %s as extracting: %r" % (seg, m.stats()))
    return x[0]


@test
def top_on_a_terminal_and_piped():
    seg = "cfr30.mp4@0+4@30"
    with h.Mount(opts=["eager=false"]) as m:
        x = start_partial_extraction(m, seg, (1, 5))
        path = m.path(seg)
        counts = "%d/%d" % (x["frames_done"], x["count"])
        bar = re.compile(rb"\[[#.]{10,}\]")

        rc, out, lflag = hfctl_pty(["top", "-n", "3", "-d", "0.2", m.mnt])
        check(rc == 0, "top -n 3 on a terminal: exit %d, %r" % (rc, out[-300:]))
        check(b"\x1b[H" in out and out.count(b"\x1b[H") >= 3,
              "top on a terminal does not redraw in place (no cursor-home per refresh): %r"
              % out[:300])
        check(out.rstrip().endswith(b"\x1b[?1049l"), "top did not restore the screen: %r"
              % out[-100:])
        text = out.replace(b" ", b"")
        check(path.encode() in out, "top on a terminal does not show %s: %r" % (path, out[:600]))
        check(bar.search(out), "no progress bar: %r" % out[:600])
        check(counts.encode() in text, "no %s: %r" % (counts, out[:600]))

        # q quits; Ctrl-C (a SIGINT from the terminal) too; both restore the terminal.
        for key in (b"q", b"\x03"):
            rc, out, lflag = hfctl_pty(["top", "-d", "0.2", m.mnt], send=key, timeout=10)
            check(rc == 0, "top after %r: exit %d" % (key, rc))
            check(out.rstrip().endswith(b"\x1b[?1049l"), "screen not restored after %r" % key)
            check(lflag & termios.ICANON and lflag & termios.ECHO,
                  "terminal left without ICANON/ECHO after %r" % key)

        rc, out, err = hfctl("top", "-n", "2", "-d", "0.2", m.mnt)
        check(rc == 0, "piped top: exit %d, %r" % (rc, err))
        print("  " + out.replace("\n", "\n  "))
        check("\x1b" not in out and "\r" not in out, "piped top writes escape codes: %r"
              % out[:300])
        check(out.count("hfctl top") == 2, "piped top -n 2 printed %d refreshes"
              % out.count("hfctl top"))
        rows = [line for line in out.splitlines() if line.startswith(path)]
        check(len(rows) == 2 and bar.search(rows[0].encode())
              and counts in rows[0].replace(" ", "") and "fps" in rows[0] and "ETA" in rows[0],
              "piped top rows: %r" % rows)


@test
def prefetch_completes_a_segment():
    segs = ["cfr30.mp4@0+2@30", "light30.mp4@0.5+1@30@jpg"]
    with h.Mount() as m:
        rc, out, err = hfctl("prefetch", *[m.path(s) for s in segs])
        check(rc == 0, "prefetch: exit %d, %r" % (rc, err))
        check(err == "", "prefetch piped wrote progress to stderr: %r" % err)
        for s in segs:
            info = m.info(s)
            check(info["state"] == "complete" and info["frames_done"] == info["count"] > 0,
                  "%s after prefetch: %r" % (s, info))
            check("%s: %d frames complete" % (m.path(s), info["count"]) in out,
                  "prefetch output %r" % out)
        before = wait_completed(m, 2)
        blobs = m.read_segment(segs[0])
        m.read_segment(segs[1], "jpg")
        after = m.stats()
        check(after["images_encoded"] == before["images_encoded"],
              "reading prefetched frames encoded %d more images"
              % (after["images_encoded"] - before["images_encoded"]))
        check(after["frames_served"] - before["frames_served"] == 60 + 30,
              "frames served went from %d to %d" % (before["frames_served"],
                                                     after["frames_served"]))
        idx, ref = h.ref_model(h.fixture("cfr30.mp4"), "0", "2", "30")
        h.assert_frames_equal(h.decode_images(blobs), ref, segs[0] + " after prefetch")

        # On a terminal: a progress bar redrawn in place on stderr.
        seg = m.path("cfr30.mp4@2+1@30")
        rc, out, _ = hfctl_pty(["prefetch", seg])
        check(rc == 0 and b"\r" in out and re.search(rb"\[[#.]{20}\] \d+/30", out),
              "prefetch on a terminal: exit %d, %r" % (rc, out[:300]))
        check(m.info("cfr30.mp4@2+1@30")["state"] == "complete", "not complete")

    # eager = false: prefetch asks for every frame itself.
    with h.Mount(opts=["eager=false"]) as m:
        seg = "cfr30.mp4@0+1@30"
        rc, out, err = hfctl("prefetch", m.path(seg))
        info = m.info(seg)
        check(rc == 0 and info["frames_done"] == info["count"] == 30,
              "prefetch with eager = false: exit %d, %r, %r" % (rc, err, info))


@test
def prefetch_failures_say_why():
    with h.Mount() as m:
        for seg in ("garbage.mp4@0+1@30", "cfr30.mp4@12+1@30", "truncated.mp4@0+4@30"):
            res = hfctl("prefetch", m.path(seg))
            why = m.info(seg).get("error")
            check(isinstance(why, str) and why, "%s: .hfinfo has no error: %r"
                  % (seg, m.info(seg)))
            line = one_line_error(res, "prefetch " + seg, m.path(seg))
            check(line == "hfctl prefetch: %s: %s" % (m.path(seg), why),
                  "prefetch %s: %r does not give .hfinfo's reason %r" % (seg, line, why))
            print("  " + line)
        for name in ("nothere.mp4@0+1@30", "cfr30.mp4@1+2"):
            one_line_error(hfctl("prefetch", m.path(name)), "prefetch " + name, m.path(name))
        one_line_error(hfctl("prefetch", m.mnt), "prefetch of the mount root", m.mnt)
        # One bad segment among good ones: the good ones still complete.
        good = "cfr30.mp4@1+1@30"
        rc, out, err = hfctl("prefetch", m.path("garbage.mp4@0+1@30"), m.path(good))
        check(rc == 1 and m.info(good)["state"] == "complete",
              "bad then good: exit %d, %s" % (rc, m.info(good)["state"]))


# Every frame one flat colour, all different: a thumbnail can only match its own slot.
def make_colors(srcroot):
    path = os.path.join(srcroot, "colors.mp4")
    h.ffmpeg_gen(path, ["-f", "lavfi", "-i", "color=c=black:s=96x64:r=10:d=12"],
                 "format=rgb24,geq=r='mod(N*67+10,256)':g='mod(N*151+40,256)'"
                 ":b='mod(N*29+90,256)',format=yuv420p",
                 ["-c:v", "libx264", "-preset", "ultrafast", "-qp", "0", "-g", "10"], "mp4")


def sheet_layout(count, fw, fh, columns=10, width=160):
    """The layout hfctl contact-sheet documents: (slots shown, cols, tw, th, label, W, H)."""
    n = min(count, 100)
    slots = list(range(count)) if count <= 100 else [i * (count - 1) // 99 for i in range(100)]
    cols = min(columns, n)
    rows = (n + cols - 1) // cols
    th = max(1, (width * fh + fw // 2) // fw)
    label = 16 * (2 if width >= 96 else 1) + 6
    return slots, cols, width, th, label, cols * (width + 6) + 6, rows * (th + label + 6) + 6


def mean_rgb(img, x0, y0, w, h_):
    s = [0, 0, 0]
    for y in range(y0, y0 + h_):
        row = img.data[(y * img.w + x0) * 3:(y * img.w + x0 + w) * 3]
        for c in range(3):
            s[c] += sum(row[c::3])
    return [v / (w * h_) for v in s]


def check_sheet(out, frames, fw, fh, what, columns=10, width=160, tolerance=4):
    """out shows frames (every slot's decoded image) as the documented grid."""
    slots, cols, tw, th, label, W, H = sheet_layout(len(frames), fw, fh, columns, width)
    check(png_size(out) == (W, H), "%s: sheet is %dx%d, the layout says %dx%d"
          % (what, *png_size(out), W, H))
    sheet = h.decode_images([open(out, "rb").read()])[0]
    ink = (232, 232, 232)
    for i, slot in enumerate(slots):
        x = 6 + (i % cols) * (tw + 6)
        y = 6 + (i // cols) * (th + label + 6)
        got = mean_rgb(sheet, x + 2, y + 2, tw - 4, th - 4)
        want = mean_rgb(frames[slot], 4, 4, fw - 8, fh - 8)
        check(all(abs(a - b) <= tolerance for a, b in zip(got, want)),
              "%s: thumbnail %d (slot %d) has mean colour %s, frame_%05d has %s"
              % (what, i, slot, [round(v) for v in got], slot + 1, [round(v) for v in want]))
        band = sheet.data[((y + th) * W + x) * 3:((y + th + label) * W + x) * 3]
        check(bytes(ink) in band, "%s: no number drawn under thumbnail %d" % (what, i))


@test
def contact_sheet_grid():
    with h.tempdir() as srcroot, h.tempdir() as outdir:
        make_colors(srcroot)
        with h.Mount(source_root=srcroot) as m:
            # Cold segments (the sheet's reads extract them): every slot; 100 of 120 slots
            # evenly spaced, small thumbnails; jpg frames.
            cases = (("colors.mp4@0+2@10", "png", {}, 4),
                     ("colors.mp4@0+12@10", "png", {"columns": 12, "width": 48}, 4),
                     ("colors.mp4@1+2@10@jpg", "jpg", {"width": 90}, 8))
            for seg, ext, kw, tol in cases:
                out = os.path.join(outdir, seg + ".png")
                opts = [a for k, v in kw.items() for a in ("--" + k, str(v))]
                rc, so, err = hfctl("contact-sheet", *opts, m.path(seg), out)
                check(rc == 0, "contact-sheet %s: exit %d, %r" % (seg, rc, err))
                print("  " + so.strip())
                frames = h.decode_images(m.read_segment(seg, ext), ext)
                check_sheet(out, frames, 96, 64, seg, tolerance=tol, **kw)

            # Failures: one line, exit 1, OUT left as it was, no temporary file behind.
            out = os.path.join(outdir, "kept.png")
            with open(out, "wb") as f:
                f.write(b"old")
            before = sorted(os.listdir(outdir))
            for seg, mention in (("colors.mp4@20+1@10", "past the end"),
                                 ("nothere.mp4@0+1@10", "nothere.mp4")):
                one_line_error(hfctl("contact-sheet", m.path(seg), out), "contact-sheet " + seg,
                               mention)
            one_line_error(hfctl("contact-sheet", srcroot, out),
                           "contact-sheet of a plain directory", srcroot)
            check(open(out, "rb").read() == b"old" and sorted(os.listdir(outdir)) == before,
                  "a failed contact-sheet touched %s: %s" % (outdir, os.listdir(outdir)))
        with h.Mount() as m:
            seg = "truncated.mp4@0+4@30"
            line = one_line_error(hfctl("contact-sheet", m.path(seg), out),
                                  "contact-sheet " + seg, m.path(seg))
            check(m.info(seg)["error"] in line, "%r does not give .hfinfo's reason" % line)
            check(open(out, "rb").read() == b"old", "a failed contact-sheet replaced OUT")


INK = bytes((232, 232, 232))


def read_line(sheet, x, tw, top, scale):
    """The characters of one label line (top row `top`, centred in [x, x + tw)) as 5x7
    bitmaps, reading the documented placement: left = x + (tw - (6 * len - 1) * scale) / 2,
    characters 6 * scale apart, each pixel a scale x scale block. The length is the one
    that puts every inked column inside a character and ink in every character."""
    def ink(cx, cy):
        off = (cy * sheet.w + cx) * 3
        return sheet.data[off:off + 3] == INK

    inked = [cx for cx in range(x, x + tw) if any(ink(cx, cy) for cy in range(top, top + 7 * scale))]
    check(inked, "no label line at y=%d under the thumbnail at x=%d" % (top, x))
    for n in range(1, tw // (6 * scale) + 1):
        left = x + (tw - (6 * n - 1) * scale) // 2
        if any((cx - left) < 0 or (cx - left) % (6 * scale) >= 5 * scale or
               (cx - left) // (6 * scale) >= n for cx in inked):
            continue
        chars = []
        for i in range(n):
            bits = []
            for r in range(7):
                for c in range(5):
                    block = {ink(left + i * 6 * scale + c * scale + dx, top + r * scale + dy)
                             for dx in range(scale) for dy in range(scale)}
                    check(len(block) == 1, "a label pixel at (%d, %d) is not a whole %dx%d "
                          "block" % (left + i * 6 * scale + c * scale, top + r * scale,
                                     scale, scale))
                    bits.append(block.pop())
            chars.append(tuple(bits))
        if all(any(b) for b in chars):
            return chars
    raise AssertionError("the label at y=%d under x=%d is not a centred line of characters"
                         % (top, x))


def ms_text(t):
    """Exact seconds (Fraction) as the label writes them: 3 decimals, half away from 0."""
    ms = math.floor(abs(t) * 1000 + h.Fraction(1, 2))
    return "%s%d.%03d" % ("-" if t < 0 else "", ms // 1000, ms % 1000)


@test
def contact_sheet_times():
    # Labels against the frame SPEC 4 says each slot shows: variable rate, a container
    # start of 1.48 s, millisecond time base (the half tick), 100 of 360 slots at 10 min,
    # hold past the end, small thumbnails (scale 1).
    cases = (("vfr.mp4", "0.5", "2", "7", None, {}),
             ("offset.ts", "0.3", "1", "12", None, {}),
             ("ms30.webm", "0.4", "1", "30", None, {}),
             ("long12.mp4", "600.01", "12", "30", None, {"columns": 20}),
             ("cfr30.mp4", "3.5", "2", "10", "hold", {}),
             ("cfr30.mp4", "1", "1", "12", None, {"width": 48}))
    with h.tempdir() as outdir, h.Mount() as m:
        for src, start, dur, fps, opts, kw in cases:
            seg = h.seg_name(src, start, dur, fps, opts)
            out = os.path.join(outdir, "sheet.png")
            args = [a for k, v in kw.items() for a in ("--" + k, str(v))]
            rc, so, err = hfctl("contact-sheet", *args, m.path(seg), out)
            check(rc == 0 and err == "", "contact-sheet %s: exit %d, %r" % (seg, rc, err))
            frames = h.probe_frames(h.fixture(src))
            shown = h.model_slots(frames, start, dur, fps, hold=opts == "hold")
            times = frames.times()
            info = m.info(seg)
            check(info["count"] == len(shown), "%s: %d slots, the model has %d"
                  % (seg, info["count"], len(shown)))
            slots, cols, tw, th, label, W, H = sheet_layout(
                len(shown), info["width"], info["height"], **kw)
            scale = 2 if tw >= 96 else 1
            sheet = h.decode_images([open(out, "rb").read()])[0]
            check((sheet.w, sheet.h) == (W, H), "%s: sheet %dx%d, layout %dx%d"
                  % (seg, sheet.w, sheet.h, W, H))
            # the digits' shapes, from the file numbers (whose text is known)
            glyphs, lines = {}, []
            for i, slot in enumerate(slots):
                x = 6 + (i % cols) * (tw + 6)
                y = 6 + (i // cols) * (th + label + 6)
                number = read_line(sheet, x, tw, y + th + 3, scale)
                check(len(number) == len(str(slot + 1)), "%s: thumbnail %d's number has %d "
                      "characters, %d expected" % (seg, i, len(number), len(str(slot + 1))))
                for bits, ch in zip(number, str(slot + 1)):
                    check(glyphs.setdefault(bits, ch) == ch,
                          "%s: one shape reads as %s and %s" % (seg, glyphs[bits], ch))
                lines.append(read_line(sheet, x, tw, y + th + 3 + 9 * scale, scale))
            check(len(set(glyphs.values())) == 10, "%s: the numbers show only the digits %s; "
                  "the case cannot read every time" % (seg, sorted(set(glyphs.values()))))
            for i, (slot, line) in enumerate(zip(slots, lines)):
                text = "".join(glyphs.get(bits, "?") for bits in line)
                # the one shape that is no digit: the point, 3 decimals from the end, a dot
                # in the two bottom rows
                check(text.count("?") == 1 and text[-4] == "?" and
                      not any(line[-4][:25]) and any(line[-4][25:]),
                      "%s: thumbnail %d's time reads %r" % (seg, i, text))
                text = text.replace("?", ".")
                want = ms_text(times[shown[slot]])
                check(text == want, "%s: slot %d (frame_%05d) is labelled %s; it shows the "
                      "frame at %s s (%s)" % (seg, slot, slot + 1, text, times[shown[slot]],
                                              want))
            print("  %s: %d labels read, e.g. frame_%05d at %s" % (
                seg, len(slots), slots[-1] + 1, ms_text(times[shown[slots[-1]]])))


if __name__ == "__main__":
    h.main()
