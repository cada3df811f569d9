// Binds a Quill 2 editor to a SealedDocument: the user's changes become
// edits at the version the editor shows, others' changes are applied with
// source "api", remote cursors are drawn with quill-cursors when given.
// All transformation happens in the core; this only moves deltas and
// tracks which version the editor is at (quill-mapping.ts: how the
// editor's contents map to the document's).

import type { DocumentEvent } from "./types.js";
import { SealcastError, type SealedDocument } from "./index.js";
import { contentLength, cutsPair, replacedSpan, shown, toDocument, undoingLine, type Op } from "./quill-mapping.js";

/** The parts of a Quill 2 instance used here. */
export interface QuillLike {
  getContents(): { ops: unknown[] };
  setContents(delta: unknown, source?: string): unknown;
  updateContents(delta: unknown, source?: string): unknown;
  on(event: string, handler: (...args: any[]) => void): unknown;
  off(event: string, handler: (...args: any[]) => void): unknown;
  enable(enabled?: boolean): void;
  disable(): void;
  getModule?(name: string): unknown;
}

/** The part of Quill's history module (undo and redo) used here. */
interface HistoryLike {
  options: { userOnly?: boolean };
  stack: { undo: { delta: { ops: Op[] } }[] };
  clear(): void;
}

/** The parts of the quill-cursors module used here. */
export interface CursorsLike {
  createCursor(id: string, name: string, color: string): unknown;
  moveCursor(id: string, range: { index: number; length: number }): void;
}

/** What the editor shows the user about the document. */
export type DocumentStatus =
  | { state: "loading" }
  | { state: "ready" }
  /** Input stopped: the session diverged (`unsent` holds the user's unacknowledged changes). */
  | { state: "diverged"; reason: string; unsent: unknown }
  /** A key is missing: remote changes wait (input continues locally). */
  | { state: "keyNeeded"; kid: string }
  /** The server refused an edit for good; `unsent` were dropped from the document. */
  | { state: "refused"; code: string; message: string; unsent: unknown };

export interface QuillBindingOptions {
  /** The quill-cursors module (`quill.getModule("cursors")`), to show others' cursors. */
  cursors?: CursorsLike;
  /** Status changes, to show the user (loading, diverged, missing key…). */
  onStatus?: (status: DocumentStatus) => void;
  /** Smallest gap between cursor updates sent, ms (default 100). */
  cursorIntervalMs?: number;
}

const COLORS = ["#e6194b", "#3cb44b", "#4363d8", "#f58231", "#911eb4", "#46f0f0", "#f032e6", "#008080"];

function colorOf(id: string): string {
  let hash = 0;
  for (const ch of id) hash = (hash * 31 + ch.codePointAt(0)!) >>> 0;
  return COLORS[hash % COLORS.length];
}

