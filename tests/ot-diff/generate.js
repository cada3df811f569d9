// Generates random Delta cases with their results from the real quill-delta
// package, one JSON object per line, for sealcast-core's differential test
// (core/tests/quill_differential.rs). Deterministic for a given seed.
//
// Usage: node generate.js SEED ITERATIONS
// Each iteration emits 6 cases: compose, transform (both priorities),
// invert, transformPosition (both priorities).
'use strict';
const Delta = require('quill-delta');

const seed = Number(process.argv[2] || 1) >>> 0;
const iterations = Number(process.argv[3] || 1000);

// mulberry32: small, fast, good enough for test data.
let state = seed || 1;
function random() {
  state = (state + 0x6d2b79f5) >>> 0;
  let t = state;
  t = Math.imul(t ^ (t >>> 15), t | 1);
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
}
const int = (n) => Math.floor(random() * n);
const pick = (items) => items[int(items.length)];

// BMP only: quill-delta slices JS strings and could split a surrogate pair,
// which sealcast refuses by design (tested separately).
const ALPHABET = ['a', 'b', 'c', ' ', '\n', 'é', 'ж', '中', 'x', 'y'];
function text(max) {
  let s = '';
  const n = 1 + int(max);
  for (let i = 0; i < n; i++) s += pick(ALPHABET);
  return s;
}

function attributes(allowNull) {
  if (random() < 0.5) return undefined;
  const attrs = {};
  const keys = ['bold', 'italic', 'color', 'size'];
  const values = {
    bold: [true, false],
    italic: [true],
    color: ['red', 'blue', '#00ff00'],
    size: [1, 2, 'large'],
  };
  const n = 1 + int(3);
  for (let i = 0; i < n; i++) {
    const key = pick(keys);
    attrs[key] = allowNull && random() < 0.3 ? null : pick(values[key]);
  }
  return attrs;
}

function insertOp(delta) {
  if (random() < 0.1) {
    delta.insert({ image: pick(['a.png', 'b.png']) }, attributes(false));
  } else {
    delta.insert(text(6), attributes(false));
  }
}

function documentDelta() {
  const doc = new Delta();
  const n = int(6);
  for (let i = 0; i < n; i++) insertOp(doc);
  return doc;
}

// A random change to a document of `length` units.
function change(length) {
  const delta = new Delta();
  let left = length;
  while (left > 0 || random() < 0.3) {
    const r = random();
    if (r < 0.3 || left === 0) {
      insertOp(delta);
      if (left === 0) break;
    } else if (r < 0.65) {
      const n = 1 + int(left);
      delta.retain(n, attributes(true));
      left -= n;
    } else {
      const n = 1 + int(left);
      delta.delete(n);
      left -= n;
    }
  }
  return delta;
}

const out = [];
const flush = () => { if (out.length) process.stdout.write(out.join('\n') + '\n'); out.length = 0; };
for (let i = 0; i < iterations; i++) {
  const doc = documentDelta();
  const a = change(doc.length());
  const b = change(doc.length());
  const afterA = doc.compose(a);
  const c = change(afterA.length());
  out.push(JSON.stringify({ k: 'compose', a: a.ops, b: c.ops, r: a.compose(c).ops }));
  out.push(JSON.stringify({ k: 'transform', a: a.ops, b: b.ops, p: true, r: a.transform(b, true).ops }));
  out.push(JSON.stringify({ k: 'transform', a: a.ops, b: b.ops, p: false, r: a.transform(b, false).ops }));
  out.push(JSON.stringify({ k: 'invert', a: a.ops, b: doc.ops, r: a.invert(doc).ops }));
  const index = int(doc.length() + 2);
  out.push(JSON.stringify({ k: 'position', a: a.ops, i: index, p: true, r: a.transformPosition(index, true) }));
  out.push(JSON.stringify({ k: 'position', a: a.ops, i: index, p: false, r: a.transformPosition(index, false) }));
  if (out.length >= 6000) flush();
}
flush();
