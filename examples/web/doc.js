// An end-to-end-encrypted collaborative document in Quill 2. The server
// orders and stores sealed ops; the core (WebAssembly) transforms them.
// `/doc.html?doc=ID&user=NAME`.
import { connect, param } from "./common.js";
import { attachQuill } from "./sealcast/quill.js";

const docId = param("doc", "welcome");
const user = param("user", `guest-${Math.floor(Math.random() * 1000)}`);
const status = document.getElementById("status");
document.getElementById("doc").textContent = `${docId} as ${user}`;

Quill.register("modules/cursors", window.QuillCursors.default ?? window.QuillCursors);
const quill = new Quill("#editor", {
  theme: "snow",
  modules: { cursors: true, toolbar: [["bold", "italic", "underline"], [{ list: "ordered" }, { list: "bullet" }]] },
});
window.quill = quill; // for the browser tests

const messages = {
  loading: () => "loading…",
  ready: () => "ready; edits are end-to-end encrypted",
  diverged: (s) => `stopped: ${s.reason}. Reload to continue; your unsent changes are kept below.`,
  keyNeeded: (s) => `waiting for key ${s.kid}`,
  refused: (s) => `the server refused an edit (${s.code}): ${s.message}`,
};

const { client } = await connect(user);
// The document session's key from the app's backend: the server records
// the first session's hint, so every editor gets the same key (docs/keys.md).
const doc = client.openDocument(docId, { kid: `doc-${docId}`, presence: true });
window.sealcastDocView = () => JSON.stringify(doc.view());
attachQuill(quill, doc, {
  cursors: quill.getModule("cursors"),
  onStatus: (s) => {
    status.dataset.state = s.state;
    status.textContent = messages[s.state](s);
    if (s.unsent) {
      const kept = document.createElement("pre");
      kept.className = "unsent";
      kept.textContent = JSON.stringify(s.unsent);
      status.after(kept);
    }
  },
});
