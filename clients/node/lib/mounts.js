'use strict';
/*
 * Which hfmount mount serves a file, as `hfctl path` finds it (tools/ctl_path.c): the
 * fuse.hfmount entries of /proc/self/mountinfo; a mount's source_root is its .hfstats
 * "source_root" (else the mount is asked for the file at each path it could mirror it
 * at, and the one showing the very file wins); the most specific source_root holding the
 * file wins, the first mounted among equals; a file already inside a mount stays in it.
 * Synchronous: a renderer asks once per clip.
 */

const fs = require('fs');
const path = require('path');

const MOUNTINFO = '/proc/self/mountinfo';
const FSTYPE = 'fuse.hfmount';

class MountError extends Error {
  constructor(message, code = 'ERR_HFMOUNT_NO_MOUNT') {
    super(message);
    this.name = 'MountError';
    this.code = code;
  }
}

/* mountinfo's octal escapes (\040 for a space) undone, bytes kept as UTF-8. */
function unescape(s) {
  return Buffer.from(
    s.replace(/\\([0-3][0-7][0-7])/g, (_, o) => String.fromCharCode(parseInt(o, 8))),
    'latin1').toString('utf8');
}

/* The mountpoints of the hfmount mounts of this mount namespace, in mountinfo's order. */
function listMounts(mountinfo = MOUNTINFO) {
  let text;
  try {
    text = fs.readFileSync(mountinfo, 'latin1');
  } catch (e) {
    if (e.code === 'ENOENT') return [];
    throw e;
  }
  const out = [];
  for (const line of text.split('\n')) {
    /* ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTS [OPTIONAL...] - FSTYPE SOURCE SUPER */
    const f = line.split(' ').filter((x) => x !== '');
    const dash = f.indexOf('-', 6);
    if (f.length < 5 || dash < 0 || f[dash + 1] !== FSTYPE) continue;
    out.push(unescape(f[4]));
  }
  return out;
}

/* Whether p is dir or below it (both absolute, without trailing '/'). */
function isBelow(p, dir) {
  if (dir === '/') return true;
  return p.startsWith(dir) && (p.length === dir.length || p[dir.length] === '/');
}

/* dir + rel + "/" + name, where rel is "" or starts with "/"; "/" + "/x" is "/x". */
function join(dir, rel, name) {
  return `${dir === '/' ? '' : dir}${rel}/${name}`;
}

/* The mount's .hfstats "source_root", or null when it says none. */
function rootFromStats(mnt) {
  try {
    const stats = JSON.parse(fs.readFileSync(join(mnt, '', '.hfstats'), 'utf8'));
    const root = stats && stats.source_root;
    return typeof root === 'string' && root[0] === '/' ? root : null;
  } catch {
    return null;
  }
}

/* The same file: what a mirror shows of it unchanged (stats with bigint: true). */
function sameFile(a, b) {
  return a.size === b.size && a.uid === b.uid && a.gid === b.gid &&
    a.mtimeNs === b.mtimeNs && a.ctimeNs === b.ctimeNs && a.isFile() === b.isFile();
}

/* The deepest ancestor R of dir such that the mount shows dir's part below R with the
 * very file dir/name; null when it shows it nowhere. */
function rootFromProbe(mnt, dir, name, video) {
  let root = dir;
  for (;;) {
    const rel = root === '/' ? dir : dir.slice(root.length);
    try {
      if (sameFile(fs.statSync(join(mnt, rel, name), {bigint: true}), video)) return root;
    } catch {
      /* not there: try a shallower root */
    }
    if (root === '/') return null;
    root = root.slice(0, root.lastIndexOf('/')) || '/';
  }
}

/* The source_root of mount mnt when it serves dir/name, else null. */
function servingRoot(mnt, dir, name, video) {
  /* the mirror hides its own mountpoint and what is below it */
  if (isBelow(dir, mnt)) return null;
  const root = rootFromStats(mnt);
  if (root) return isBelow(dir, root) ? root : null;
  return rootFromProbe(mnt, dir, name, video);
}

/*
 * Where the file `file` is seen through a mount: {mountpoint, sourceRoot, dir} where dir
 * is the file's directory as the mount shows it. `mount` as hfctl path's --mount.
 * Throws the fs error when the file's directory or the file cannot be reached, and
 * MountError when no mount serves it (or `mount` does not).
 */
function resolve(file, mount) {
  if (typeof file !== 'string' || file === '') throw new TypeError('file: expected a path');
  const slash = file.lastIndexOf('/');
  const name = file.slice(slash + 1);
  const given = slash < 0 ? '.' : file.slice(0, slash) || '/';
  const dir = fs.realpathSync.native(given);
  const video = fs.statSync(join(dir, '', name), {bigint: true});
  const mounts = listMounts();

  /* A file seen through a mount already: its directory is the segment's. */
  let inside = null;
  for (const m of mounts) {
    if (m !== '/' && isBelow(dir, m) && (!inside || m.length > inside.length)) inside = m;
  }
  if (inside) {
    if (mount != null) {
      let real = null;
      try {
        real = fs.realpathSync.native(mount);
      } catch {
        /* reported below */
      }
      if (real !== inside) {
        throw new MountError(`${file} is inside the hfmount mount ${inside}, not ${mount}`);
      }
    }
    return {mountpoint: inside, sourceRoot: rootFromStats(inside), dir};
  }

  if (mount != null) {
    const real = fs.realpathSync.native(mount);
    if (!mounts.includes(real)) throw new MountError(`${mount} is not an hfmount mount`);
    if (isBelow(dir, real)) throw new MountError(`the mount ${mount} does not show ${file}`);
    const statsRoot = rootFromStats(real);
    const root = servingRoot(real, dir, name, video);
    if (!root) {
      throw new MountError(statsRoot ? `${file} is not below ${mount}'s source_root ${statsRoot}`
        : `the mount ${mount} does not show ${file}`);
    }
    return {mountpoint: real, sourceRoot: root, dir: through(real, root, dir)};
  }

  /* The most specific source_root wins; among equals, the first mounted. */
  let best = null;
  for (const m of mounts) {
    const root = servingRoot(m, dir, name, video);
    if (root && (!best || root.length > best.root.length)) best = {m, root};
  }
  if (!best) {
    throw new MountError(`no hfmount mount serves ${file}${mounts.length ? '' : ' (none is mounted)'}`);
  }
  return {mountpoint: best.m, sourceRoot: best.root, dir: through(best.m, best.root, dir)};
}

/* MNT + the directory's part below source_root */
function through(mnt, root, dir) {
  const rel = root === '/' ? dir : dir.slice(root.length);
  const out = `${mnt === '/' ? '' : mnt}${rel}`;
  return out || '/';
}

/*
 * The mount serving file: {mountpoint, sourceRoot, path} (path: the file as the mount
 * shows it), or null when none does. Throws when the file itself cannot be reached.
 */
function findMount(file, options = {}) {
  if (typeof file !== 'string' || file === '') throw new TypeError('findMount: expected a path');
  const abs = path.resolve(file);
  try {
    const r = resolve(abs, options.mount);
    const name = abs.slice(abs.lastIndexOf('/') + 1);
    return {mountpoint: r.mountpoint, sourceRoot: r.sourceRoot, path: join(r.dir, '', name)};
  } catch (e) {
    if (e instanceof MountError) return null;
    throw e;
  }
}

module.exports = {MountError, listMounts, resolve, findMount, join};
