'use strict';
/*
 * The segment name grammar of SPEC §3, as fs/segname.c parses and spells it, and the
 * sentences `hfctl path` (tools/ctl_path.c) gives for a refused value. Pure functions.
 *
 *   segment = NAME "@" start "+" dur "@" fps [ "@" opts ]
 *
 * Numbers are exact rationals held as BigInt pairs {num, den} (den > 0, reduced): a
 * binary float never decides a name. The tests check every spelling against hfctl path.
 */

const MAX_SLOTS = 10000000n; /* dur*fps above this is out of range */
const MAX_DIGITS = 18; /* digits in one number, leading zeros included */
const DEFAULT_Q = 2;
const MAX_SIDE = 16384;
const NAME_MAX = 255; /* bytes in one directory entry name */

const TONEMAPS = ['hable', 'reinhard', 'mobius', 'clip'];
const FITS = ['fill', 'contain', 'cover'];
const KEYS = ['png', 'jpg', 'q', 'w', 'h', 'fit', 'hold', 'bt2020', 'tonemap', 'untagged'];
const OPTION_LIST =
  'png, jpg, q=N, w=W, h=H, fit=fill|contain|cover, hold, bt2020, tonemap[=OP], untagged=cli';

class SegmentNameError extends Error {
  /* part: "video", "start", "dur", "fps", "options" or "name" */
  constructor(part, message) {
    super(message);
    this.name = 'SegmentNameError';
    this.code = 'ERR_HFMOUNT_INVALID';
    this.part = part;
  }
}

function gcd(a, b) {
  if (a < 0n) a = -a;
  if (b < 0n) b = -b;
  while (b !== 0n) [a, b] = [b, a % b];
  return a;
}

function reduce(num, den) {
  if (den < 0n) [num, den] = [-num, -den];
  const g = gcd(num, den);
  return g > 1n ? {num: num / g, den: den / g} : {num, den};
}

const isDigit = (c) => c >= '0' && c <= '9';

/* 1*DIGIT, at most MAX_DIGITS, as a BigInt; null when not. */
function parseInteger(s) {
  if (s.length === 0 || s.length > MAX_DIGITS) return null;
  for (const c of s) if (!isDigit(c)) return null;
  return BigInt(s);
}

/* decimal = 1*DIGIT [ "." 1*DIGIT ], at most MAX_DIGITS digits in all; null when not. */
function parseDecimal(s) {
  let dot = s.indexOf('.');
  if (dot < 0) dot = s.length;
  if (dot === 0 || (dot !== s.length && dot + 1 === s.length)) return null;
  let digits = '';
  for (let i = 0; i < s.length; i++) {
    if (i === dot) continue;
    if (!isDigit(s[i]) || digits.length + 1 > MAX_DIGITS) return null;
    digits += s[i];
  }
  const frac = dot === s.length ? 0 : s.length - dot - 1;
  return reduce(BigInt(digits), 10n ** BigInt(frac));
}

/* fps = decimal | int ":" int, > 0. */
function parseFps(s) {
  const colon = s.indexOf(':');
  let q;
  if (colon < 0) {
    q = parseDecimal(s);
  } else {
    const num = parseInteger(s.slice(0, colon));
    const den = parseInteger(s.slice(colon + 1));
    if (num === null || den === null || den === 0n) return null;
    q = reduce(num, den);
  }
  return q && q.num > 0n ? q : null;
}

function parseSmall(s, maxDigits, lo, hi) {
  if (s.length > maxDigits) return null;
  const v = parseInteger(s);
  return v === null || v < BigInt(lo) || v > BigInt(hi) ? null : Number(v);
}

