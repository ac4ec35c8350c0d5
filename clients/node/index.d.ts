// Types for hfmount-client: segment paths, mounts and frames of an hfmount mount.

/** A rational with integer parts (numbers or bigints), e.g. `{num: 30000, den: 1001}`. */
export interface Ratio {
  num: number | bigint;
  den: number | bigint;
}

/**
 * Seconds: a number (read as the shortest decimal that prints it: `0.1` is 1/10, `1e-7`
 * is 0.0000001), a bigint, a decimal string (`"1.50"`), or a Ratio.
 */
export type Seconds = number | bigint | string;

/**
 * Frames per second: `30`, `29.97`, `"23.976"`, `"30000/1001"`, `"30000:1001"` or
 * `{num: 30000, den: 1001}`. A JS number is its shortest decimal (`30000 / 1001` is
 * 29.97002997002997, not NTSC: pass `"30000/1001"` for that).
 */
export type Rate = number | bigint | string | Ratio;

export type Fit = 'fill' | 'contain' | 'cover';
export type ToneMap = 'hable' | 'reinhard' | 'mobius' | 'clip';

/** What a renderer knows about a clip; every field but `src`, `duration` and `fps` optional. */
export interface SegmentSpec {
  /** The video: its real path (absolute, or relative to the working directory), or a path inside a mount. */
  src: string;
  /** Seconds into the video where the segment starts (>= 0). Default 0. */
  start?: Seconds;
  /** Seconds the segment lasts (> 0). */
  duration: Seconds;
  /** Output frames per second (> 0). */
  fps: Rate;
  /** Image format; default `png`. */
  format?: 'png' | 'jpg';
  /** JPEG qscale 1..31 as `ffmpeg -q:v` (default 2); needs `format: 'jpg'`. */
  quality?: number | string;
  /** Output box width, 1..16384; alone it keeps the aspect ratio. */
  width?: number | string;
  /** Output box height, 1..16384; alone it keeps the aspect ratio. */
  height?: number | string;
  /** How width and height together fit the picture (needs both); default `fill`. */
  fit?: Fit;
  /** Slots past the end of the video show its last frame. */
  hold?: boolean;
  /** 8-bit SDR (BT.709 or untagged) to BT.2020; not with `tonemap`. */
  bt2020?: boolean;
  /** PQ or HLG HDR to 8-bit SDR; `true` is `hable`. */
  tonemap?: boolean | ToneMap;
  /** `'cli'`: an untagged video is read as the ffmpeg CLI reads it (BT.601), not as a browser shows it. */
  untagged?: 'cli';
  /** Raw option text added to the above, as `hfctl path` takes it: `"jpg,q=5"` or `["jpg", "q=5"]`. */
  options?: string | string[];
  /** The mount to use, as `hfctl path --mount`; default: the mount that serves `src` (see findMount). */
  mount?: string;
}

/**
 * The canonical segment directory name, `basename(src)@START+DUR@FPS[@OPTS]`: exact
 * decimals without exponent, rates as decimals or `N:D`, options in canonical order with
 * defaults left out. No file system access. Throws SegmentNameError.
 */
export function segmentName(spec: SegmentSpec): string;

/**
 * The canonical segment directory of `spec.src` as its mount shows it: the same string
 * `hfctl path` prints. Throws SegmentNameError for a bad value, MountError when no mount
 * serves the video, and the fs error (ENOENT...) when the video cannot be reached.
 */
export function segmentPath(spec: SegmentSpec): string;

/** A segment name's values as the mount reads them (canonical strings). */
export interface ParsedSegmentName {
  name: string;
  start: string;
  duration: string;
  fps: string;
  format: 'png' | 'jpg';
  quality: number;
  width: number | null;
  height: number | null;
  fit: Fit | null;
  hold: boolean;
  bt2020: boolean;
  tonemap: ToneMap | null;
  untagged: 'cli' | null;
  /** The canonical spelling of the whole name. */
  canonical: string;
}

/** Reads a segment directory name (or path: its last part); null when the mount would say ENOENT. */
export function parseSegmentName(name: string): ParsedSegmentName | null;

export interface FoundMount {
  /** The hfmount mountpoint. */
  mountpoint: string;
  /** Its source_root (from its .hfstats), or null when it does not say. */
  sourceRoot: string | null;
  /** The file as the mount shows it. */
  path: string;
}

