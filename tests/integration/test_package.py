#!/usr/bin/env python3
"""
Issue 12 item 2, the Debian package, checked with Debian's own tools.

`cpack -G DEB` runs on the build under test (its CPackConfig.cmake, the tree found above
HFMOUNT_BIN; the package lands in a temp directory, not in the build tree) and must make
exactly one hfmount_<version>_<arch>.deb, version as `hfmount --version` says and arch as
`dpkg --print-architecture` says. Then:

- control fields (`dpkg-deb -f`): Package, Version, Architecture, Maintainer, Section,
  Priority, Homepage, a summary and an extended Description; Depends is fuse3 plus
  exactly what dpkg-shlibdeps computes from the packaged binaries, and every library a
  binary needs (objdump's NEEDED, resolved by ldd, owned per `dpkg -S`) is in it: no
  library typed by hand, none missing;
- the file list (`dpkg-deb -c`): the two programs (0755, stripped ELF), the two man
  pages gzipped, the examples of tools/examples and a changelog.gz, all owned by root,
  and nothing else; the extracted (`dpkg-deb -x`) man pages and examples equal the
  sources, the changelog parses (`dpkg-parsechangelog`) with the package's version, the
  control archive's md5sums match the files, and `man -l` renders both pages;
- the extracted `hfmount --version` and `hfctl --help` run (system libraries only, no
  LD_LIBRARY_PATH; an ASan build's package depends on libasan8 and runs the same way);
- in a private mount namespace where /usr/bin is the system's plus the package's (an
  overlay), `mount -t fuse.hfmount STORE MNT -o source_root=...` goes through mount.fuse3
  (package fuse3) to the packaged /usr/bin/hfmount, which serves frames equal to the
  ffmpeg CLI's; umount ends it.

cpack first runs the build's `preinstall` target (make's `all`): a no-op after the build
that ctest follows, and it makes the package from that build's binaries.
"""

import atexit
import glob
import gzip
import hashlib
import json
import os
import re
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import hftest as h  # noqa: E402
from hftest import check, test  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
PROGRAMS = ("hfmount", "hfctl")


build_dir = h.build_dir


def version_of(binary):
    """The version `hfmount --version` prints (its first line: "hfmount X.Y.Z (...)")."""
    out = h.run([binary, "--version"], timeout=30).stdout.decode()
    m = re.match(r"hfmount (\S+)", out)
    check(m, "%s --version printed %r" % (binary, out))
    return m.group(1)


# ---------------------------------------------------------------------------------------
# The package: one cpack run per test run, into a temp directory removed at exit.

class Package:
    pass


_pkg = None
_pkg_error = None


def package():
    """The package, made on first use; a failure is reported once and then re-raised."""
    global _pkg, _pkg_error
    if _pkg is not None:
        return _pkg
    if _pkg_error is not None:
        raise AssertionError("no package (see the first failure): %s" % _pkg_error)
    try:
        _pkg = make_package()
    except Exception as e:
        _pkg_error = str(e).splitlines()[0]
        raise
    return _pkg


def make_package():
    p = Package()
    p.tmp = tempfile.mkdtemp(prefix="hfit-deb-")
    atexit.register(shutil.rmtree, p.tmp, True)
    os.chmod(p.tmp, 0o755)
    out = os.path.join(p.tmp, "out")
    t = time.monotonic()
    cfg = os.path.join(build_dir(), "CPackConfig.cmake")
    check(os.path.exists(cfg), "%s is missing: CMakeLists.txt has no include(CPack)" % cfg)
    h.run(["cpack", "-G", "DEB", "--config", cfg, "-B", out], timeout=300)
    debs = sorted(glob.glob(os.path.join(out, "*.deb")))
    p.version = version_of(h.HFMOUNT_BIN)
    p.arch = h.run(["dpkg", "--print-architecture"]).stdout.decode().strip()
    want = "hfmount_%s_%s.deb" % (p.version, p.arch)
    check([os.path.basename(d) for d in debs] == [want],
          "cpack made %s, expected exactly %s" % ([os.path.basename(d) for d in debs], want))
    p.deb = debs[0]
    print("  cpack -G DEB: %s, %d bytes, %.1fs" % (want, os.path.getsize(p.deb),
                                                 time.monotonic() - t))
    # Extracted where dpkg-shlibdeps expects a package's files: debian/<package>/.
    p.root = os.path.join(p.tmp, "src", "debian", "hfmount")
    p.ctrl = os.path.join(p.tmp, "control")
    os.makedirs(p.root)
    h.run(["dpkg-deb", "-x", p.deb, p.root])
    h.run(["dpkg-deb", "-e", p.deb, p.ctrl])
    return p