/* opts = opt *( "," opt ), into sn; false when refused. */
function parseOptions(s, sn) {
  const seen = new Set();
  let fit = null;
  for (const opt of s.split(',')) {
    let key;
    let ok = true;
    if (opt === 'png' || opt === 'jpg' || opt === 'hold' || opt === 'bt2020') {
      key = opt;
      if (opt === 'hold') sn.hold = true;
      if (opt === 'bt2020') sn.bt2020 = true;
    } else if (opt === 'untagged=cli') {
      key = 'untagged';
      sn.untagged = 'cli';
    } else if (opt === 'tonemap') {
      key = 'tonemap';
      sn.tonemap = 'hable';
    } else if (opt.startsWith('tonemap=')) {
      key = 'tonemap';
      sn.tonemap = opt.slice(8);
      ok = TONEMAPS.includes(sn.tonemap);
    } else if (opt.startsWith('q=')) {
      key = 'q';
      sn.quality = parseSmall(opt.slice(2), 3, 1, 31);
      ok = sn.quality !== null;
    } else if (opt.startsWith('w=')) {
      key = 'w';
      sn.width = parseSmall(opt.slice(2), 5, 1, MAX_SIDE);
      ok = sn.width !== null;
    } else if (opt.startsWith('h=')) {
      key = 'h';
      sn.height = parseSmall(opt.slice(2), 5, 1, MAX_SIDE);
      ok = sn.height !== null;
    } else if (opt.startsWith('fit=')) {
      key = 'fit';
      fit = opt.slice(4);
      ok = FITS.includes(fit);
    } else {
      return false; /* unknown or empty option */
    }
    if (!ok || seen.has(key)) return false;
    seen.add(key);
  }
  if ((seen.has('png') && seen.has('jpg')) || (seen.has('q') && !seen.has('jpg')) ||
      (seen.has('fit') && !(seen.has('w') && seen.has('h'))) ||
      (seen.has('bt2020') && seen.has('tonemap'))) {
    return false;
  }
  sn.format = seen.has('jpg') ? 'jpg' : 'png';
  if (sn.quality === null || sn.format !== 'jpg') sn.quality = DEFAULT_Q;
  sn.fit = sn.width && sn.height ? fit || 'fill' : null;
  return true;
}

/* NAME "@" start "+" dur "@" fps, the fps ending at end. */
function parseFront(s, end, sn) {
  const atFps = s.lastIndexOf('@', end - 1);
  if (atFps < 0) return false;
  sn.fpsQ = parseFps(s.slice(atFps + 1, end));
  if (!sn.fpsQ) return false;
  const atSd = atFps > 0 ? s.lastIndexOf('@', atFps - 1) : -1;
  if (atSd <= 0) return false;
  const sd = s.slice(atSd + 1, atFps);
  const plus = sd.lastIndexOf('+');
  if (plus < 0) return false;
  sn.startQ = parseDecimal(sd.slice(0, plus));
  sn.durationQ = parseDecimal(sd.slice(plus + 1));
  if (!sn.startQ || !sn.durationQ || sn.durationQ.num === 0n) return false;
  if (sn.durationQ.num * sn.fpsQ.num > sn.durationQ.den * sn.fpsQ.den * MAX_SLOTS) return false;
  sn.name = s.slice(0, atSd);
  return true;
}

function emptySegname() {
  return {
    name: '', startQ: null, durationQ: null, fpsQ: null, format: 'png', quality: DEFAULT_Q,
    width: 0, height: 0, fit: null, hold: false, bt2020: false, tonemap: null, untagged: null,
  };
}

/*
 * A directory entry name read as segname_parse reads it (from the right): the values,
 * or null when the mount would answer ENOENT.
 */
function parseRaw(s) {
  const last = s.lastIndexOf('@');
  if (last < 0) return null;
  let sn = emptySegname();
  if (parseFront(s, s.length, sn)) return sn;
  /* The last '@' starts either fps or opts: an fps has no letter, every option has one. */
  sn = emptySegname();
  if (!parseOptions(s.slice(last + 1), sn) || !parseFront(s, last, sn)) return null;
  return sn;
}

const isDecimalDen = (den) => {
  while (den % 2n === 0n) den /= 2n;
  while (den % 5n === 0n) den /= 5n;
  return den === 1n;
};

/* The decimal spelling of q ("1.5", "2", "0"), or null when it has none of <= 18 digits. */
function formatDecimal(q) {
  if (q.num < 0n || !isDecimalDen(q.den)) return null;
  let text = String(q.num / q.den);
  let digits = text.length;
  let rem = q.num % q.den;
  if (rem !== 0n) text += '.';
  while (rem !== 0n) {
    rem *= 10n;
    text += String(rem / q.den);
    rem %= q.den;
    digits++;
  }
  return digits > MAX_DIGITS ? null : text;
}

