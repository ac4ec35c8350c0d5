'use strict';
/*
 * An open segment directory: its .hfinfo (SPEC §8) and the slot arithmetic of SPEC §4.
 * Slot k (0-based) is the file frame_{k+1} (%05d, wider past 99999); a composition time
 * t seconds from the clip's start shows slot floor(t * fps), computed exactly.
 */

const fs = require('fs');
const path = require('path');

const {parseRaw} = require('./grammar');
const {timeRational, floorDiv} = require('./values');

class SegmentError extends Error {
  constructor(message, segmentPath, info) {
    super(message);
    this.name = 'SegmentError';
    this.code = 'ERR_HFMOUNT_SEGMENT';
    this.path = segmentPath;
    this.info = info;
  }
}

/* "frame_00001.png" for slot 0 */
function frameName(k, ext) {
  return `frame_${String(k + 1).padStart(5, '0')}.${ext}`;
}

class Segment {
  constructor(dir, info) {
    const sn = (typeof info.segment === 'string' && parseRaw(info.segment)) ||
      parseRaw(path.basename(dir));
    if (!sn) throw new SegmentError(`${dir} is not a segment directory`, dir, info);
    this.path = dir;
    this.info = info;
    this.count = Number(info.count) || 0;
    this.width = Number(info.width) || 0;
    this.height = Number(info.height) || 0;
    this.format = info.format === 'png' || info.format === 'jpg' ? info.format : sn.format;
    this.ext = this.format;
    this.hold = sn.hold;
    this.start = typeof info.start === 'string' ? info.start : null;
    this.duration = typeof info.duration === 'string' ? info.duration : null;
    this.fps = typeof info.fps === 'string' ? info.fps : null;
    this.state = info.state;
    this.error = typeof info.error === 'string' && info.error ? info.error : null;
    Object.defineProperty(this, 'rate', {value: sn.fpsQ, enumerable: false});
  }

  /* The file name of slot k. */
  frameName(k) {
    if (!Number.isInteger(k) || k < 0 || k >= this.count) {
      throw new RangeError(`slot ${k} is not in 0..${this.count - 1} of ${this.path}`);
    }
    return frameName(k, this.ext);
  }

  /* The path of slot k (0-based). RangeError outside 0..count-1. */
  framePath(k) {
    return path.join(this.path, this.frameName(k));
  }

  /* Every frame's path, slot 0 first. */
  framePaths() {
    return Array.from({length: this.count}, (_, k) => path.join(this.path, frameName(k, this.ext)));
  }

  /*
   * The slot shown at time t seconds from the clip's start: floor(t * fps) exactly, or
   * null outside the clip (t < 0; past the last slot without hold). With hold, times
   * past the last slot show the last slot.
   */
  slotAtTime(t) {
    const q = timeRational(t);
    const k = floorDiv(q.num * this.rate.num, q.den * this.rate.den);
    if (k < 0n || this.count === 0) return null;
    if (k >= BigInt(this.count)) return this.hold ? this.count - 1 : null;
    return Number(k);
  }

  /* The path of the slot shown at time t (see slotAtTime), or null. */
  frameAtTime(t) {
    const k = this.slotAtTime(t);
    return k === null ? null : this.framePath(k);
  }

  /* .hfinfo again (state and frames_done move while the segment is extracted). */
  async refresh() {
    const info = await readInfo(this.path);
    return new Segment(this.path, info);
  }
}

async function readInfo(dir) {
  let text;
  try {
    text = await fs.promises.readFile(path.join(dir, '.hfinfo'), 'utf8');
  } catch (e) {
    if (e.code === 'ENOENT' || e.code === 'ENOTDIR') {
      const err = new Error(`no segment directory at ${dir}: the name is not a valid ` +
        'segment, or its video does not exist', {cause: e});
      err.code = e.code;
      err.errno = e.errno;
      err.syscall = e.syscall;
      err.path = dir;
      throw err;
    }
    throw e;
  }
  return JSON.parse(text);
}

/*
 * Opens the segment directory dir (a path from segmentPath): its .hfinfo read once.
 * Throws ENOENT for a name the mount refuses or a missing video, and a SegmentError
 * whose message is .hfinfo's sentence when the segment has an error (unless
 * options.partial: then the segment is returned with .error set).
 */
async function openSegment(dir, options = {}) {
  if (typeof dir !== 'string' || dir === '') throw new TypeError('openSegment: expected a path');
  const info = await readInfo(dir);
  if (typeof info.error === 'string' && info.error && !options.partial) {
    throw new SegmentError(info.error, dir, info);
  }
  return new Segment(dir, info);
}

module.exports = {Segment, SegmentError, openSegment, frameName};
