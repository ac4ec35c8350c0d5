"""
hftest: shared helpers for the hfmount integration tests.

Everything here proves the product against tools nobody in this project wrote:
fixtures are made by the ffmpeg CLI, references are decoded by the ffmpeg CLI, exact
timestamps come from ffprobe and are handled as fractions.Fraction (never floats),
and the mount is exercised through the kernel like any other client would.

Environment (set by tests/CMakeLists.txt):
    HFMOUNT_BIN   the hfmount binary under test
    HF_FIXTURES   a writable directory for generated fixtures (kept between runs)

Pieces:
    fixture(name)            path of a generated source video, made once (flock-guarded)
    probe_frames(path)       exact packet timestamps of the video stream (ffprobe)
    model_slots(...)         SPEC 4 slot -> source frame choice, computed with Fractions
    ref_fps(...)             reference frames from `ffmpeg -vf fps=F:round=up:start_time=S,trim=...`
    ref_all(...)             every decoded source frame (-fps_mode passthrough)
    transform_chain(...)     the CLI filter chain of SPEC 4a for w/h/fit/bt2020/tonemap
    ref_model_chain(...)     per slot, the CLI's image file through a chain (-vf, -q:v)
    png_chunks(blob)         a PNG's chunks (cICP, IHDR...), parsed by hand
    channel_errors(a, b)     per channel mean and mean absolute difference
    decode_images(...)       decode PNG/JPEG bytes read from the mount with the ffmpeg CLI
    assert_frames_equal(...) raw pixel comparison with a useful failure message
    Mount                    context manager: temp store + mountpoint, always unmounted
    tree_state(dir)          every entry's mode, size and mtime (to prove nothing was touched)
    test / main              a tiny test runner printing "N passed, M failed"
"""

import contextlib
import errno
import fcntl
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from bisect import bisect_left, bisect_right
from fractions import Fraction  # noqa: F401 (tests use h.Fraction)

HERE = os.path.dirname(os.path.abspath(__file__))
HFMOUNT_BIN = os.environ.get("HFMOUNT_BIN", "")
HFCTL_BIN = os.environ.get("HFCTL_BIN", "")
HF_FIXTURES = os.path.abspath(os.environ.get("HF_FIXTURES", "/tmp/hf-fixtures"))
# Bump when a fixture recipe changes: fixtures live in a fresh directory per version.
FIXTURE_VERSION = "3"
SRC = os.path.join(HF_FIXTURES, "src-v" + FIXTURE_VERSION)  # the mounts' source_root

PNG_SIG = b"\x89PNG\r\n\x1a\n"


# ---------------------------------------------------------------------------------------
# Running external tools


class ToolError(AssertionError):
    pass


def build_dir():
    """The CMake build directory HFMOUNT_BIN was built in."""
    d = os.path.dirname(os.path.abspath(HFMOUNT_BIN))
    while d != "/" and not os.path.exists(os.path.join(d, "CMakeCache.txt")):
        d = os.path.dirname(d)
    check(d != "/", "no CMakeCache.txt above HFMOUNT_BIN=%s" % HFMOUNT_BIN)
    return d


