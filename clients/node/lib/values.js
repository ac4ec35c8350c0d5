'use strict';
/*
 * What a renderer has (JS numbers, strings, ratios, an options object) turned into the
 * text of a segment name, and composition times into exact rationals.
 */

const {SegmentNameError, reduce} = require('./grammar');

/*
 * A finite number as the shortest decimal that reads back as the same double (what
 * String(x) prints), with any exponent expanded: 1e-7 -> "0.0000001", 1e21 ->
 * "1000000000000000000000", 29.97 -> "29.97".
 */
function numberText(x) {
  let s = String(x);
  let sign = '';
  if (s[0] === '-') {
    sign = '-';
    s = s.slice(1);
  }
  const m = /^(\d+)(?:\.(\d+))?e([+-]\d+)$/.exec(s);
  if (!m) return sign + s;
  const digits = m[1] + (m[2] || '');
  const point = m[1].length + Number(m[3]);
  if (point <= 0) return `${sign}0.${'0'.repeat(-point)}${digits}`;
  if (point >= digits.length) return sign + digits + '0'.repeat(point - digits.length);
  return `${sign}${digits.slice(0, point)}.${digits.slice(point)}`;
}

/* start or dur: a number, a bigint or a decimal string, as the text of the name. */
function decimalText(v, what) {
  if (typeof v === 'number') {
    if (!Number.isFinite(v)) throw new SegmentNameError(what, `${what} ${v}: not a finite number`);
    return numberText(v);
  }
  if (typeof v === 'bigint') return String(v);
  if (typeof v === 'string') return v;
  throw new SegmentNameError(what, `${what}: expected a number or a decimal string, got ${typeof v}`);
}

/*
 * fps: a number (30, 29.97), a string ("30", "23.976", "30000:1001", "30000/1001") or
 * {num, den}; "N/D" is written "N:D" as the grammar spells a ratio.
 */
function rateText(v) {
  if (v !== null && typeof v === 'object' && 'num' in v && 'den' in v) {
    return `${decimalText(v.num, 'fps')}:${decimalText(v.den, 'fps')}`;
  }
  if (typeof v === 'string' && /^[0-9]+\/[0-9]+$/.test(v)) return v.replace('/', ':');
  return decimalText(v, 'fps');
}

function checkType(v, what, types) {
  if (v !== undefined && v !== null && !types.includes(typeof v)) {
    throw new SegmentNameError('options', `${what}: expected ${types.join(' or ')}, got ${typeof v}`);
  }
}

/*
 * The option text of an options object, in the canonical order, then `options` (raw
 * option text, a string or an array of them; empty ones are none, as in hfctl path).
 */
function optionsText(o) {
  const out = [];
  checkType(o.format, 'format', ['string']);
  checkType(o.hold, 'hold', ['boolean']);
  checkType(o.bt2020, 'bt2020', ['boolean']);
  checkType(o.tonemap, 'tonemap', ['boolean', 'string']);
  checkType(o.fit, 'fit', ['string']);
  checkType(o.untagged, 'untagged', ['string']);
  for (const k of ['quality', 'width', 'height']) checkType(o[k], k, ['number', 'bigint', 'string']);
  if (o.format !== undefined && o.format !== null) {
    if (o.format !== 'png' && o.format !== 'jpg') {
      throw new SegmentNameError('options', `format ${o.format}: must be "png" or "jpg"`);
    }
    out.push(o.format);
  }
  const num = (v) => (typeof v === 'number' ? numberText(v) : String(v));
  if (o.quality != null) out.push(`q=${num(o.quality)}`);
  if (o.width != null) out.push(`w=${num(o.width)}`);
  if (o.height != null) out.push(`h=${num(o.height)}`);
  if (o.fit != null) out.push(`fit=${o.fit}`);
  if (o.bt2020) out.push('bt2020');
  if (o.tonemap === true) out.push('tonemap');
  else if (typeof o.tonemap === 'string') out.push(`tonemap=${o.tonemap}`);
  if (o.hold) out.push('hold');
  if (o.untagged != null) out.push(`untagged=${o.untagged}`);
  let raw = o.options;
  if (raw != null) {
    if (typeof raw === 'string') raw = [raw];
    if (!Array.isArray(raw) || raw.some((x) => typeof x !== 'string')) {
      throw new SegmentNameError('options', 'options: expected a string or an array of strings');
    }
    out.push(...raw.filter((x) => x !== ''));
  }
  return out.join(',');
}

/* floor(a / b) for BigInts, b > 0 */
function floorDiv(a, b) {
  const q = a / b;
  return a % b !== 0n && a < 0n ? q - 1n : q;
}

/*
 * A time in seconds as an exact rational {num, den} (BigInt, den > 0): a number (its
 * shortest decimal, as String prints it), a bigint, a string ("1.25", "-0.5", "7/30",
 * "7:30") or {num, den}. Throws TypeError for anything else.
 */
function timeRational(t) {
  if (t !== null && typeof t === 'object' && 'num' in t && 'den' in t) {
    const num = BigInt(t.num);
    const den = BigInt(t.den);
    if (den === 0n) throw new RangeError('time: the denominator is 0');
    return reduce(num, den);
  }
  if (typeof t === 'bigint') return {num: t, den: 1n};
  let s;
  if (typeof t === 'number') {
    if (!Number.isFinite(t)) throw new TypeError(`time ${t}: not a finite number`);
    s = numberText(t);
  } else if (typeof t === 'string') {
    s = t.trim();
  } else {
    throw new TypeError(`time: expected a number, a string or {num, den}, got ${typeof t}`);
  }
  let m = /^(-?)([0-9]+)(?:\.([0-9]+))?$/.exec(s);
  if (m) {
    const frac = m[3] || '';
    const num = BigInt(m[2] + frac) * (m[1] ? -1n : 1n);
    return reduce(num, 10n ** BigInt(frac.length));
  }
  m = /^(-?[0-9]+)[/:]([0-9]+)$/.exec(s);
  if (m && BigInt(m[2]) !== 0n) return reduce(BigInt(m[1]), BigInt(m[2]));
  throw new TypeError(`time ${t}: not a decimal or a ratio N/D`);
}

module.exports = {numberText, decimalText, rateText, optionsText, timeRational, floorDiv};
