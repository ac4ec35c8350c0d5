#!/usr/bin/env python3
"""
hfctl path (issue 12): the canonical segment path for a video and values, so scripts
never build names by hand. Spellings of the same values print the same path; that path,
listed and read through a real mount, holds the same frames as the spelling it came
from; every invalid value of the grammar (the cases of tests/unit/test_segname.c, as
arguments) is exit 2 with one line naming the bad part; --mount, and without it the
hfmount mount from /proc/self/mountinfo whose source_root holds the video (the most
specific one), or exit 1 with a sentence when none does.

Runs that must not see the hfmount mounts of other tests running at the same time go
through `unshare -m` with those mounts detached in the private namespace.
"""

import os
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import hftest as h  # noqa: E402
from hftest import check, test  # noqa: E402


def hfctl(*args, cwd=None, only_mounts=None):
    """hfctl ARGS: (exit status, stdout, stderr). only_mounts: run in a private mount
    namespace where the hfmount mounts other than these are detached."""
    cmd = [h.HFCTL_BIN] + list(args)
    env = dict(os.environ)
    if only_mounts is not None:
        env["HF_KEEP"] = " ".join(only_mounts)
        script = ('for m in $(awk \'{for (i = 7; i < NF; i++) if ($i == "-") {'
                  'if ($(i + 1) == "fuse.hfmount") print $5; break}}\' /proc/self/mountinfo); '
                  'do keep=0; for k in $HF_KEEP; do [ "$m" = "$k" ] && keep=1; done; '
                  '[ $keep = 1 ] || umount -l "$m"; done; exec "$@"')
        cmd = ["unshare", "-m", "--propagation", "private", "sh", "-c", script, "sh"] + cmd
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60, cwd=cwd,
                       env=env)
    return p.returncode, p.stdout.decode(errors="replace"), p.stderr.decode(errors="replace")


def path_of(*args, **kw):
    rc, out, err = hfctl("path", *args, **kw)
    check(rc == 0 and err == "" and out.count("\n") == 1,
          "hfctl path %s: exit %d, stdout %r, stderr %r" % (" ".join(args), rc, out, err))
    return out.rstrip("\n")


def one_line(result, what, code, mention):
    rc, out, err = result
    lines = [x for x in err.splitlines() if x.strip()]
    check(rc == code and out == "", "%s: exit %d (expected %d), stdout %r, stderr %r"
          % (what, rc, code, out, err))
    check(len(lines) == 1 and lines[0].startswith("hfctl path: "),
          "%s: expected one line 'hfctl path: ...', got %r" % (what, err))
    for word in mention if isinstance(mention, tuple) else (mention,):
        check(word in lines[0], "%s: %r does not say %r" % (what, lines[0], word))
    return lines[0]


def source_tree(root):
    """root/media/clip.mp4 (cfr30) and root/media/we@ird+name.mp4."""
    media = os.path.join(root, "media")
    os.makedirs(media)
    shutil.copy(h.fixture("cfr30.mp4"), os.path.join(media, "clip.mp4"))
    shutil.copy(h.fixture("we@ird+name.mp4"), os.path.join(media, "we@ird+name.mp4"))
    return media


# Spellings of one set of values, and the canonical name they all give.
SPELLINGS = [
    ("clip.mp4@1.5+2@30", [("1.5", "2", "30"), ("1.50", "2.0", "30"), ("01.5", "002", "30.000"),
                           ("1.5", "2", "30:1"), ("1.5", "2", "60:2"), ("1.5", "2", "30", "png"),
                           ("1.5", "2", "30", "")]),
    ("clip.mp4@0+1@30000:1001", [("0", "1", "30000:1001"), ("0.0", "1.000", "60000:2002")]),
    ("clip.mp4@0.25+0.5@29.97", [("0.250", "0.50", "29.97"), ("0.25", "0.5", "2997:100")]),
    ("clip.mp4@0+1@30@jpg,q=5", [("0", "1", "30", "jpg,q=5"), ("0", "1", "30", "q=5,jpg"),
                                 ("0", "1", "30", "q=5", "jpg"), ("0", "1", "30", "jpg,q=005")]),
    ("clip.mp4@0+1@30@jpg", [("0", "1", "30", "jpg"), ("0", "1", "30", "jpg,q=2")]),
    ("clip.mp4@0+1@30@w=160,h=120", [("0", "1", "30", "w=160,h=120"),
                                     ("0", "1", "30", "h=120,w=160,fit=fill"),
                                     ("0", "1", "30", "fit=fill", "h=0120", "w=160")]),
    ("clip.mp4@0+1@30@jpg,q=31,w=320,h=180,fit=cover,hold",
     [("0", "1", "30", "hold,fit=cover,h=180,w=320,q=31,jpg")]),
    ("clip.mp4@0+1@30@tonemap", [("0", "1", "30", "tonemap=hable"), ("0", "1", "30", "tonemap")]),
    ("clip.mp4@0+1@30@tonemap=clip", [("0", "1", "30", "tonemap=clip")]),
    ("clip.mp4@0+1@30@bt2020,hold", [("0", "1", "30", "hold,bt2020")]),
]


