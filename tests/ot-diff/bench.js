// quill-delta side of the OT throughput comparison (docs/benchmarks.md):
// the same compose and transform pairs as `cargo bench -p sealcast-core --bench ot`.
// Usage: node bench.js CASES_FILE [SECONDS]
'use strict';
const fs = require('node:fs');
const Delta = require('quill-delta');

const [file, seconds = '3'] = process.argv.slice(2);
const compose = [];
const transform = [];
for (const line of fs.readFileSync(file, 'utf8').split('\n')) {
  if (!line) continue;
  const c = JSON.parse(line);
  if (c.k === 'compose') compose.push([new Delta(c.a), new Delta(c.b)]);
  if (c.k === 'transform' && c.p === true) transform.push([new Delta(c.a), new Delta(c.b)]);
}

function measure(name, pairs, fn) {
  // Warm up the JIT, then run whole passes for the given time.
  for (let i = 0; i < 3; i++) pairs.forEach(([a, b]) => fn(a, b));
  const start = process.hrtime.bigint();
  const budget = BigInt(Math.round(Number(seconds) * 1e9));
  let passes = 0;
  while (process.hrtime.bigint() - start < budget) {
    pairs.forEach(([a, b]) => fn(a, b));
    passes += 1;
  }
  const elapsed = Number(process.hrtime.bigint() - start) / 1e9;
  const perPass = elapsed / passes;
  console.log(`${name}: ${(perPass * 1e6).toFixed(1)} µs per pass of ${pairs.length} (${(pairs.length / perPass).toFixed(0)} ops/s)`);
}

measure('quill-delta compose_all', compose, (a, b) => a.compose(b));
measure('quill-delta transform_all', transform, (a, b) => a.transform(b, true));
