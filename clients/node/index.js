'use strict';
/*
 * hfmount-client: segment paths, mounts and frames of an hfmount mount for a renderer.
 * No dependencies; one grammar with the mount (fs/segname.c) and `hfctl path`.
 */

const path = require('path');

const grammar = require('./lib/grammar');
const values = require('./lib/values');
const mounts = require('./lib/mounts');
const segment = require('./lib/segment');

/* basename(src)@START+DUR@FPS[@OPTS], canonical; no file system access. */
function segmentName(spec) {
  if (spec === null || typeof spec !== 'object') throw new TypeError('segmentName: expected an object');
  const src = spec.src;
  if (typeof src !== 'string') throw new TypeError('segmentName: src must be a path');
  const name = src.slice(src.lastIndexOf('/') + 1);
  return grammar.canonicalName(name, values.decimalText(spec.start ?? 0, 'start'),
    values.decimalText(spec.duration, 'dur'), values.rateText(spec.fps), values.optionsText(spec), src);
}

/* The canonical segment directory of spec.src as the serving mount shows it. */
function segmentPath(spec) {
  const name = segmentName(spec);
  const r = mounts.resolve(spec.src, spec.mount);
  return mounts.join(r.dir, '', name);
}

/* A segment directory name's values (canonical strings), or null when the mount refuses it. */
function parseSegmentName(name) {
  if (typeof name !== 'string') throw new TypeError('parseSegmentName: expected a string');
  const sn = grammar.parseRaw(path.basename(name));
  return sn ? grammar.publicView(sn) : null;
}

/*
 * The exact time of output frame `frame` at `fps`, less `clipStart` seconds (the clip's
 * place on the timeline): {num, den} seconds from the clip's start, for frameAtTime.
 */
function compositionTime(frame, fps, clipStart = 0) {
  const f = values.timeRational(fps);
  if (f.num <= 0n) throw new RangeError(`fps ${fps}: must be > 0`);
  const n = values.timeRational(frame);
  const c = values.timeRational(clipStart);
  return grammar.reduce(n.num * f.den * c.den - c.num * n.den * f.num, n.den * f.num * c.den);
}

module.exports = {
  segmentName,
  segmentPath,
  parseSegmentName,
  findMount: mounts.findMount,
  listMounts: mounts.listMounts,
  openSegment: segment.openSegment,
  frameName: (k, ext = 'png') => segment.frameName(k, ext),
  compositionTime,
  Segment: segment.Segment,
  SegmentError: segment.SegmentError,
  SegmentNameError: grammar.SegmentNameError,
  MountError: mounts.MountError,
};