@test
def spellings_give_one_path():
    with h.tempdir() as root:
        media = source_tree(root)
        os.symlink(media, os.path.join(root, "link"))
        with h.Mount(source_root=root) as m:
            for canon, spellings in SPELLINGS:
                want = m.path("media", canon)
                for sp in spellings:
                    got = path_of(os.path.join(media, "clip.mp4"), *sp)
                    check(got == want, "%s: %r, expected %r" % (sp, got, want))
                # the same from a relative path, a symlinked directory, the path inside
                # the mount, and with --mount
                first = spellings[0]
                for video, cwd in (("clip.mp4", media), ("media/clip.mp4", root),
                                   (os.path.join(root, "link", "clip.mp4"), None),
                                   (m.path("media", "clip.mp4"), None)):
                    got = path_of(video, *first, cwd=cwd)
                    check(got == want, "%s from %s: %r, expected %r" % (first, video, got, want))
                got = path_of(os.path.join(media, "clip.mp4"), *first, "--mount", m.mnt)
                check(got == want, "--mount: %r, expected %r" % (got, want))
            # NAME with '@' and '+' is kept as it is
            got = path_of(os.path.join(media, "we@ird+name.mp4"), "1.50", "1", "30")
            check(got == m.path("media", "we@ird+name.mp4@1.5+1@30"), "weird name: %r" % got)
            print("  %d spellings, 5 ways to name the video each" %
                  sum(len(s) for _, s in SPELLINGS))


@test
def printed_path_lists_the_same_frames():
    with h.tempdir() as root:
        media = source_tree(root)
        video = os.path.join(media, "clip.mp4")
        with h.Mount(source_root=root) as m:
            for given, args, ext in (
                    ("clip.mp4@1.50+2.0@30", ("1.50", "2.0", "30"), "png"),
                    ("clip.mp4@0.5+1@60:4@q=5,jpg", ("0.5", "1", "60:4", "q=5,jpg"), "jpg"),
                    ("clip.mp4@0+1.0@10@fit=fill,h=60,w=80", ("0", "1.0", "10", "fit=fill,h=60,w=80"),
                     "png"),
                    ("clip.mp4@3.50+2@8@hold", ("3.50", "2", "8", "hold"), "png")):
                printed = path_of(video, *args)
                check(os.path.basename(printed) != given,
                      "%s is canonical already; the case proves nothing" % given)
                ours = m.read_segment(os.path.relpath(printed, m.mnt), ext)
                theirs = m.read_segment(os.path.join("media", given), ext)
                check(sorted(os.listdir(printed)) == sorted(os.listdir(m.path("media", given))),
                      "%s and %s list different names" % (printed, given))
                check(len(ours) == len(theirs) and ours == theirs,
                      "%s and %s hold different frames" % (printed, given))
                check(m.info(os.path.relpath(printed, m.mnt))["segment"] ==
                      os.path.basename(printed), "%s: .hfinfo names another segment" % printed)
                print("  %s -> %s: %d frames" % (given, os.path.basename(printed), len(ours)))


# Every invalid value, as hfctl path's arguments (test_segname.c's cases), and the word
# the one-line error must contain.
BAD_STARTS = ["", "-1", "+1", "1e3", " 1", "1 ", "1,5", ".5", "1.", "1..5", "1.5.0", ".",
              "1234567890123456789", "0000000000000000001", "0.000000000000000001", "inf",
              "nan", "0x1", "1@2", "1+2", "1/2", "1:2"]