/* fps as segname_format spells it: a decimal when it has one, else "num:den". */
function formatRate(q) {
  return formatDecimal(q) ?? `${q.num}:${q.den}`;
}

/* The canonical option list of sn ("" when every option is a default). */
function formatOptions(sn) {
  const o = [];
  if (sn.format === 'jpg') o.push('jpg');
  if (sn.format === 'jpg' && sn.quality !== DEFAULT_Q) o.push(`q=${sn.quality}`);
  if (sn.width) o.push(`w=${sn.width}`);
  if (sn.height) o.push(`h=${sn.height}`);
  if (sn.width && sn.height && (sn.fit === 'contain' || sn.fit === 'cover')) o.push(`fit=${sn.fit}`);
  if (sn.bt2020) o.push('bt2020');
  if (sn.tonemap) o.push(sn.tonemap === 'hable' ? 'tonemap' : `tonemap=${sn.tonemap}`);
  if (sn.hold) o.push('hold');
  if (sn.untagged === 'cli') o.push('untagged=cli');
  return o.join(',');
}

function formatRaw(sn, name) {
  const opts = formatOptions(sn);
  return `${name}@${formatDecimal(sn.startQ)}+${formatDecimal(sn.durationQ)}@` +
    formatRate(sn.fpsQ) + (opts ? '@' + opts : '');
}

/* The public view of a parsed name: canonical strings, plain values. */
function publicView(sn) {
  return {
    name: sn.name,
    start: formatDecimal(sn.startQ),
    duration: formatDecimal(sn.durationQ),
    fps: formatRate(sn.fpsQ),
    format: sn.format,
    quality: sn.quality,
    width: sn.width || null,
    height: sn.height || null,
    fit: sn.fit,
    hold: sn.hold,
    bt2020: sn.bt2020,
    tonemap: sn.tonemap,
    untagged: sn.untagged,
    canonical: formatRaw(sn, sn.name),
  };
}

/* ---- why a value is refused: hfctl path's sentences ---- */

const accepts = (name) => Buffer.byteLength(name) < 1024 && parseRaw(name) !== null;
const countDigits = (s) => [...s].filter(isDigit).length;
const onlyChars = (s, set) => [...s].every((c) => set.includes(c));
const spanOf = (s, set) => {
  let i = 0;
  while (i < s.length && set.includes(s[i])) i++;
  return i;
};

function whyDecimal(what, v) {
  if (!v) return `${what} is empty`;
  if (v[0] === '-') return `${what} ${v}: must be >= 0, written without a sign`;
  if (v[0] === '+') return `${what} ${v}: no sign allowed`;
  if (countDigits(v) > MAX_DIGITS && onlyChars(v, '0123456789.')) {
    return `${what} ${v}: more than ${MAX_DIGITS} digits`;
  }
  return `${what} ${v}: not a decimal (digits with at most one '.' between digits, ` +
    'such as 1.5; no sign, exponent or spaces)';
}

function whyFps(v) {
  const colon = v.indexOf(':');
  if (colon < 0) return accepts(`x@${v}+1@1`) ? `fps ${v}: must be > 0` : whyDecimal('fps', v);
  const den = v.slice(colon + 1);
  if (den.includes(':') || colon === 0 || !den || spanOf(v, '0123456789') !== colon ||
      !onlyChars(den, '0123456789')) {
    return `fps ${v}: a rate N:D is two whole numbers, such as 30000:1001`;
  }
  if (colon > MAX_DIGITS || den.length > MAX_DIGITS) {
    return `fps ${v}: more than ${MAX_DIGITS} digits in a number`;
  }
  if (onlyChars(den, '0')) return `fps ${v}: the denominator must be > 0`;
  return `fps ${v}: must be > 0`;
}

function optionKey(opt) {
  const eq = opt.indexOf('=');
  const key = eq < 0 ? opt : opt.slice(0, eq);
  return KEYS.includes(key) ? key : null;
}

