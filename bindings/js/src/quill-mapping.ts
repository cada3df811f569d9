// How a Quill editor's contents map to a sealed document's, for the
// binding in quill.ts. Pure functions over deltas (`{ ops }`), tested
// against quill-delta in test/quill-mapping.test.mjs.
//
// Quill always ends with a newline; a document need not (a new one is
// empty). So every editor shows the document plus one final line of
// Quill's own that is never part of the document: `view + "\n"`, whether it
// got there by `ready` (setContents, which would otherwise merge a final
// "\n" of the view into Quill's) or by applying changes. Editors that
// mapped it differently showed one more newline than the others.

export type Op = { insert?: unknown; retain?: unknown; delete?: number; attributes?: Record<string, unknown> };

/** What the editor shows for `view`: the document and Quill's own final line. */
export function shown(view: { ops: unknown[] }): { ops: unknown[] } {
  return { ops: [...view.ops, { insert: "\n" }] };
}

function opLength(op: Op): number {
  if (typeof op.insert === "string") return op.insert.length;
  if (op.insert !== undefined) return 1; // an embed
  if (typeof op.retain === "number") return op.retain;
  return op.retain !== undefined ? 1 : (op.delete ?? 0);
}

/**
 * A user's change, in the editor's terms (document + final line), as an edit
 * of the document, and the fix-up that gives the editor a final line of its
 * own again. Quill never deletes its final line nor inserts after it; the
 * one thing a change can do to it is format it (a list or header on the
 * last line). That becomes a newline with those formats ending the
 * document, and a new plain final line below it in the editor (the fix-up
 * inserts it after the formatted one, so it touches nothing the change
 * did; `line` is where the formatted newline is).
 */
export function toDocument(
  change: { ops: unknown[] },
  docLength: number,
): { edit: { ops: Op[] }; fixup: { ops: Op[]; line: number } | null } {
  const ops: Op[] = [];
  let at = 0; // position in the editor's content before the change
  let end = 0; // position in the document after the change
  for (const op of change.ops as Op[]) {
    if (op.insert !== undefined) {
      ops.push(op);
      end += opLength(op);
      continue;
    }
    const n = opLength(op);
    const inside = Math.max(0, Math.min(n, docLength - at)); // the part before the final line
    if (inside > 0) {
      ops.push(op.retain !== undefined ? { ...op, retain: typeof op.retain === "number" ? inside : op.retain } : { delete: inside });
      if (op.retain !== undefined) end += inside;
    }
    const formats = Object.entries(op.attributes ?? {}).filter(([, v]) => v !== null);
    if (op.retain !== undefined && inside < n && formats.length > 0) {
      const attributes = Object.fromEntries(formats);
      ops.push({ insert: "\n", attributes });
      // The editor now ends with the formatted line; add a plain one after it.
      return { edit: { ops }, fixup: { ops: [{ retain: end + 1 }, { insert: "\n" }], line: end } };
    }
    at += n;
    if (at > docLength) break; // nothing real comes after the final line
  }
  return { edit: { ops }, fixup: null };
}

/**
 * The undo of a change that formatted the editor's last line, from the one
 * Quill's history recorded (`recorded`, which clears the format at `line`):
 * the document got a new formatted line there, so undoing deletes it
 * instead, and the editor again shows what it showed before the change.
 * `recorded` may hold earlier changes merged into it; only the op at
 * `line` changes.
 */
export function undoingLine(recorded: Op[], line: number): Op[] {
  const ops: Op[] = [];
  let at = 0; // position in the contents the undo applies to
  for (const op of recorded) {
    const n = op.insert !== undefined ? 0 : opLength(op);
    if (typeof op.retain === "number" && op.attributes && at <= line && line < at + n) {
      const before = line - at;
      const after = n - before - 1;
      if (before > 0) ops.push({ ...op, retain: before });
      ops.push({ delete: 1 });
      if (after > 0) ops.push({ ...op, retain: after });
    } else {
      ops.push(op);
    }
    at += n;
  }
  return ops;
}

const isHigh = (unit: number) => unit >= 0xd800 && unit <= 0xdbff;
const isLow = (unit: number) => unit >= 0xdc00 && unit <= 0xdfff;