BAD_DURS = ["", "0", "0.000", "-2", "+2", "2E1", ".5", "2.", "1..5", "1+2", "1@2", "x"]
BAD_FPS = ["", "0", "0.0", "0:1", "1:0", "0:0", ":1", "1:", ":", "1:2:3", "-30", "+30", "3e1",
           "0x1e", "inf", "nan", "30.", ".5", ".", "1.5:2", "3:1.0", "-30000:1001",
           "30000:-1001", "1000000000000000000:1", "1:1000000000000000000",
           "0000000000000000001:1", "99999999999999999999", "30 ", "30@1"]
TOO_MANY = [("10000000.00000001", "1"), ("1000000", "10.00000000000001"), ("1", "10000001"),
            ("1", "10000000.0000000001"), ("0.1", "100000001")]
BAD_OPTS = [",jpg", "jpg,", "jpg,,q=5", "jpg,jpg", "png,png", "png,jpg", "jpg,png",
            "jpg,q=5,q=5", "jpg,q=5,q=6", "q=5", "png,q=5", "q=5,png", "jpg,q=0", "jpg,q=32",
            "jpg,q=000", "jpg,q=1234", "jpg,q=", "jpg,q=-1", "jpg,q=+1", "jpg,q=1.5", "jpg,q",
            "jpg,Q=5", "JPG", "jpeg", "webp", "jpg q=5", "jpg;q=5", " jpg",
            "w=5,w=5", "w=5,w=6", "h=5,h=5", "hold,hold", "bt2020,bt2020", "tonemap,tonemap",
            "tonemap,tonemap=hable", "tonemap=clip,tonemap=mobius", "w=5,h=5,fit=fill,fit=fill",
            "w=5,h=5,fit=fill,fit=cover", "jpg,hold,jpg", "png,w=5,png", "png,w=5,jpg",
            "w=5,q=5", "hold,q=2", "png,q=2,hold", "fit=fill", "fit=contain", "fit=cover",
            "w=5,fit=fill", "h=5,fit=cover", "fit=contain,w=5", "fit=cover,hold,h=5",
            "w=0", "h=0", "w=00000", "w=0,h=5", "w=5,h=0", "w=16385", "h=16385", "w=99999",
            "w=000001", "h=016384", "w=123456", "w=", "h=", "w", "h", "w=-5", "w=+5",
            "w=5.0", "w=1e3", "w=0x10", "w= 5", "w=5 ", "W=5", "width=5", "w=5:h=5",
            "w=5,h=5,fit=", "w=5,h=5,fit", "w=5,h=5,fit=none", "w=5,h=5,fit=Cover",
            "w=5,h=5,fit=stretch", "w=5,h=5,fit=cover=1", "bt2020,tonemap", "tonemap,bt2020",
            "tonemap=clip,bt2020", "bt2020,w=5,tonemap=reinhard", "tonemap=", "tonemap=none",
            "tonemap=linear", "tonemap=gamma", "tonemap=HABLE", "tonemap=hable2",
            "tonemap=hable,", "tonemap==hable", "tonemap:hable", "Tonemap", "tonemapx",
            "hold=1", "hold=", "bt2020=1", "BT2020", "bt709", "HOLD", "holds", "fill", "cover",
            "scale=5:5", "crop=5:5", "hold,", ",hold", "w=5,,h=5", "hold,,", " hold",
            "hold,w=5 ", "hold@jpg", "hold/jpg"]