def in_threads(*calls):
    """Runs each (fn, args...) in its own thread, all starting together; their results,
    or raises the first exception."""
    out, errs = [None] * len(calls), []
    start = threading.Barrier(len(calls))

    def run(i, fn, args):
        try:
            start.wait()
            out[i] = fn(*args)
        except BaseException as e:  # noqa: B902 -- re-raised below
            errs.append(e)
    ts = [threading.Thread(target=run, args=(i, c[0], c[1:])) for i, c in enumerate(calls)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    if errs:
        raise errs[0]
    return out


def pid_alive(pid):
    """False once pid has exited (a zombie nobody reaped counts as exited)."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def pids_with_arg(pred):
    """Live processes (not this one) with an argument for which pred(arg) is true."""
    out = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            with open("/proc/%s/cmdline" % pid, "rb") as f:
                args = f.read().decode(errors="replace").split("\0")
        except OSError:
            continue
        if any(pred(a) for a in args) and pid_alive(int(pid)):
            out.append(int(pid))
    return out


def run(cmd, input=None, timeout=300, check=True):
    """Runs cmd (a list), returns CompletedProcess with bytes stdout/stderr."""
    p = subprocess.run(cmd, input=input, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=timeout)
    if check and p.returncode != 0:
        raise ToolError("command failed (exit %d): %s\n%s" % (
            p.returncode, " ".join(cmd), p.stderr.decode(errors="replace")[-3000:]))
    return p


def ffprobe_json(args, path):
    p = run(["ffprobe", "-v", "error", "-of", "json"] + args + [path])
    return json.loads(p.stdout)


# ---------------------------------------------------------------------------------------
# Fixtures: generated once into $HF_FIXTURES/src-vN, reused, guarded by flock because
# ctest may run several test files at once.

_GENERATORS = {}


def generator(name):
    def deco(fn):
        _GENERATORS[name] = fn
        return fn
    return deco


def ffmpeg_gen(out, inputs, filters, codec_args, fmt=None):
    cmd = ["ffmpeg", "-nostdin", "-y", "-v", "error"] + inputs
    if filters:
        cmd += ["-vf", filters]
    cmd += codec_args
    if fmt:
        cmd += ["-f", fmt]
    cmd.append(out)
    run(cmd)


# Grainy, moving content: testsrc2 moves every frame; temporal noise makes every frame
# distinct in every pixel region, so a wrong frame choice can never look right.
def _lavfi_src(size, rate, duration):
    return ["-f", "lavfi", "-i", "testsrc2=size=%s:rate=%s:duration=%s" % (size, rate, duration)]


NOISE = "noise=alls=24:allf=t+u"


@generator("cfr30.mp4")
def _gen_cfr30(out):
    # 4 s at 30 fps, keyframe every 12 frames (0.4 s), B-frames (x264 default).
    ffmpeg_gen(out, _lavfi_src("320x240", 30, 4), NOISE + ",format=yuv420p",
               ["-c:v", "libx264", "-preset", "veryfast", "-crf", "20", "-g", "12",
                "-keyint_min", "12", "-sc_threshold", "0", "-bf", "2"], "mp4")


@generator("light30.mp4")
def _gen_light30(out):
    # Lightly grainy: the jpg test's PSNR threshold is about our pipeline, not about how
    # badly JPEG copes with heavy noise (ffmpeg's own -q:v 2 is under 35 dB on cfr30.mp4).
    ffmpeg_gen(out, _lavfi_src("320x240", 30, 2), "noise=alls=4:allf=t+u,format=yuv420p",
               ["-c:v", "libx264", "-preset", "veryfast", "-crf", "18", "-g", "12"], "mp4")


@generator("ntsc.mp4")
def _gen_ntsc(out):
    ffmpeg_gen(out, _lavfi_src("320x240", "30000/1001", 3), NOISE + ",format=yuv420p",
               ["-c:v", "libx264", "-preset", "veryfast", "-crf", "20", "-g", "15",
                "-sc_threshold", "0"], "mp4")


@generator("fps24.mp4")
def _gen_fps24(out):
    ffmpeg_gen(out, _lavfi_src("320x240", 24, 3), NOISE + ",format=yuv420p",
               ["-c:v", "libx264", "-preset", "veryfast", "-crf", "20", "-g", "24",
                "-sc_threshold", "0"], "mp4")


# Variable frame rate with long gaps. Frame n (0..39) is given an exact timestamp in a
# 1/90000 time base:
#   n 0..9   : n/10 s            (10 fps, 0.0 .. 0.9)
#   n 10..24 : 2.5 + (n-10)/30 s (gap 0.9 -> 2.5, then 30 fps)
#   n 25..29 : 4 + (n-25)/4 s    (gap -> 4.0, then 4 fps)
#   n 30..39 : 5.2 + (n-30)/60 s (60 fps)
VFR_TICKS = ([n * 9000 for n in range(10)] + [225000 + (n - 10) * 3000 for n in range(10, 25)]
             + [360000 + (n - 25) * 22500 for n in range(25, 30)]
             + [468000 + (n - 30) * 1500 for n in range(30, 40)])


@generator("vfr.mp4")
def _gen_vfr(out):
    expr = ("if(lt(N,10),N*9000,if(lt(N,25),225000+(N-10)*3000,"
            "if(lt(N,30),360000+(N-25)*22500,468000+(N-30)*1500)))")
    ffmpeg_gen(out, _lavfi_src("320x240", 30, "1.3333333333"),
               NOISE + ",settb=1/90000,setpts='%s',format=yuv420p" % expr,
               ["-frames:v", "40", "-fps_mode", "passthrough", "-enc_time_base", "1/90000", "-c:v", "libx264",
                "-preset", "veryfast", "-crf", "20", "-bf", "0", "-g", "8",
                "-video_track_timescale", "90000"], "mp4")
    fr = probe_frames(out)
    if fr.tb != Fraction(1, 90000) or fr.pts != VFR_TICKS:
        raise ToolError("vfr fixture timestamps are not as designed: tb=%s pts=%s"
                        % (fr.tb, fr.pts))


@generator("offset.ts")
def _gen_offset_ts(out):
    # MPEG-TS starts at 1.48 s (mux delay), 25 fps, B-frames: slot times are relative to
    # the container's start time, as the CLI has it.
    ffmpeg_gen(out, _lavfi_src("320x240", 25, 3), NOISE + ",format=yuv420p",
               ["-c:v", "libx264", "-preset", "veryfast", "-crf", "20", "-g", "10",
                "-bf", "2"], "mpegts")
    if probe_frames(out).origin != Fraction(148, 100):
        raise ToolError("offset.ts does not start at 1.48 s")


@generator("delayed.mp4")
def _gen_delayed(out):
    # Audio from 0 s, video from 0.5 s: the container starts at 0, so slots before 0.5 s
    # come before the first frame and show it.
    ffmpeg_gen(out, ["-f", "lavfi", "-i", "sine=frequency=440:duration=3"]
               + _lavfi_src("320x240", 30, 2),
               NOISE + ",setpts=PTS+15/TB/30,format=yuv420p",
               ["-map", "1:v", "-map", "0:a", "-c:v", "libx264", "-preset", "veryfast",
                "-crf", "20", "-g", "12", "-bf", "2", "-c:a", "aac"], "mp4")
    fr = probe_frames(out)
    if fr.origin != 0 or fr.times()[0] != Fraction(1, 2):
        raise ToolError("delayed.mp4: origin %s, first frame at %s" % (fr.origin, fr.times()[0]))


# Three frames: 0 s, 1 s, and 3400 s, like a screen recording left on a still screen.
LONGGAP_TICKS = [0, 90000, 306000000]


@generator("longgap.mp4")
def _gen_longgap(out):
    ffmpeg_gen(out, _lavfi_src("320x240", 30, 1),
               NOISE + ",settb=1/90000,setpts='if(lt(N,2),N*90000,306000000)',format=yuv420p",
               ["-frames:v", "3", "-fps_mode", "passthrough", "-enc_time_base", "1/90000",
                "-c:v", "libx264", "-preset", "veryfast", "-crf", "20", "-bf", "0",
                "-video_track_timescale", "90000"], "mp4")
    fr = probe_frames(out)
    if fr.pts != LONGGAP_TICKS:
        raise ToolError("longgap fixture timestamps are %s" % fr.pts)


@generator("we@ird+name.mp4")
def _gen_weird(out):
    shutil.copyfile(fixture("cfr30.mp4"), out)


@generator("bt709_1080p.mp4")
def _gen_bt709(out):
    # RGB test pattern converted with the BT.709 matrix and tagged BT.709 (limited range).
    ffmpeg_gen(out, _lavfi_src("1920x1080", 30, 1),
               NOISE + ",scale=out_color_matrix=bt709:out_range=tv,format=yuv420p",
               ["-c:v", "libx264", "-preset", "ultrafast", "-crf", "22", "-g", "15",
                "-colorspace", "bt709", "-color_primaries", "bt709", "-color_trc", "bt709",
                "-color_range", "tv"], "mp4")


@generator("rotated.mp4")
def _gen_rotated(out):
    tmp = out + ".norot.mp4"
    ffmpeg_gen(tmp, _lavfi_src("320x240", 30, 2), NOISE + ",format=yuv420p",
               ["-c:v", "libx264", "-preset", "veryfast", "-crf", "20", "-g", "15"], "mp4")
    try:
        run(["ffmpeg", "-nostdin", "-y", "-v", "error", "-i", tmp, "-c", "copy",
             "-metadata:s:v:0", "rotate=90", "-f", "mp4", out])
    finally:
        os.unlink(tmp)
    if display_rotation(out) is None:
        raise ToolError("rotated fixture has no display matrix")


@generator("alpha.webm")
def _gen_alpha(out):
    ffmpeg_gen(out, _lavfi_src("320x240", 30, 2),
               NOISE + ",format=yuva420p,geq=lum='lum(X,Y)':cb='cb(X,Y)':cr='cr(X,Y)'"
               ":a='clip(128+120*sin(X/13+Y/29+T*5),0,255)'",
               ["-c:v", "libvpx-vp9", "-pix_fmt", "yuva420p", "-auto-alt-ref", "0",
                "-deadline", "realtime", "-cpu-used", "8", "-b:v", "2M", "-g", "15"], "webm")


@generator("hdr10.mp4")
def _gen_hdr10(out):
    ffmpeg_gen(out, _lavfi_src("320x240", 30, 2), NOISE + ",format=yuv420p10le",
               ["-c:v", "libx265", "-preset", "ultrafast", "-pix_fmt", "yuv420p10le",
                "-x265-params",
                "colorprim=bt2020:transfer=smpte2084:colormatrix=bt2020nc:log-level=error"
                ":keyint=15",
                "-color_primaries", "bt2020", "-color_trc", "smpte2084",
                "-colorspace", "bt2020nc", "-tag:v", "hvc1"], "mp4")


# Sources for the transforms of SPEC 4a, the jpg option and hold: small, lightly grainy
# (a q=2 JPEG of heavy noise says more about JPEG than about the pipeline), every frame
# distinct. 16:9 and 4:3 untagged, a BT.709-tagged one, and a 10-bit HLG one.
LIGHT_NOISE = "noise=alls=6:allf=t+u"


@generator("wide640.mp4")
def _gen_wide640(out):
    # 640x360 (16:9), 30 fps, 2 s, untagged (BT.601 as the CLI has it).
    ffmpeg_gen(out, _lavfi_src("640x360", 30, 2), LIGHT_NOISE + ",format=yuv420p",
               ["-c:v", "libx264", "-preset", "veryfast", "-crf", "18", "-g", "15",
                "-bf", "2"], "mp4")


@generator("four3.mp4")
def _gen_four3(out):
    # 480x360 (4:3), 30 fps, 1.5 s, untagged.
    ffmpeg_gen(out, _lavfi_src("480x360", 30, 1.5), LIGHT_NOISE + ",format=yuv420p",
               ["-c:v", "libx264", "-preset", "veryfast", "-crf", "18", "-g", "15"], "mp4")


@generator("bt709_360p.mp4")
def _gen_bt709_360p(out):
    # 640x360, 1 s: converted with the BT.709 matrix and tagged BT.709 (limited range).
    ffmpeg_gen(out, _lavfi_src("640x360", 30, 1),
               LIGHT_NOISE + ",scale=out_color_matrix=bt709:out_range=tv,format=yuv420p",
               ["-c:v", "libx264", "-preset", "veryfast", "-crf", "18", "-g", "15",
                "-colorspace", "bt709", "-color_primaries", "bt709", "-color_trc", "bt709",
                "-color_range", "tv"], "mp4")


@generator("hlg720.mp4")
def _gen_hlg720(out):
    # 1280x720 10-bit HEVC tagged HLG (ARIB STD-B67) with BT.2020 primaries, 30 fps, 1 s.
    ffmpeg_gen(out, _lavfi_src("1280x720", 30, 1), LIGHT_NOISE + ",format=yuv420p10le",
               ["-c:v", "libx265", "-preset", "ultrafast", "-pix_fmt", "yuv420p10le",
                "-x265-params",
                "colorprim=bt2020:transfer=arib-std-b67:colormatrix=bt2020nc:log-level=error"
                ":keyint=15",
                "-color_primaries", "bt2020", "-color_trc", "arib-std-b67",
                "-colorspace", "bt2020nc", "-tag:v", "hvc1"], "mp4")


@generator("faststart.mp4")
def _gen_faststart(out):
    # moov before mdat, so the index survives truncation.
    ffmpeg_gen(out, _lavfi_src("320x240", 30, 4), NOISE + ",format=yuv420p",
               ["-c:v", "libx264", "-preset", "veryfast", "-crf", "20", "-g", "12",
                "-keyint_min", "12", "-sc_threshold", "0", "-bf", "0",
                "-movflags", "+faststart"], "mp4")


# Matroska and WebM store milliseconds (time base 1/1000): frames meant for 66.67 ms are
# stamped 67 ms. These are what the half tick of SPEC 4 is for.
def _gen_ms(out, rate, seconds, codec, fmt):
    args = (["-c:v", "libx264", "-preset", "veryfast", "-crf", "20", "-g", "12", "-bf", "2"]
            if codec == "h264" else
            ["-c:v", "libvpx-vp9", "-deadline", "realtime", "-cpu-used", "8", "-b:v", "1M",
             "-g", "12"])
    ffmpeg_gen(out, _lavfi_src("320x240", rate, seconds), NOISE + ",format=yuv420p", args, fmt)


@generator("ms30.mkv")
def _gen_ms30_mkv(out):
    _gen_ms(out, 30, 3, "h264", "matroska")


@generator("ms30.webm")
def _gen_ms30_webm(out):
    _gen_ms(out, 30, 3, "vp9", "webm")


@generator("ms2997.mkv")
def _gen_ms2997_mkv(out):
    _gen_ms(out, "30000/1001", 3, "h264", "matroska")


@generator("ms60.mkv")
def _gen_ms60_mkv(out):
    _gen_ms(out, 60, 2, "h264", "matroska")


# Long sources for windowed indexes: 12 minutes of small frames with a running clock
# (every frame differs, so a frame from the wrong minute cannot look right), remuxed.
@generator("long12.mp4")
def _gen_long12(out):
    ffmpeg_gen(out, ["-f", "lavfi", "-i", "testsrc=size=160x120:rate=30:duration=720"],
               "format=yuv420p", ["-c:v", "libx264", "-preset", "ultrafast", "-crf", "30",
                                  "-g", "30", "-bf", "2"], "mp4")  # moov at the end


def _remux(out, src, fmt, extra=()):
    run(["ffmpeg", "-nostdin", "-y", "-v", "error", "-i", fixture(src), "-c", "copy"]
        + list(extra) + ["-f", fmt, out])


@generator("long3.mp4")
def _gen_long3(out):
    _remux(out, "long12.mp4", "mp4", ["-t", "180"])


@generator("long12fs.mp4")
def _gen_long12fs(out):
    _remux(out, "long12.mp4", "mp4", ["-movflags", "+faststart"])


@generator("long12.mkv")
def _gen_long12_mkv(out):
    _remux(out, "long12.mp4", "matroska")


@generator("long3.mkv")
def _gen_long3_mkv(out):
    _remux(out, "long12.mp4", "matroska", ["-t", "180"])


@generator("long12.ts")
def _gen_long12_ts(out):
    _remux(out, "long12.mp4", "mpegts", ["-muxdelay", "0", "-muxpreload", "0"])


@generator("long3.webm")
def _gen_long3_webm(out):
    ffmpeg_gen(out, ["-f", "lavfi", "-i", "testsrc=size=160x120:rate=30:duration=180"],
               "format=yuv420p", ["-c:v", "libvpx-vp9", "-deadline", "realtime",
                                  "-cpu-used", "8", "-b:v", "200k", "-g", "30"], "webm")


@generator("hdr4k.mp4")
def _gen_hdr4k(out):
    # 4K 10-bit HEVC, the frame size that made memory grow with the thread count.
    ffmpeg_gen(out, _lavfi_src("3840x2160", 10, 1.2), "noise=alls=8:allf=t+u,format=yuv420p10le",
               ["-c:v", "libx265", "-preset", "ultrafast", "-pix_fmt", "yuv420p10le",
                "-x265-params", "log-level=error:keyint=6", "-tag:v", "hvc1"], "mp4")


@generator("truncated.mp4")
def _gen_truncated(out):
    data = open(fixture("faststart.mp4"), "rb").read()
    with open(out, "wb") as f:
        f.write(data[:len(data) // 2])


@generator("garbage.mp4")
def _gen_garbage(out):
    import random
    rnd = random.Random(20240611)
    with open(out, "wb") as f:
        f.write(bytes(rnd.getrandbits(8) for _ in range(200000)))


_lock_depth = 0


@contextlib.contextmanager
def _fixture_lock():
    """Exclusive flock on $HF_FIXTURES/.lock, re-entrant within this process (a fixture
    made from another fixture asks for it again)."""
    global _lock_depth
    if _lock_depth:
        _lock_depth += 1
        try:
            yield
        finally:
            _lock_depth -= 1
        return
    os.makedirs(HF_FIXTURES, exist_ok=True)
    with open(os.path.join(HF_FIXTURES, ".lock"), "a+") as lk:
        fcntl.flock(lk, fcntl.LOCK_EX)
        _lock_depth = 1
        try:
            yield
        finally:
            _lock_depth = 0
            fcntl.flock(lk, fcntl.LOCK_UN)


def fixture(name):
    """Absolute path of fixture `name` in SRC, generating it first if needed."""
    path = os.path.join(SRC, name)
    if os.path.exists(path):
        return path
    with _fixture_lock():
        if os.path.exists(path):
            return path
        os.makedirs(SRC, exist_ok=True)
        tmp = os.path.join(HF_FIXTURES, ".gen-" + name)
        try:
            _GENERATORS[name](tmp)
            os.rename(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    return path


def all_fixtures():
    """Generates every fixture (so a test file's timings are not skewed by generation)."""
    for name in _GENERATORS:
        fixture(name)


# ---------------------------------------------------------------------------------------
# Exact timestamps and the SPEC 4 slot model


class Frames:
    """A video stream's frames as ffprobe tells them: exact ticks, time base, end.
    Times are measured from `origin`, the container's start time in seconds (what the
    ffmpeg CLI subtracts by default; SPEC 4 slot times are relative to it)."""

    def __init__(self, tb, pts, end, origin=Fraction(0)):
        self.tb = tb          # Fraction, seconds per tick
        self.pts = pts        # sorted list of int ticks (presentation order)
        self.end = end        # int ticks, end of the last frame (its pts + duration)
        self.origin = origin  # Fraction, seconds: the container's start time

    def times(self):
        return [p * self.tb - self.origin for p in self.pts]

    def t_end(self):
        return self.end * self.tb - self.origin


def probe_frames(path):
    j = ffprobe_json(["-select_streams", "v:0", "-show_entries",
                      "stream=time_base,start_pts:format=start_time:packet=pts,duration"],
                     path)
    st = j["streams"][0]
    num, den = st["time_base"].split("/")
    tb = Fraction(int(num), int(den))
    pk = [(int(p["pts"]), int(p.get("duration", 0))) for p in j["packets"]]
    if not pk:
        raise ToolError("no video packets in " + path)
    pk.sort()
    pts = [p for p, _ in pk]
    end = max(p + d for p, d in pk)
    # The container's start time is kept in microseconds and printed with 6 decimals:
    # exact. Fixtures are made so that it is also a whole number of video ticks.
    origin = Fraction(j["format"]["start_time"])
    if (origin / tb).denominator != 1:
        # Printed in whole microseconds: 6000/90000 s shows as 0.066667. libavformat keeps
        # it in microseconds and rounds it to the nearest tick, as hfmount does.
        ticks = round(origin / tb)
        if abs(ticks * tb - origin) > Fraction(1, 10**6):
            raise ToolError("%s: container start %s is not a whole number of ticks of %s"
                            % (path, origin, tb))
        origin = ticks * tb
    return Frames(tb, pts, end, origin)


def q(s):
    """Exact rational from a segment-name number: '1.5', '30', '30000:1001'."""
    s = str(s)
    if ":" in s:
        a, b = s.split(":")
        return Fraction(int(a), int(b))
    return Fraction(s)


def model_slots(frames, start, dur, fps, half_tick=True, hold=False):
    """SPEC 4: list of source frame indices, one per slot k = 0..N-1 (exact arithmetic,
    with the half tick of the stream's time base unless half_tick is False). With hold,
    N counts every k with k/F < D and slots at or past the end show the last frame."""
    S, D, F = q(start), q(dur), q(fps)
    times = frames.times()
    t_end = frames.t_end()
    out = []
    k = 0
    half_tick = frames.tb / 2 if half_tick else 0  # coarse time bases round by up to it
    while Fraction(k) / F < D and (hold or S + Fraction(k) / F < t_end):
        # the last frame at or before T_k + tick/2; a tie belongs to the new frame
        i = bisect_right(times, S + Fraction(k) / F + half_tick) - 1
        out.append(max(i, 0))
        k += 1
    return out


def display_rotation(path):
    j = ffprobe_json(["-select_streams", "v:0", "-show_streams"], path)
    for sd in j["streams"][0].get("side_data_list", []):
        if sd.get("side_data_type") == "Display Matrix":
            return sd.get("rotation")
    return None


# ---------------------------------------------------------------------------------------
# Raw frames: everything is decoded by the ffmpeg CLI into PAM (a raw format with a small
# header that carries the dimensions), then compared as raw samples.


class Image:
    def __init__(self, w, h, depth, maxval, data):
        self.w, self.h, self.depth, self.maxval, self.data = w, h, depth, maxval, data

    @property
    def bps(self):  # bytes per sample
        return 2 if self.maxval > 255 else 1

    def samples(self):
        if self.bps == 1:
            return self.data
        import array
        a = array.array("H")
        a.frombytes(self.data)
        if sys.byteorder == "little":
            a.byteswap()  # PAM samples are big-endian
        return a

    def __repr__(self):
        return "Image(%dx%d, depth %d, maxval %d)" % (self.w, self.h, self.depth, self.maxval)


def parse_pam(buf):
    frames = []
    pos = 0
    n = len(buf)
    while pos < n:
        end = buf.index(b"ENDHDR\n", pos)
        hdr = {}
        for line in buf[pos:end].split(b"\n")[1:]:
            if line:
                k, v = line.split(b" ", 1)
                hdr[k.decode()] = v.decode()
        pos = end + len(b"ENDHDR\n")
        w, h, d, m = (int(hdr[k]) for k in ("WIDTH", "HEIGHT", "DEPTH", "MAXVAL"))
        size = w * h * d * (2 if m > 255 else 1)
        frames.append(Image(w, h, d, m, buf[pos:pos + size]))
        pos += size
    return frames


def _pam_out(pix_fmt):
    return ["-f", "image2pipe", "-c:v", "pam", "-pix_fmt", pix_fmt, "-"]


def ref_fps(src, start, dur, fps, pix_fmt="rgb24", decoder=None):
    """Reference frames of segment (start, dur, fps) per SPEC 4: the ffmpeg CLI's
    fps=F:round=up:start_time=S,trim=start=S:duration=D chain, taking exactly the frames
    the chain produces (-fps_mode passthrough). Without it the CLI's output-side CFR sync
    pads with copies of the first frame when the video starts after the container does
    (delayed.mp4 @0.25+0.5@60 gives 45 frames instead of 30); with it, the chain agrees
    with the exact slot model on every fixture."""
    F = q(fps)
    vf = "fps=%d/%d:round=up:start_time=%s,trim=start=%s:duration=%s" % (
        F.numerator, F.denominator, start, start, dur)
    cmd = ["ffmpeg", "-nostdin", "-v", "error"]
    if decoder:
        cmd += ["-c:v", decoder]
    cmd += ["-i", src, "-vf", vf, "-fps_mode", "passthrough"] + _pam_out(pix_fmt)
    return parse_pam(run(cmd).stdout)


_ALL_CACHE = {}


def ref_source_frames(src, frames, idx):
    """The CLI's decode of source frames idx (indices into frames), from half a second
    before the first: `ffmpeg -ss T -i SRC` drops the frames before T, so the n-th frame
    out is the n-th at or after T."""
    times = frames.times()
    t0 = max(times[idx[0]] - Fraction(1, 2), Fraction(0))
    first = bisect_left(times, t0)
    span = times[idx[-1]] - t0 + 1
    seek = ["-ss", "%.6f" % t0, "-i", src]
    if src.endswith(".ts"):  # the CLI's input seek in MPEG-TS can land a keyframe late
        seek = ["-i", src, "-ss", "%.6f" % t0]
    out = parse_pam(run(["ffmpeg", "-nostdin", "-v", "error"] + seek +
                            ["-t", "%.6f" % span, "-fps_mode", "passthrough",
                             "-f", "image2pipe", "-c:v", "pam", "-pix_fmt", "rgb24", "-"]).stdout)
    return [out[i - first] for i in idx]


def ref_all(src, pix_fmt="rgb24", decoder=None):
    """Every decoded frame of src in presentation order (no frame rate conversion)."""
    key = (src, pix_fmt, decoder, os.stat(src).st_mtime_ns)
    if key not in _ALL_CACHE:
        cmd = ["ffmpeg", "-nostdin", "-v", "error"]
        if decoder:
            cmd += ["-c:v", decoder]
        cmd += ["-i", src, "-fps_mode", "passthrough"] + _pam_out(pix_fmt)
        _ALL_CACHE[key] = parse_pam(run(cmd).stdout)
    return _ALL_CACHE[key]


def ref_model(src, start, dur, fps, pix_fmt="rgb24", decoder=None):
    """Reference frames chosen by the exact SPEC 4 model over ffprobe's timestamps:
    (list of source frame indices, list of Images)."""
    fr = probe_frames(src)
    idx = model_slots(fr, start, dur, fps)
    allf = ref_all(src, pix_fmt, decoder)
    if len(allf) != len(fr.pts):
        raise ToolError("%s: ffmpeg decoded %d frames but ffprobe lists %d packets"
                        % (src, len(allf), len(fr.pts)))
    return idx, [allf[i] for i in idx]


def check_segment(m, name, start, dur, fps, opts=None, pix_fmt="rgb24", decoder=None,
                  tolerance=0):
    """Reads segment name@start+dur@fps[@opts] through mount m and proves it against the
    ffmpeg CLI: the fps/trim reference when S*F is whole (SPEC 4), and always the exact
    slot model over ffprobe timestamps with each slot compared to the CLI's decode of its
    source frame. Also checks .hfinfo's count. Returns (seg, blobs, images)."""
    src = fixture(name)
    seg = seg_name(name, start, dur, fps, opts)
    ext = "jpg" if opts and "jpg" in opts.split(",") else "png"
    blobs = m.read_segment(seg, ext)
    ours = decode_images(blobs, ext, pix_fmt)
    idx, refm = ref_model(src, start, dur, fps, pix_fmt, decoder)
    info = m.info(seg)
    check(info.get("count") == len(idx), "%s: .hfinfo count %r, expected %d"
          % (seg, info.get("count"), len(idx)))
    allf = ref_all(src, pix_fmt, decoder)
    # The fps/trim chain is the reference on fine time bases (SPEC 4): where the half tick
    # changes no slot. On millisecond ones (WebM, Matroska) it drops frames the model keeps.
    fine = idx == model_slots(probe_frames(src), start, dur, fps, half_tick=False)
    if (q(start) * q(fps)).denominator == 1 and fine:
        ref = ref_fps(src, start, dur, fps, pix_fmt, decoder)
        assert_frames_equal(ours, ref, seg + " vs ffmpeg fps/trim", tolerance, idx, allf)
    assert_frames_equal(ours, refm, seg + " vs exact slot model", tolerance, idx, allf)
    return seg, blobs, ours


def ref_cli(src, start, dur, fps, pix_fmt="rgb24"):
    """What renderers run today: `ffmpeg -ss S -i SRC -t D -vf fps=F`, decoded."""
    F = q(fps)
    return parse_pam(run(["ffmpeg", "-nostdin", "-v", "error", "-ss", str(start), "-i", src,
                          "-t", str(dur), "-vf", "fps=%d/%d" % (F.numerator, F.denominator)]
                         + _pam_out(pix_fmt)).stdout)

# ---------------------------------------------------------------------------------------
# SPEC 4a transforms and the jpg option: references made by the CLI through the spec's own
# filter chains, written as image files exactly as a user would ask for them.

TONEMAP_CHAIN = ("zscale=t=linear:npl=100,format=gbrpf32le,zscale=p=bt709,"
                 "tonemap=tonemap=%s:desat=0,zscale=t=bt709:m=bt709:r=tv,format=yuv420p")
BT2020_CHAIN = "colorspace=all=bt2020:iall=bt709:range=tv"


def transform_chain(w=None, h=None, fit=None, bt2020=False, tonemap=None):
    """The CLI filter chain SPEC 4a defines for these options ("" for none): bt2020 or
    tonemap first, then the size. fit: None (fill when both sides are given), "fill",
    "contain" or "cover". tonemap: an operator name, or True for the default (hable)."""
    parts = []
    if bt2020:
        parts.append(BT2020_CHAIN)
    if tonemap:
        parts.append(TONEMAP_CHAIN % ("hable" if tonemap is True else tonemap))
    if w and h:
        fit = fit or "fill"
        if fit == "fill":
            parts.append("scale=%d:%d" % (w, h))
        elif fit == "contain":
            parts.append("scale=%d:%d:force_original_aspect_ratio=decrease" % (w, h))
        elif fit == "cover":
            parts.append("scale=%d:%d:force_original_aspect_ratio=increase,crop=%d:%d"
                         % (w, h, w, h))
        else:
            raise ValueError("fit=%r" % fit)
    elif w:
        parts.append("scale=%d:-1" % w)
    elif h:
        parts.append("scale=-1:%d" % h)
    elif fit:
        raise ValueError("fit without both w and h")
    return ",".join(parts)


_FILES_CACHE = {}


def ref_files(src, vf="", ext="png", qv=None, frames=None, decoder=None):
    """The bytes of the image files the CLI writes for the source's frames through chain vf:
    `ffmpeg -i SRC [-vf VF] -fps_mode passthrough [-q:v Q] f%05d.EXT`, one file per decoded
    source frame in presentation order (autorotation included, as the CLI does by default);
    only the first `frames` when given. Cached per process."""
    key = (src, vf, ext, qv, frames, decoder, os.stat(src).st_mtime_ns)
    if key in _FILES_CACHE:
        return _FILES_CACHE[key]
    with tempdir("hfref-") as d:
        cmd = ["ffmpeg", "-nostdin", "-v", "error"]
        if decoder:
            cmd += ["-c:v", decoder]
        cmd += ["-i", src]
        if vf:
            cmd += ["-vf", vf]
        cmd += ["-fps_mode", "passthrough"]
        if frames is not None:
            cmd += ["-frames:v", str(frames)]
        if qv is not None:
            cmd += ["-q:v", str(qv)]
        run(cmd + [os.path.join(d, "f%05d." + ext)])
        names = sorted(os.listdir(d))
        blobs = []
        for n in names:
            with open(os.path.join(d, n), "rb") as f:
                blobs.append(f.read())
    _FILES_CACHE[key] = blobs
    return blobs


def ref_all_chain(src, vf="", ext="png", qv=None, pix_fmt="rgb24", frames=None, decoder=None):
    """ref_files decoded to raw pixels: (list of file bytes, list of Image)."""
    blobs = ref_files(src, vf, ext, qv, frames, decoder)
    return blobs, decode_images(blobs, ext, pix_fmt)


def ref_model_chain(src, start, dur, fps, vf="", ext="png", qv=None, pix_fmt="rgb24",
                    hold=False, decoder=None):
    """Per slot of segment (start, dur, fps), the CLI's image of the source frame the exact
    SPEC 4 model picks (with hold: past the end, the last frame), made through chain vf and
    written as EXT at -q:v qv: (slot -> source frame indices, Images, file bytes)."""
    fr = probe_frames(src)
    idx = model_slots(fr, start, dur, fps, hold=hold)
    if not idx:
        return idx, [], []
    blobs, imgs = ref_all_chain(src, vf, ext, qv, pix_fmt, max(idx) + 1, decoder)
    if len(imgs) != max(idx) + 1:
        raise ToolError("%s through %r: the CLI wrote %d images, the model needs %d (ffprobe "
                        "lists %d packets)" % (src, vf, len(imgs), max(idx) + 1, len(fr.pts)))
    return idx, [imgs[i] for i in idx], [blobs[i] for i in idx]


def png_chunks(blob):
    """[(chunk type as str, chunk data bytes)] of a PNG file, in file order."""
    if blob[:8] != PNG_SIG:
        raise AssertionError("not a PNG file (starts %r)" % blob[:8])
    out = []
    pos = 8
    while pos + 8 <= len(blob):
        n = int.from_bytes(blob[pos:pos + 4], "big")
        typ = blob[pos + 4:pos + 8].decode("latin-1")
        out.append((typ, blob[pos + 8:pos + 8 + n]))
        pos += 12 + n
        if typ == "IEND":
            break
    return out


def png_header(blob):
    """(width, height, bit depth, colour type) from a PNG's IHDR."""
    typ, data = png_chunks(blob)[0]
    if typ != "IHDR":
        raise AssertionError("PNG's first chunk is %s, not IHDR" % typ)
    return (int.from_bytes(data[0:4], "big"), int.from_bytes(data[4:8], "big"), data[8],
            data[9])


def channel_errors(a, b):
    """Per channel of two same-sized images: (mean of a - b, mean of |a - b|), in levels."""
    if (a.w, a.h, a.depth, a.maxval) != (b.w, b.h, b.depth, b.maxval):
        raise AssertionError("cannot compare %r with %r" % (a, b))
    sa, sb = a.samples(), b.samples()
    out = []
    for c in range(a.depth):
        x, y = sa[c::a.depth], sb[c::b.depth]
        n = len(x)
        out.append((sum(x) / n - sum(y) / n, sum(map(abs, map(int.__sub__, x, y))) / n))
    return out


def decode_images(blobs, fmt="png", pix_fmt="rgb24"):
    """Decodes image files' bytes (as read from the mount) with the ffmpeg CLI."""
    if not blobs:
        return []
    demux = {"png": "png_pipe", "jpg": "jpeg_pipe"}[fmt]
    p = run(["ffmpeg", "-nostdin", "-v", "error", "-f", demux, "-i", "-"] + _pam_out(pix_fmt),
            input=b"".join(blobs))
    imgs = parse_pam(p.stdout)
    if len(imgs) != len(blobs):
        raise AssertionError("ffmpeg decoded %d images from %d files" % (len(imgs), len(blobs)))
    return imgs


def probe_image(blob, fmt="png"):
    """(codec_name, pix_fmt, width, height) of one image file's bytes, per ffprobe."""
    with tempfile.NamedTemporaryFile(suffix="." + fmt) as f:
        f.write(blob)
        f.flush()
        j = ffprobe_json(["-show_streams"], f.name)
    s = j["streams"][0]
    return s["codec_name"], s["pix_fmt"], s["width"], s["height"]


def diff_stats(a, b):
    """(max abs diff, number of differing samples, index of first difference)."""
    sa, sb = a.samples(), b.samples()
    mx, nd, first = 0, 0, None
    for i, (x, y) in enumerate(zip(sa, sb)):
        if x != y:
            d = abs(x - y)
            nd += 1
            if d > mx:
                mx = d
            if first is None:
                first = i
    return mx, nd, first


def assert_frames_equal(ours, ref, label, tolerance=0, slot_to_frame=None, allframes=None):
    """Raw pixel comparison. ours/ref are lists of Image. tolerance is the largest
    allowed absolute sample difference (0 = exact). slot_to_frame (expected source frame
    index per slot) and allframes (every decoded source frame) make the message say
    which source frame a wrong slot actually shows."""
    if len(ours) != len(ref):
        raise AssertionError("%s: %d frames through the mount, reference has %d"
                             % (label, len(ours), len(ref)))
    bad = []
    worst = 0
    for k, (a, b) in enumerate(zip(ours, ref)):
        if (a.w, a.h, a.depth, a.maxval) != (b.w, b.h, b.depth, b.maxval):
            raise AssertionError("%s: frame_%05d is %r, reference is %r" % (label, k + 1, a, b))
        if a.data == b.data:
            continue
        mx, nd, first = diff_stats(a, b)
        worst = max(worst, mx)
        if mx > tolerance:
            bad.append((k, mx, nd, first))
    if bad:
        k, mx, nd, first = bad[0]
        a = ours[k]
        px = first // a.depth
        where = "x=%d y=%d channel %d" % (px % a.w, px // a.w, first % a.depth)
        extra = ""
        if slot_to_frame is not None:
            extra = " (expected source frame #%d)" % slot_to_frame[k]
        if allframes is not None:
            seen = which_frames([ours[j] for j, _, _, _ in bad], allframes)
            extra += "; wrong slots show source frames %s" % ", ".join(
                "slot %d=#%s" % (j, "?" if s is None else s)
                for (j, _, _, _), s in list(zip(bad, seen))[:8])
        raise AssertionError(
            "%s: %d of %d frames differ beyond tolerance %d; first is frame_%05d%s: max abs "
            "diff %d, %d samples differ, first at %s; worst max abs diff over all frames %d"
            % (label, len(bad), len(ours), tolerance, k + 1, extra, mx, nd, where, worst))
    return worst


def which_frames(ours, allframes):
    """For diagnostics: index of the source frame each image equals exactly (or None)."""
    lookup = {}
    for i, f in enumerate(allframes):
        lookup.setdefault(f.data, i)
    return [lookup.get(o.data) for o in ours]


def psnr(a, b):
    sa, sb = a.samples(), b.samples()
    se = sum((x - y) * (x - y) for x, y in zip(sa, sb))
    if se == 0:
        return float("inf")
    peak = a.maxval
    return 10 * math.log10(peak * peak * len(sa) / se)


# ---------------------------------------------------------------------------------------
# The mount


class MountError(AssertionError):
    pass


SANITIZER_WORDS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:",
                   "WARNING: ThreadSanitizer")


def seg_name(name, start, dur, fps, opts=None):
    s = "%s@%s+%s@%s" % (name, start, dur, fps)
    return s + ("@" + opts if opts else "")


class Mount:
    """hfmount -f in the background on a temp mountpoint.

    store: a store directory to use (kept); default a fresh temp store (removed).
    source_root: default SRC (the fixtures). opts: extra -o key=value strings.
    mountpoint: an existing directory to mount on (kept); default a fresh temp one."""

    def __init__(self, store=None, source_root=None, opts=(), timeout=20, mountpoint=None):
        self.given_store = store
        self.given_mnt = mountpoint
        self.source_root = source_root or SRC
        self.opts = list(opts)
        self.timeout = timeout
        self.proc = None

    def __enter__(self):
        if not HFMOUNT_BIN or not os.access(HFMOUNT_BIN, os.X_OK):
            raise MountError("HFMOUNT_BIN=%r is not an executable" % HFMOUNT_BIN)
        os.makedirs(self.source_root, exist_ok=True)
        self.tmp = tempfile.mkdtemp(prefix="hfit-")
        self.store = self.given_store or os.path.join(self.tmp, "store")
        self.mnt = self.given_mnt or os.path.join(self.tmp, "mnt")
        os.makedirs(self.mnt, exist_ok=True)
        self.logpath = os.path.join(self.tmp, "hfmount.log")
        self.log = open(self.logpath, "wb")
        opts = ",".join(["source_root=" + self.source_root] + self.opts)
        self.cmd = [HFMOUNT_BIN, "-f", "-o", opts, self.store, self.mnt]
        # Hermetic: no HFMOUNT_* configuration from the caller's environment (HFMOUNT_BIN
        # included) and no user config file.
        env = {k: v for k, v in os.environ.items() if not k.startswith("HFMOUNT_")}
        env["XDG_CONFIG_HOME"] = os.path.join(self.tmp, "config")
        self.proc = subprocess.Popen(self.cmd, stdin=subprocess.DEVNULL, stdout=self.log,
                                     stderr=subprocess.STDOUT, env=env)
        deadline = time.monotonic() + self.timeout
        try:
            while not os.path.ismount(self.mnt):
                rc = self.proc.poll()
                if rc is not None:
                    raise MountError("hfmount exited with status %d before mounting: %s\n%s"
                                     % (rc, " ".join(self.cmd), self.log_text()))
                if time.monotonic() > deadline:
                    raise MountError("hfmount did not mount within %ds: %s\n%s"
                                     % (self.timeout, " ".join(self.cmd), self.log_text()))
                time.sleep(0.02)
        except BaseException:
            self._cleanup()
            raise
        return self

    def __exit__(self, exc_type, exc, tb):
        rc = self.unmount() if self.proc is not None else 0
        log = self.log_text(full=True) if exc_type is None else ""
        self._cleanup()
        if exc_type is None:
            # A daemon that exits badly or that a sanitizer caught fails the test.
            bad = [w for w in SANITIZER_WORDS if w in log]
            if rc != 0 or bad:
                raise MountError("hfmount exited with status %s%s; its log:\n%s"
                                 % (rc, " and a sanitizer report" if bad else "", log))
        return False

    def log_text(self, full=False):
        try:
            with open(self.logpath, "rb") as f:
                text = f.read().decode(errors="replace")
                return text if full else text[-4000:]
        except OSError:
            return ""

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def peak_rss(self):
        """The daemon's peak resident memory so far (VmHWM), in bytes."""
        with open("/proc/%d/status" % self.proc.pid) as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
        return 0

    def sanitized(self):
        """The daemon runs under ASan or TSan (slower; RSS says nothing about ours)."""
        with open("/proc/%d/maps" % self.proc.pid) as f:
            maps = f.read()
        return "libasan" in maps or "libtsan" in maps

    def unmount(self, timeout=15):
        """fusermount3 -u, then wait for the process. Returns its exit status."""
        if self.proc is None:
            return None
        for _ in range(50):
            if not os.path.ismount(self.mnt):
                break
            p = subprocess.run(["fusermount3", "-u", self.mnt], stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE)
            if p.returncode == 0:
                break
            time.sleep(0.1)  # EBUSY: a client still has a file open
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rc = self.proc.wait()
            sys.stderr.write("hfmount did not exit within %ds of unmount; killed\n" % timeout)
        subprocess.run(["fusermount3", "-uz", self.mnt], stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
        self.proc = None
        self.log.close()
        if rc != 0:
            # A daemon that crashed or failed: its log is the first thing to read.
            sys.stderr.write("hfmount exited with status %s; its log:\n%s\n" % (rc, self.log_text()))
        return rc

    def kill9(self):
        """kill -9 the daemon (crash), then lazily detach the dead mount."""
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()
        subprocess.run(["fusermount3", "-uz", self.mnt], stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
        self.proc = None
        self.log.close()

    def _cleanup(self):
        if self.proc is not None:
            self.unmount()
        subprocess.run(["fusermount3", "-uz", self.mnt], stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
        if os.path.ismount(self.mnt):
            sys.stderr.write("warning: %s still mounted; leaving %s\n" % (self.mnt, self.tmp))
            return
        if self.given_store is None:
            shutil.rmtree(self.store, ignore_errors=True)
        if self.given_mnt is None:
            os.rmdir(self.mnt)
        if os.path.exists(self.logpath):
            os.unlink(self.logpath)
        shutil.rmtree(self.tmp, ignore_errors=True)

    # -- paths and JSON
    def path(self, *parts):
        return os.path.join(self.mnt, *parts)

    def stats(self):
        with open(self.path(".hfstats"), "rb") as f:
            return json.loads(f.read())

    def info(self, seg):
        with open(self.path(seg, ".hfinfo"), "rb") as f:
            return json.loads(f.read())

    def wait_info(self, seg, pred, timeout=30):
        """Polls .hfinfo until pred(info) holds; returns the last info."""
        deadline = time.monotonic() + timeout
        while True:
            info = self.info(seg)
            if pred(info) or time.monotonic() > deadline:
                return info
            time.sleep(0.05)

    def read_segment(self, seg, ext="png"):
        """Reads every frame of segment dir seg through the mount like a client would.
        Checks the listing is exactly frame_00001.EXT..frame_NNNNN.EXT plus .hfinfo, and
        that each frame's stat size equals the bytes a read returns. Returns the list of
        file contents."""
        d = self.path(seg)
        names = os.listdir(d)
        frames = sorted(n for n in names if n != ".hfinfo")
        expect = ["frame_%05d.%s" % (i + 1, ext) for i in range(len(frames))]
        if frames != expect or ".hfinfo" not in names:
            raise AssertionError("%s: listing is not frame_00001.%s.. + .hfinfo: %s"
                                 % (seg, ext, sorted(names)[:8]))
        blobs = []
        for n in frames:
            p = os.path.join(d, n)
            with open(p, "rb") as f:
                data = f.read()
            st = os.stat(p)
            if not data:
                raise AssertionError("%s/%s: read returned 0 bytes (stat size %d): an empty "
                                     "file is never a frame" % (seg, n, st.st_size))
            if st.st_size != len(data):
                raise AssertionError("%s/%s: stat size %d but read returned %d bytes"
                                     % (seg, n, st.st_size, len(data)))
            blobs.append(data)
        return blobs


# -- other users (the allow_other tests)

SECOND_UID = 47291  # a uid/gid with no passwd entry and no groups: nothing is changed


def setpriv(uid, gid=None):
    """The command prefix that runs a program as uid (and gid, default the same number)."""
    return ["setpriv", "--reuid=%d" % uid, "--regid=%d" % (uid if gid is None else gid),
            "--clear-groups"]


USER_PROBE = r"""
import errno, json, os, sys, time
out = []
for op, path in json.loads(sys.argv[1]):
    t = time.monotonic()
    try:
        if op == "stat":
            os.stat(path); r = "ok"
        elif op == "list":
            r = sorted(os.listdir(path))
        elif op == "read":
            fd = os.open(path, os.O_RDONLY)
            try:
                r = len(os.read(fd, 1 << 22))
            finally:
                os.close(fd)
        elif op == "info":
            with open(os.path.join(path, ".hfinfo"), "rb") as f:
                r = json.loads(f.read())
        elif op == "lstat":
            os.lstat(path); r = "ok"
        elif op == "readlink":
            r = "->" + os.readlink(path)
        else:
            raise SystemExit("unknown probe op " + op)
    except OSError as e:
        r = "E" + errno.errorcode[e.errno]
    out.append([r, time.monotonic() - t])
print(json.dumps(out))
"""


def probe_as(uid, ops, timeout=60):
    """Runs [(op, path)...] as uid; [(result, seconds)...]. op is stat, lstat, list, read,
    info or readlink; a result is 'ok', a list, a byte count, a dict (.hfinfo), '->TARGET'
    (readlink) or 'E<ERRNO>'."""
    p = subprocess.run(setpriv(uid) + [sys.executable, "-c", USER_PROBE, json.dumps(ops)],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout)
    check(p.returncode == 0, "probe as uid %d failed: %s" % (uid, p.stderr.decode()))
    return json.loads(p.stdout)


class SharedMount(Mount):
    """A mount made by root with allow_other, on a mountpoint other users can reach."""

    def __init__(self, source_root, opts=(), **kw):
        super().__init__(source_root=source_root, opts=["allow_other"] + list(opts), **kw)

    def __enter__(self):
        super().__enter__()
        os.chmod(self.tmp, 0o755)
        return self


def tree_state(d):
    """Every entry below d with its mode, size and mtime (lstat): what "untouched" means."""
    out = {}
    for base, dirs, files in os.walk(d):
        for n in dirs + files:
            p = os.path.join(base, n)
            st = os.lstat(p)
            out[os.path.relpath(p, d)] = (st.st_mode, st.st_size, st.st_mtime_ns)
    return out


def tempdir(prefix="hfit-"):
    """A temp directory removed afterwards (context manager)."""
    @contextlib.contextmanager
    def cm():
        d = tempfile.mkdtemp(prefix=prefix)
        try:
            yield d
        finally:
            shutil.rmtree(d, ignore_errors=True)
    return cm()


def expect_errno(fn, errnos, what):
    """Calls fn(); asserts it raises OSError with one of errnos."""
    try:
        fn()
    except OSError as e:
        if e.errno not in errnos:
            raise AssertionError("%s: expected %s, got %s" % (
                what, "/".join(errno.errorcode[x] for x in errnos), e))
        return e
    raise AssertionError("%s: succeeded, expected %s" % (
        what, "/".join(errno.errorcode[x] for x in errnos)))


# ---------------------------------------------------------------------------------------
# Test runner

_TESTS = []


def test(fn):
    _TESTS.append(fn)
    return fn


def check(cond, msg):
    if not cond:
        raise AssertionError(msg)


def fuse_available():
    return os.path.exists("/dev/fuse") and os.geteuid() == 0


def main(needs_fuse=True):
    if needs_fuse and not fuse_available():
        print("SKIP: /dev/fuse absent or not root")
        sys.exit(77)
    only = set(sys.argv[1:])
    passed = failed = 0
    t0 = time.monotonic()
    all_fixtures()  # before any mount, so no mount ever sees a fixture appear
    for fn in _TESTS:
        if only and fn.__name__ not in only:
            continue
        t = time.monotonic()
        try:
            fn()
        except Exception:
            failed += 1
            print("FAIL %s (%.1fs)" % (fn.__name__, time.monotonic() - t))
            traceback.print_exc(file=sys.stdout)
        else:
            passed += 1
            print("ok   %s (%.1fs)" % (fn.__name__, time.monotonic() - t))
        sys.stdout.flush()
    print("time %.1fs" % (time.monotonic() - t0))
    print("%d passed, %d failed" % (passed, failed))
    sys.exit(0 if failed == 0 and passed > 0 else 1)