function whyOption(key, opt) {
  switch (key) {
    case 'q': return `option ${opt}: q= takes a whole number 1..31`;
    case 'w':
    case 'h': return `option ${opt}: ${key}= takes a whole number 1..${MAX_SIDE} (at most 5 digits)`;
    case 'fit': return `option ${opt}: fit= takes fill, contain or cover`;
    case 'tonemap': return `option ${opt}: tonemap= takes hable, reinhard, mobius or clip`;
    case 'untagged': return `option ${opt}: untagged= takes cli (the browser's guess is the default)`;
    case null: return `unknown option "${opt}" (options: ${OPTION_LIST})`;
    default:
      return opt.includes('=') ? `option ${opt}: ${key} takes no value` : `option ${opt} is not valid`;
  }
}

function whyOptions(opts) {
  const seen = new Set();
  for (const opt of opts.split(',')) {
    if (!opt) return `options ${opts}: an empty option (a comma too many)`;
    const key = optionKey(opt);
    let ok;
    if (key === 'q') ok = accepts(`x@0+1@1@jpg,${opt}`);
    else if (key === 'fit') ok = accepts(`x@0+1@1@w=1,h=1,${opt}`);
    else ok = key !== null && accepts(`x@0+1@1@${opt}`);
    if (!ok) return whyOption(key, opt);
    if (seen.has(key)) return `options ${opts}: ${key} given twice`;
    seen.add(key);
  }
  if (seen.has('png') && seen.has('jpg')) return `options ${opts}: png and jpg contradict each other`;
  if (seen.has('q') && !seen.has('jpg')) return `options ${opts}: q= needs jpg`;
  if (seen.has('fit') && !(seen.has('w') && seen.has('h'))) {
    return `options ${opts}: fit needs both w= and h=`;
  }
  if (seen.has('bt2020') && seen.has('tonemap')) {
    return `options ${opts}: bt2020 and tonemap contradict each other`;
  }
  return `options ${opts} are not valid together`;
}

/* [part, sentence] for a name the grammar refused, part by part. */
function whyRefused(start, dur, fps, opts) {
  /* a duration of 10^-17 s keeps any 18-digit rate under the slot limit */
  const tiny = '0.00000000000000001';
  if (!accepts(`x@${start}+1@1`)) return ['start', whyDecimal('start', start)];
  if (!accepts(`x@${dur}+1@1`)) return ['dur', whyDecimal('dur', dur)];
  if (onlyChars(dur, '0.')) return ['dur', `dur ${dur}: must be > 0`];
  if (!accepts(`x@0+${tiny}@${fps}`)) return ['fps', whyFps(fps)];
  if (!accepts(`x@0+${dur}@${fps}`)) {
    return ['dur', `dur ${dur} at fps ${fps} is more than ${MAX_SLOTS} frames`];
  }
  if (opts) return ['options', whyOptions(opts)];
  return ['name', `${start}+${dur}@${fps} is not a valid segment`];
}

/*
 * The canonical segment name for a file name and the values as text (what hfctl path
 * prints, without the directory). Throws SegmentNameError with hfctl path's sentence.
 */
function canonicalName(name, start, dur, fps, opts, video = name) {
  const vals = [['start', start], ['dur', dur], ['fps', fps]];
  if (!name || name === '.' || name === '..' || name.includes('/') || name.includes('\0')) {
    throw new SegmentNameError('video', `video "${video}": not a file name`);
  }
  for (const [what, v] of vals) {
    if (/[@+/]/.test(v)) {
      throw new SegmentNameError(what, `${what} ${v}: not a decimal (no '@', '+' or '/')`);
    }
    if (v.includes('\0')) throw new SegmentNameError(what, `${what}: a NUL character`);
  }
  if (/[@/\0]/.test(opts)) {
    throw new SegmentNameError('options', `options ${opts}: no '@' or '/' in options`);
  }
  const sn = parseRaw(`${name}@${start}+${dur}@${fps}${opts ? '@' : ''}${opts}`);
  if (!sn) {
    const [part, why] = whyRefused(start, dur, fps, opts);
    throw new SegmentNameError(part, why);
  }
  const out = formatRaw(sn, name);
  if (Buffer.byteLength(out) > NAME_MAX) {
    throw new SegmentNameError('name',
      `the segment name for ${name} is longer than ${NAME_MAX} bytes`);
  }
  return out;
}

module.exports = {
  SegmentNameError, canonicalName, parseRaw, publicView, formatDecimal, formatRate, reduce,
  DEFAULT_Q, MAX_SIDE, NAME_MAX,
};