/** Attaches `quill` to `doc`; returns a function that detaches it. */
export function attachQuill(quill: QuillLike, doc: SealedDocument, options: QuillBindingOptions = {}): () => void {
  let version: number | undefined;
  const status = options.onStatus ?? (() => {});
  const cursors = new Set<string>();
  let lastCursor = 0;
  let cursorTimer: ReturnType<typeof setTimeout> | undefined;
  let range: { index: number; length: number } | null = null;

  // Undo is Quill's history, which records every change by default,
  // others' included: Ctrl+Z then took back whatever arrived last. Record
  // only the user's own (others' move the stack, as in the core's undo).
  const history = quill.getModule?.("history") as HistoryLike | undefined;
  const historyWasUserOnly = history?.options.userOnly;
  if (history) history.options.userOnly = true;

  quill.disable();
  status({ state: "loading" });

  const onTextChange = (delta: { ops: unknown[] }, old: { ops: unknown[] }, source: string) => {
    if (source !== "user" || version === undefined) return;
    try {
      const change = cutsPair(delta, old) ? replacedSpan(old, quill.getContents()) : delta;
      const { edit, fixup } = toDocument(change, contentLength(old) - 1);
      version = doc.edit(version, edit);
      if (fixup) {
        quill.updateContents(fixup, "api");
        // Quill's history would undo the format and leave the new line;
        // make it take the line back out (its entry is a Delta: keep the class).
        const top = history?.stack.undo.at(-1);
        if (top) {
          const Delta = top.delta.constructor as new (ops: Op[]) => { ops: Op[] };
          top.delta = new Delta(undoingLine(top.delta.ops, fixup.line));
        }
      }
    } catch (err) {
      const code = err instanceof SealcastError ? err.code : "error";
      const message = err instanceof Error ? err.message : String(err);
      if (code === "diverged" || code === "not_ready") {
        // Stop input rather than lose it silently; the change is kept.
        quill.disable();
        status({ state: "diverged", reason: message, unsent: delta });
        return;
      }
      // The core refused this change (e.g. it splits a character): show
      // the document as it is and hand the change back to the user.
      const current = doc.view();
      quill.setContents(shown(current.view), "api");
      history?.clear();
      version = current.version;
      status({ state: "refused", code, message, unsent: delta });
    }
  };

  const sendCursor = () => {
    cursorTimer = undefined;
    lastCursor = Date.now();
    if (range && version !== undefined) {
      try {
        doc.cursor(range.index, range.length);
      } catch {
        // not ready: the next selection change sends it
      }
    }
  };

  const onSelectionChange = (next: { index: number; length: number } | null) => {
    range = next;
    if (!next || cursorTimer) return;
    const wait = (options.cursorIntervalMs ?? 100) - (Date.now() - lastCursor);
    cursorTimer = setTimeout(sendCursor, Math.max(0, wait));
  };

  const onEvent = (event: DocumentEvent) => {
    switch (event.type) {
      case "ready":
        quill.setContents(shown(event.view), "api");
        history?.clear(); // a new session: nothing before it to undo
        version = event.version;
        quill.enable(true);
        status(event.unsent ? { state: "refused", code: "reset", message: "the document was reloaded", unsent: event.unsent } : { state: "ready" });
        break;
      case "remoteChange":
        // Based on another version: a later change (or `ready`) replaces it.
        if (event.base === version) {
          quill.updateContents(event.change, "api");
          version = event.version;
        }
        break;
      case "cursor":
        if (options.cursors && event.userId) {
          if (!cursors.has(event.userId)) {
            options.cursors.createCursor(event.userId, event.userId, colorOf(event.userId));
            cursors.add(event.userId);
          }
          options.cursors.moveCursor(event.userId, { index: event.index, length: event.length });
        }
        break;
      case "diverged":
        quill.disable();
        status({ state: "diverged", reason: event.reason, unsent: event.unsent });
        break;
      case "keyNeeded":
        status({ state: "keyNeeded", kid: event.kid });
        break;
      case "refused":
        if (event.retryInMs === null) status({ state: "refused", code: event.code, message: event.message, unsent: null });
        break;
      // Nothing to show in the editor: every client skips the same op, and
      // a cursor that does not open is only a moment's position.
      case "skipped":
      case "cursorError":
        break;
      default: {
        // A new event type is a compile error here, never silently dropped.
        const unhandled: never = event;
        return unhandled;
      }
    }
  };

  quill.on("text-change", onTextChange);
  quill.on("selection-change", onSelectionChange);
  doc.on("*", onEvent);
  // Opened before attaching: show what there is.
  try {
    const { view, version: at } = doc.view();
    if (doc.ready) onEvent({ type: "ready", view, seq: 0, unsent: null, version: at });
  } catch {
    // not joined yet: `ready` comes
  }

  return () => {
    quill.off("text-change", onTextChange);
    quill.off("selection-change", onSelectionChange);
    doc.off("*", onEvent);
    clearTimeout(cursorTimer);
    if (history) history.options.userOnly = historyWasUserOnly;
    version = undefined;
  };
}