/** The text of `contents`, an embed as one placeholder unit. */
function textOf(contents: { ops: unknown[] }): string {
  return (contents.ops as Op[]).map((op) => (typeof op.insert === "string" ? op.insert : "\u0000")).join("");
}

/**
 * Whether `change` cuts an emoji's UTF-16 pair. Quill computes a typed
 * change by diffing the edited text node (quill-delta's diff, which does
 * not keep pairs whole), so typing 🇫🇷 before 🇷 arrives as
 * `retain 1, insert "\uddeb🇷\ud83c"`; the core rightly refuses that.
 */
export function cutsPair(change: { ops: unknown[] }, old: { ops: unknown[] }): boolean {
  const text = textOf(old);
  const cutAt = (at: number) => at > 0 && isHigh(text.charCodeAt(at - 1)) && isLow(text.charCodeAt(at));
  let at = 0;
  for (const op of change.ops as Op[]) {
    if (cutAt(at)) return true;
    if (typeof op.insert === "string") {
      if (isLow(op.insert.charCodeAt(0)) || isHigh(op.insert.charCodeAt(op.insert.length - 1))) return true;
    } else if (op.insert === undefined) {
      at += opLength(op);
    }
  }
  return cutAt(at);
}

/** One entry per UTF-16 unit (an embed is one): the unit or embed, and its attributes as JSON. */
function unitsOf(contents: { ops: unknown[] }): Array<{ unit: unknown; key: string }> {
  const units: Array<{ unit: unknown; key: string }> = [];
  for (const op of contents.ops as Op[]) {
    const key = JSON.stringify(op.attributes ?? null);
    if (typeof op.insert === "string") for (const unit of op.insert.split("")) units.push({ unit, key });
    else units.push({ unit: op.insert, key: JSON.stringify([op.insert, op.attributes ?? null]) });
  }
  return units;
}

/**
 * The change from `old` to `now` as one replaced span whose ends fall
 * between code points: the common prefix and suffix kept, the rest
 * deleted and inserted again. Used only when Quill's own change cuts a
 * pair; the result is the same document.
 */
export function replacedSpan(old: { ops: unknown[] }, now: { ops: unknown[] }): { ops: Op[] } {
  const a = unitsOf(old);
  const b = unitsOf(now);
  // An embed's key holds the embed itself.
  const same = (x: { unit: unknown; key: string }, y: { unit: unknown; key: string }) =>
    x.key === y.key && (typeof x.unit === "string" ? x.unit === y.unit : typeof y.unit !== "string");
  const lowAt = (units: typeof a, i: number) => typeof units[i]?.unit === "string" && isLow((units[i].unit as string).charCodeAt(0));
  let prefix = 0;
  while (prefix < a.length && prefix < b.length && same(a[prefix], b[prefix])) prefix++;
  if (prefix > 0 && (lowAt(a, prefix) || lowAt(b, prefix))) prefix--;
  let suffix = 0;
  while (suffix < a.length - prefix && suffix < b.length - prefix && same(a[a.length - 1 - suffix], b[b.length - 1 - suffix])) suffix++;
  if (suffix > 0 && (lowAt(a, a.length - suffix) || lowAt(b, b.length - suffix))) suffix--;
  const ops: Op[] = [];
  if (prefix > 0) ops.push({ retain: prefix });
  if (a.length - prefix - suffix > 0) ops.push({ delete: a.length - prefix - suffix });
  for (let i = prefix; i < b.length - suffix; i++) {
    const { unit, key } = b[i];
    const last = ops[ops.length - 1];
    if (typeof unit === "string" && last && typeof last.insert === "string" && JSON.stringify(last.attributes ?? null) === key) {
      last.insert += unit;
    } else {
      const attributes = typeof unit === "string" ? JSON.parse(key) : JSON.parse(key)[1];
      ops.push(attributes ? { insert: unit, attributes } : { insert: unit });
    }
  }
  return { ops };
}

export function contentLength(contents: unknown): number {
  const ops = (contents as { ops?: Op[] } | null)?.ops ?? [];
  return ops.reduce((sum, op) => sum + opLength(op), 0);
}
