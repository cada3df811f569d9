// The browser side of scripts/bench/web.mjs: per-operation cost of the
// core compiled to WebAssembly, called the way an app calls it (JSON in,
// JSON out), next to quill-delta (Quill 2's own Delta) on the same inputs.
// The same workload runs natively in bindings/wasm/examples/native_bench.rs.
import { loadSealcast, generateKey, sealJson, openJson, deltaCompose, deltaTransform } from "./sealcast/index.js";

export const workload = {
  chatBody: "Let's meet at the usual place at seven — bring the documents 📄 and don't tell anyone. ".repeat(2),
  // A document of 40 formatted runs, and a small edit near its middle.
  document: {
    ops: Array.from({ length: 40 }, (_, i) => ({ insert: `paragraph ${i} with some text; `, ...(i % 3 === 0 ? { attributes: { bold: true } } : {}) })),
  },
  change: { ops: [{ retain: 600 }, { insert: "typed 👋" }, { delete: 3 }] },
  other: { ops: [{ retain: 598 }, { delete: 5 }, { insert: "x", attributes: { italic: true } }] },
};

function time(n, f) {
  for (let i = 0; i < Math.min(200, n); i++) f(i); // warm up
  const start = performance.now();
  for (let i = 0; i < n; i++) f(i);
  return ((performance.now() - start) * 1e6) / n; // ns per call
}

async function run() {
  await loadSealcast();
  const Delta = Quill.import("delta");
  const key = generateKey();
  const w = workload;
  const results = {};

  results.sealOpenChat = time(2000, (i) => {
    const id = `m-${i}`;
    const sealed = sealJson(JSON.stringify({ body: w.chatBody, id }), ["/body"], "room", 1, key, `chat:room:${id}`);
    const opened = JSON.parse(openJson(sealed, "room", 1, key));
    if (opened.data.body !== w.chatBody) throw new Error("round trip failed");
  });
  const [doc, change, other] = [w.document, w.change, w.other].map((d) => JSON.stringify(d));
  results.wasmCompose = time(5000, () => JSON.parse(deltaCompose(doc, change)));
  results.wasmTransform = time(5000, () => JSON.parse(deltaTransform(change, other, true)));
  const [qDoc, qChange, qOther] = [w.document, w.change, w.other].map((d) => new Delta(d.ops));
  results.quillCompose = time(5000, () => qDoc.compose(qChange));
  results.quillTransform = time(5000, () => qChange.transform(qOther, true));
  return results;
}

window.runBench = run;
document.getElementById("out").textContent = "ready: call runBench()";