@test
def every_invalid_value_is_exit_2():
    # The values are checked before any mount is looked for: no mount is needed, and the
    # video need not exist.
    video = h.fixture("cfr30.mp4")
    cases = ([(("", "1", "30"), s, "start") for s in BAD_STARTS] +
             [(("0", "", "30"), d, "dur") for d in BAD_DURS] +
             [(("0", "1", ""), f, "fps") for f in BAD_FPS])
    n = 0
    for base, value, word in cases:
        args = list(base)
        args[("start", "dur", "fps").index(word)] = value
        one_line(hfctl("path", video, *args), "%s %r" % (word, value), 2, word)
        n += 1
    for dur, fps in TOO_MANY:
        one_line(hfctl("path", video, "0", dur, fps), "dur %s at fps %s" % (dur, fps), 2,
                 ("dur", "frames"))
        n += 1
    for opts in BAD_OPTS:
        one_line(hfctl("path", video, "0", "1", "30", opts), "options %r" % opts, 2, "option")
        n += 1
    # the specific sentences the issue names, and a few more
    for args, said in ((("0", "0", "30"), "dur 0: must be > 0"),
                       (("0", "1", "30", "w=5,fit=cover"), "fit needs both w= and h="),
                       (("0", "1", "30", "q=5"), "q= needs jpg"),
                       (("0", "1", "0"), "fps 0: must be > 0"),
                       (("-1", "1", "30"), "start -1: must be >= 0"),
                       (("0", "1", "30", "w=99999"), "w= takes a whole number 1..16384"),
                       (("0", "1", "30", "hold,hold"), "hold given twice"),
                       (("0", "1", "30", "png,jpg"), "png and jpg contradict each other"),
                       (("0", "1", "30", "bt2020,tonemap=clip"), "bt2020 and tonemap")):
        one_line(hfctl("path", video, *args), " ".join(args), 2, said)
        n += 1
    # a video path with no file name; missing arguments; an unknown option
    one_line(hfctl("path", os.path.dirname(video) + "/", "0", "1", "30"), "dir/", 2,
             "not a file name")
    for args in (("path", video, "0", "1"), ("path",), ("path", video, "0", "1", "30", "--mount"),
                 ("path", video, "0", "1", "30", "--frobnicate")):
        rc, out, err = hfctl(*args)
        check(rc == 2 and out == "" and err.startswith("hfctl path: "),
              "%s: exit %d, %r" % (args, rc, err))
    rc, out, _ = hfctl("path", "--help")
    check(rc == 0 and "--mount" in out, "path --help: exit %d, %r" % (rc, out))
    print("  %d invalid values, each exit 2 with one line" % n)


@test
def mount_given_and_found():
    with h.tempdir() as root, h.tempdir() as elsewhere:
        media = source_tree(root)
        video = os.path.join(media, "clip.mp4")
        outside = os.path.join(elsewhere, "clip.mp4")
        shutil.copy(video, outside)
        args = ("1.50", "2", "30")
        with h.Mount(source_root=root) as a, h.Mount(source_root=media) as b:
            mounts = [a.mnt, b.mnt]
            # found: the mount with the most specific source_root; given: that mount
            got = path_of(video, *args, only_mounts=mounts)
            check(got == b.path("clip.mp4@1.5+2@30"), "found %r, expected under %s (its "
                  "source_root is %s)" % (got, b.mnt, media))
            got = path_of(video, *args, "--mount", a.mnt, only_mounts=mounts)
            check(got == a.path("media", "clip.mp4@1.5+2@30"), "--mount %s: %r" % (a.mnt, got))
            check(os.listdir(got) and os.path.isfile(os.path.join(got, ".hfinfo")),
                  "%s does not list as a segment" % got)
            got = path_of(video, *args, "--mount=" + b.mnt, only_mounts=mounts)
            check(got == b.path("clip.mp4@1.5+2@30"), "--mount=%s: %r" % (b.mnt, got))
            # only a: found under a
            got = path_of(video, *args, only_mounts=[a.mnt])
            check(got == a.path("media", "clip.mp4@1.5+2@30"), "only %s: %r" % (a.mnt, got))
            # a video no mount shows; a mount that does not show it; not a mount
            one_line(hfctl("path", outside, *args, only_mounts=mounts), "outside", 1,
                     ("no hfmount mount serves", outside))
            one_line(hfctl("path", outside, *args, "--mount", a.mnt, only_mounts=mounts),
                     "outside with --mount", 1, (outside, a.mnt))
            one_line(hfctl("path", video, *args, "--mount", elsewhere, only_mounts=mounts),
                     "--mount of a plain directory", 1, (elsewhere, "not an hfmount mount"))
            one_line(hfctl("path", video, *args, "--mount", b.mnt + "/nothere"),
                     "--mount of a missing directory", 1, "nothere")
            # a video inside mount a given with --mount b
            one_line(hfctl("path", a.path("media", "clip.mp4"), *args, "--mount", b.mnt),
                     "inside a, --mount b", 1, (a.mnt, b.mnt))
            # missing video
            one_line(hfctl("path", os.path.join(media, "nothere.mp4"), *args), "missing video",
                     1, "nothere.mp4")
            # no hfmount mount at all
            one_line(hfctl("path", video, *args, only_mounts=[]), "no mounts", 1,
                     ("no hfmount mount serves", "none is mounted"))
            print("  found %s, given %s and %s" % (b.mnt, a.mnt, b.mnt))


if __name__ == "__main__":
    h.main()