/**
 * The hfmount mount that serves `file` (as `hfctl path` finds it): the fuse.hfmount
 * mounts of /proc/self/mountinfo, the most specific source_root holding the file, the
 * first mounted among equals; a file already inside a mount stays in it. null when none
 * does (or `options.mount` does not). Throws the fs error when the file cannot be reached.
 */
export function findMount(file: string, options?: {mount?: string}): FoundMount | null;

/** The mountpoints of the hfmount mounts of this mount namespace, in mount order. */
export function listMounts(): string[];

/** The .hfinfo of a segment (SPEC §8); more fields may appear. */
export interface SegmentInfo {
  segment: string;
  source: string;
  start: string;
  duration: string;
  fps: string;
  count: number;
  width: number;
  height: number;
  format: 'png' | 'jpg';
  state: 'listed' | 'extracting' | 'complete' | 'error';
  frames_done: number;
  error: string | null;
  transform?: string;
  not_applied?: string | null;
  [key: string]: unknown;
}

/** An open segment directory. Slot k (0-based) is the file `frame_{k+1}` (%05d, wider past 99999). */
export class Segment {
  readonly path: string;
  /** Frames in the directory (slots 0..count-1). */
  readonly count: number;
  readonly width: number;
  readonly height: number;
  readonly format: 'png' | 'jpg';
  /** File extension of the frames, `png` or `jpg`. */
  readonly ext: 'png' | 'jpg';
  readonly hold: boolean;
  /** Canonical decimals, as .hfinfo spells them. */
  readonly start: string | null;
  readonly duration: string | null;
  readonly fps: string | null;
  readonly state: SegmentInfo['state'];
  /** .hfinfo's sentence, when the segment has one (only with openSegment's `partial`). */
  readonly error: string | null;
  /** The .hfinfo read when the segment was opened. */
  readonly info: SegmentInfo;
  /** `frame_00001.png` for slot 0. RangeError outside 0..count-1. */
  frameName(k: number): string;
  /** The path of slot k. RangeError outside 0..count-1. */
  framePath(k: number): string;
  /** Every frame's path, slot 0 first. */
  framePaths(): string[];
  /**
   * The slot shown at time t seconds from the clip's start: floor(t * fps), exactly. null
   * before the clip (t < 0) and, without hold, at or past the last slot; with hold,
   * times past the last slot give the last slot. TypeError for a time that is not one.
   */
  slotAtTime(t: Seconds | Ratio): number | null;
  /** framePath(slotAtTime(t)), or null when slotAtTime is null. */
  frameAtTime(t: Seconds | Ratio): string | null;
  /** A new Segment from the current .hfinfo (state and frames_done move during extraction). */
  refresh(): Promise<Segment>;
}

/**
 * Opens a segment directory (a path from segmentPath) by reading its .hfinfo. Rejects
 * with an ENOENT error for a name the mount refuses or a missing video, and with a
 * SegmentError whose message is .hfinfo's sentence when the segment has an error (a
 * start past the end without hold, no decodable video...), unless `partial` is set: then
 * the Segment comes back with `error` set (frames before damage stay readable).
 */
export function openSegment(path: string, options?: {partial?: boolean}): Promise<Segment>;

/** `frame_00001.png` for slot 0 (`frame_100000.png` for slot 99999). */
export function frameName(k: number, ext?: 'png' | 'jpg'): string;

/**
 * The exact time of output frame `frame` at `fps`, less `clipStart` seconds (the clip's
 * place on the timeline, default 0), for frameAtTime: `compositionTime(7, 30)` is 7/30 s,
 * `compositionTime(150, 30, 4)` is 1 s into a clip placed at 4 s.
 */
export function compositionTime(frame: Seconds, fps: Rate, clipStart?: Seconds | Ratio): {num: bigint; den: bigint};

/** A value the grammar refuses; `message` is hfctl path's sentence ("dur 0: must be > 0"). */
export class SegmentNameError extends Error {
  readonly code: 'ERR_HFMOUNT_INVALID';
  readonly part: 'video' | 'start' | 'dur' | 'fps' | 'options' | 'name';
}

/** No mount serves the video (or the given mount does not). */
export class MountError extends Error {
  readonly code: 'ERR_HFMOUNT_NO_MOUNT';
}

/** A segment whose .hfinfo has an error; `message` is its sentence. */
export class SegmentError extends Error {
  readonly code: 'ERR_HFMOUNT_SEGMENT';
  readonly path: string;
  readonly info: SegmentInfo;
}