def fields(deb):
    """The control file as {field: value}, continuation lines joined with newlines."""
    text = h.run(["dpkg-deb", "-f", deb]).stdout.decode()
    out, key = {}, None
    for line in text.splitlines():
        if line[:1] in (" ", "\t") and key:
            out[key] += "\n" + line[1:]
        elif ":" in line:
            key, _, val = line.partition(":")
            out[key] = val.strip()
    return out


def relation_names(depends):
    """Package names of a Depends value ("a (>= 1), b | c" -> {a, b, c})."""
    names = set()
    for rel in depends.split(","):
        for alt in rel.split("|"):
            alt = alt.strip()
            if alt:
                names.add(re.match(r"[a-z0-9][a-z0-9+.-]*", alt).group(0))
    return names


def needed(binary):
    out = h.run(["objdump", "-p", binary]).stdout.decode()
    return re.findall(r"^\s*NEEDED\s+(\S+)\s*$", out, re.M)


def owner_of(path):
    """The Debian package owning path (dpkg -S), trying the /usr-merged spellings."""
    real = os.path.realpath(path)
    cands = [path, real]
    for c in list(cands):
        cands.append(c[4:] if c.startswith("/usr/") else "/usr" + c)
    for c in cands:
        p = subprocess.run(["dpkg", "-S", c], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        if p.returncode == 0:
            return p.stdout.decode().split(":", 1)[0].split(",")[0].strip()
    raise AssertionError("no Debian package owns %s (nor %s)" % (path, real))


def library_owners(binary):
    """{soname: owning package} for every NEEDED entry of binary, resolved by ldd."""
    where = {}
    for line in h.run(["ldd", binary]).stdout.decode().splitlines():
        m = re.match(r"\s*(\S+) => (/\S+)", line)
        if m:
            where[m.group(1)] = m.group(2)
    out = {}
    for so in needed(binary):
        check(so in where, "%s: ldd does not resolve its NEEDED %s" % (binary, so))
        out[so] = owner_of(where[so])
    return out


# ---------------------------------------------------------------------------------------
# Control fields and dependencies

@test
def control_fields():
    p = package()
    f = fields(p.deb)
    print("  " + "\n  ".join("%s: %s" % (k, v.replace("\n", " / ")) for k, v in f.items()))
    check(f.get("Package") == "hfmount", "Package: %r" % f.get("Package"))
    check(f.get("Version") == p.version, "Version %r, hfmount --version says %r"
          % (f.get("Version"), p.version))
    check(f.get("Architecture") == p.arch, "Architecture %r, dpkg says %r"
          % (f.get("Architecture"), p.arch))
    check(re.fullmatch(r"[^<>]+ <[^<>@\s]+@[^<>@\s]+>", f.get("Maintainer", "")),
          "Maintainer %r is not 'Name <address>'" % f.get("Maintainer"))
    check(f.get("Section") in ("utils", "video", "misc", "otherosfs"),
          "Section %r" % f.get("Section"))
    check(f.get("Priority") == "optional", "Priority %r" % f.get("Priority"))
    check(re.fullmatch(r"https?://\S+", f.get("Homepage", "")), "Homepage %r" % f.get("Homepage"))
    desc = f.get("Description", "").split("\n")
    check(len(desc) >= 2 and 0 < len(desc[0]) <= 80 and all(desc[1:]),
          "Description needs a summary line (<= 80 chars) and an extended text: %r" % desc)
    check(int(f.get("Installed-Size", "0")) > 0, "Installed-Size %r" % f.get("Installed-Size"))


@test
def depends_computed_from_binaries():
    p = package()
    depends = fields(p.deb).get("Depends", "")
    names = relation_names(depends)
    check("fuse3" in names, "Depends %r lacks fuse3 (fusermount3, mount.fuse3)" % depends)
    # Exactly dpkg-shlibdeps' answer for the packaged binaries, plus fuse3.
    bins = [os.path.join(p.root, "usr", "bin", b) for b in PROGRAMS]
    # dpkg-shlibdeps runs from the directory holding debian/ (a control file it needs).
    with open(os.path.join(p.tmp, "src", "debian", "control"), "w") as fh:
        fh.write("Source: hfmount\n\nPackage: hfmount\nArchitecture: any\n")
    r = subprocess.run(["dpkg-shlibdeps", "-O"] + [os.path.relpath(b, os.path.join(p.tmp, "src"))
                                                  for b in bins],
                       cwd=os.path.join(p.tmp, "src"), stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=120)
    check(r.returncode == 0, "dpkg-shlibdeps failed: %s" % r.stderr.decode())
    m = re.search(r"^shlibs:Depends=(.*)$", r.stdout.decode(), re.M)
    check(m, "dpkg-shlibdeps printed no shlibs:Depends: %r" % r.stdout)
    # libavfilter is loaded at run time (decode/transform.c): its package, found from the
    # library file, is declared beside fuse3, since dpkg-shlibdeps cannot see it.
    avf = subprocess.run(["pkg-config", "--variable=libdir", "libavfilter"],
                         stdout=subprocess.PIPE).stdout.decode().strip()
    major = subprocess.run(["pkg-config", "--modversion", "libavfilter"],
                           stdout=subprocess.PIPE).stdout.decode().split(".")[0]
    so = os.path.join(avf, "libavfilter.so." + major)
    owner = subprocess.run(["dpkg-query", "-S", so], stdout=subprocess.PIPE).stdout.decode()
    dlopened = owner.split(":")[0].split(",")[0].strip()
    check(dlopened in names, "Depends %r lacks %s, whose %s transforms load" % (depends,
                                                                              dlopened, so))
    ours = sorted(x.strip() for x in depends.split(",")
                  if x.strip() != "fuse3" and relation_names(x) != {dlopened})
    theirs = sorted(x.strip() for x in m.group(1).split(","))
    check(ours == theirs, "Depends is not fuse3 + dpkg-shlibdeps:\n  package:        %s\n"
          "  dpkg-shlibdeps: %s" % (", ".join(ours), ", ".join(theirs)))
    # Independently of dpkg-shlibdeps: each needed library's package is there, with a
    # minimum version, and nothing else is (a library typed by hand would show here).
    owners = {}
    for b in bins:
        owners.update(library_owners(b))
    for so, pkg in sorted(owners.items()):
        check(pkg in names, "%s (from %s) is needed but %s is not in Depends" % (so, pkg, pkg))
    extra = names - set(owners.values()) - {"fuse3", dlopened}
    check(not extra, "Depends names %s, which no packaged binary needs" % sorted(extra))
    versioned = [x for x in ours if "(>=" in x]
    check(len(versioned) >= len(ours) // 2, "few minimum versions in %s" % ours)
    print("  %d needed libraries from %d packages, all in Depends: %s"
          % (len(owners), len(set(owners.values())), ", ".join(sorted(set(owners.values())))))


# ---------------------------------------------------------------------------------------
# Files

def expected_files():
    out = {"./usr/bin/" + b: 0o755 for b in PROGRAMS}
    for page in sorted(glob.glob(os.path.join(REPO, "tools", "man", "*.1"))):
        out["./usr/share/man/man1/%s.gz" % os.path.basename(page)] = 0o644
    for ex in sorted(os.listdir(os.path.join(REPO, "tools", "examples"))):
        out["./usr/share/doc/hfmount/examples/" + ex] = 0o644
    out["./usr/share/doc/hfmount/changelog.gz"] = 0o644
    return out


@test
def file_list():
    p = package()
    listing = h.run(["dpkg-deb", "-c", p.deb]).stdout.decode().splitlines()
    files, dirs = {}, set()
    for line in listing:
        perm, owner, size, day, hour, path = line.split(None, 5)
        path = path.split(" -> ")[0]
        check(owner == "root/root", "%s is owned by %s" % (path, owner))
        if perm.startswith("d"):
            check(perm == "drwxr-xr-x", "directory %s has mode %s" % (path, perm))
            dirs.add(path.rstrip("/"))
            continue
        check(perm[0] == "-", "%s is not a regular file (%s)" % (path, perm))
        files[path] = perm
    want = expected_files()
    check(set(files) == set(want), "files in the package differ:\n  missing %s\n  extra %s"
          % (sorted(set(want) - set(files)), sorted(set(files) - set(want))))
    for path, mode in want.items():
        shown = stat.filemode(stat.S_IFREG | mode)
        check(files[path] == shown, "%s has mode %s, expected %s" % (path, files[path], shown))
    for d in dirs:
        check(d in ("./usr", "./usr/bin", "./usr/share", "./usr/share/doc", "./usr/share/man",
                    "./usr/share/man/man1") or d.startswith("./usr/share/doc/hfmount"),
              "unexpected directory %s" % d)
    print("  %d files, %d directories, all root/root under /usr" % (len(files), len(dirs)))


@test
def contents_match_sources():
    p = package()
    for page in sorted(glob.glob(os.path.join(REPO, "tools", "man", "*.1"))):
        name = os.path.basename(page)
        gz = os.path.join(p.root, "usr", "share", "man", "man1", name + ".gz")
        with gzip.open(gz, "rb") as fh, open(page, "rb") as src:
            check(fh.read() == src.read(), "%s.gz does not hold tools/man/%s" % (name, name))
        if shutil.which("man"):
            r = subprocess.run(["man", "-l", gz], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               env=dict(os.environ, MANPAGER="cat", PAGER="cat", MANWIDTH="80"),
                               timeout=60)
            text = r.stdout.decode(errors="replace")
            check(r.returncode == 0 and name[:-2] in text and "SYNOPSIS" in text,
                  "man -l %s: exit %d, %r" % (gz, r.returncode, r.stderr[-500:]))
        else:
            print("  (no man(1) here: %s compared byte for byte only)" % name)
    examples = os.path.join(p.root, "usr", "share", "doc", "hfmount", "examples")
    for ex in sorted(os.listdir(os.path.join(REPO, "tools", "examples"))):
        with open(os.path.join(examples, ex), "rb") as a, \
                open(os.path.join(REPO, "tools", "examples", ex), "rb") as b:
            check(a.read() == b.read(), "examples/%s differs from tools/examples/%s" % (ex, ex))
    # The changelog Debian policy asks of a native package, parsed by dpkg's own parser.
    log = os.path.join(p.tmp, "changelog")
    with gzip.open(os.path.join(p.root, "usr", "share", "doc", "hfmount", "changelog.gz")) as a, \
            open(log, "wb") as b:
        b.write(a.read())
    cl = h.run(["dpkg-parsechangelog", "-l", log]).stdout.decode()
    check(re.search(r"^Source: hfmount$", cl, re.M) and
          re.search(r"^Version: %s$" % re.escape(p.version), cl, re.M),
          "changelog.gz: dpkg-parsechangelog says %r" % cl)
    # The control archive's md5sums cover every file and match what was extracted.
    sums = {}
    with open(os.path.join(p.ctrl, "md5sums")) as fh:
        for line in fh.read().splitlines():
            md5, rel = line.split(None, 1)
            sums[rel.strip()] = md5
    check(set("./" + k for k in sums) == set(expected_files()),
          "md5sums lists %s" % sorted(sums))
    for rel, md5 in sums.items():
        with open(os.path.join(p.root, rel), "rb") as fh:
            check(hashlib.md5(fh.read()).hexdigest() == md5, "md5sums: %s does not match" % rel)
    for b in PROGRAMS:
        desc = h.run(["file", "-b", os.path.join(p.root, "usr", "bin", b)]).stdout.decode()
        check(desc.startswith("ELF") and ", stripped" in desc, "usr/bin/%s: %s" % (b, desc))
    print("  man pages, examples and md5sums match; both programs are stripped ELF")


@test
def extracted_programs_run():
    p = package()
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("HFMOUNT_") and k != "LD_LIBRARY_PATH"}
    hfm = os.path.join(p.root, "usr", "bin", "hfmount")
    hfc = os.path.join(p.root, "usr", "bin", "hfctl")
    r = subprocess.run([hfm, "--version"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       env=env, timeout=30)
    out = r.stdout.decode()
    check(r.returncode == 0 and out.startswith("hfmount %s" % p.version),
          "extracted hfmount --version: exit %d, %r %r" % (r.returncode, out, r.stderr))
    r = subprocess.run([hfc, "--help"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       env=env, timeout=30)
    out = r.stdout.decode() + r.stderr.decode()
    check(r.returncode == 0, "extracted hfctl --help: exit %d, %r" % (r.returncode, out))
    for word in ("status", "prefetch", "contact-sheet", "gc"):
        check(word in out, "extracted hfctl --help does not mention %s: %r" % (word, out))
    r = subprocess.run([hfc, "--version"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       env=env, timeout=30)
    check(r.returncode == 0 and p.version in r.stdout.decode() + r.stderr.decode(),
          "extracted hfctl --version: exit %d, %r" % (r.returncode, r.stdout + r.stderr))
    print("  extracted: %s" % subprocess.run([hfm, "--version"], stdout=subprocess.PIPE,
                                             env=env).stdout.decode().strip())


# ---------------------------------------------------------------------------------------
# The packaged hfmount behind mount(8), in a private mount namespace. The outer test
# re-runs this file as
#   unshare --mount --propagation private python3 test_package.py --inside JSON

alive = h.pid_alive


def pids_with_arg(arg):
    return h.pids_with_arg(lambda a: a == arg)


def sh(cmd, **kw):
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60, **kw)
    out = (p.stdout + p.stderr).decode(errors="replace").strip()
    print("  $ %s -> %d%s" % (" ".join(cmd), p.returncode, (": " + out) if out else ""))
    check(p.returncode == 0, "%s: exit %d: %s" % (" ".join(cmd), p.returncode, out))
    return p


class Mounted(h.Mount):
    """A mount mount(8) made, read through hftest's checks."""

    def __init__(self, mnt):
        self.mnt = mnt


def inside(kw):
    tmp, root = kw["tmp"], kw["root"]
    run_dir = "/run/mount" if os.path.isdir("/run/mount") else "/run"
    sh(["mount", "-t", "tmpfs", "-o", "mode=755,size=4m", "hfit-run", run_dir])
    # /usr/bin as if the package were installed; an hfmount earlier on the helper shell's
    # default path (a `cmake --install` to /usr/local) hidden.
    sh(["mount", "-t", "overlay", "hfit-usr-bin", "-o",
        "lowerdir=%s:/usr/bin" % os.path.join(root, "usr", "bin"), "/usr/bin"])
    for d in ("/usr/local/sbin", "/usr/local/bin"):
        if os.path.exists(os.path.join(d, "hfmount")):
            sh(["mount", "-t", "tmpfs", "-o", "mode=755,size=1m", "hfit-hide", d])
    found = subprocess.run(["/bin/sh", "-c", "command -v hfmount"], env={},
                           stdout=subprocess.PIPE).stdout.decode().strip()
    check(found == "/usr/bin/hfmount", "the helper's shell would run %r" % found)
    store, mnt = os.path.join(tmp, "store"), os.path.join(tmp, "mnt")
    os.mkdir(mnt)
    sh(["mount", "-t", "fuse.hfmount", store, mnt, "-o", "source_root=" + h.SRC])
    pid = None
    try:
        check(os.path.ismount(mnt), "nothing mounted on %s" % mnt)
        deadline = time.monotonic() + 10
        while not pid and time.monotonic() < deadline:
            pids = pids_with_arg(store)
            pid = pids[0] if len(pids) == 1 else None
            time.sleep(0.05)
        check(pid, "no single hfmount daemon serving %s" % store)
        with open("/proc/%d/exe" % pid, "rb") as a, \
                open(os.path.join(root, "usr", "bin", "hfmount"), "rb") as b:
            check(a.read() == b.read(), "the daemon (pid %d) is not the packaged hfmount" % pid)
        _, blobs, _ = h.check_segment(Mounted(mnt), "cfr30.mp4", "0.5", "0.5", "30")
        print("  packaged /usr/bin/hfmount (pid %d) behind mount -t fuse.hfmount: %d frames "
              "equal to the ffmpeg CLI's" % (pid, len(blobs)))
    finally:
        for _ in range(50):
            if not os.path.ismount(mnt):
                break
            if subprocess.run(["umount", mnt], stderr=subprocess.DEVNULL).returncode == 0:
                break
            time.sleep(0.1)
    deadline = time.monotonic() + 15
    while pid and alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    check(not (pid and alive(pid)), "hfmount still running after umount")
    return 0


def mount_helper_runs_packaged_hfmount():
    p = package()
    tmp = tempfile.mkdtemp(prefix="hfit-debmnt-")
    try:
        env = {k: v for k, v in os.environ.items() if not k.startswith("HFMOUNT_")}
        env["XDG_CONFIG_HOME"] = os.path.join(tmp, "no-config")
        cmd = ["unshare", "--mount", "--propagation", "private", sys.executable,
               os.path.abspath(__file__), "--inside", json.dumps({"tmp": tmp, "root": p.root})]
        try:
            r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env,
                               timeout=300)
        finally:
            for pid in pids_with_arg(os.path.join(tmp, "store")):
                os.kill(pid, signal.SIGKILL)
        sys.stdout.write(r.stdout.decode(errors="replace"))
        check(r.returncode == 0, "the mount in a private namespace failed (exit %d)"
              % r.returncode)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--inside":
        try:
            sys.exit(inside(json.loads(sys.argv[2])))
        except Exception:
            import traceback
            traceback.print_exc(file=sys.stdout)
            sys.exit(1)
    # Only the mount(8) case needs /dev/fuse and root; the package checks run anywhere.
    if h.fuse_available():
        test(mount_helper_runs_packaged_hfmount)
    else:
        print("note: /dev/fuse absent or not root: mount_helper_runs_packaged_hfmount not run")
    h.main(needs_fuse=False)
