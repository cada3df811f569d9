// The shapes the WebAssembly machine emits (bindings/wasm/src/events.rs)
// and the part of pusher-js this package uses.

/** A Quill delta: `{ ops: [...] }`. */
export interface Delta {
  ops: unknown[];
}

/** A key the client needs; answer with `{ kv, key }` (base64url). */
export interface KeyRequest {
  kid: string;
  /** The version an envelope names; `null`: the current one, to seal with. */
  kv: number | null;
  /** The document, for document keys. */
  docId: string | null;
  /**
   * The document session's key hint as the server recorded it; `null` for a
   * new document: issue a new session key and return its hint.
   */
  keyHint: string | null;
}

/** A key from the app's key provider. */
export interface KeyGrant {
  kv: number;
  /** 32 bytes, base64url. */
  key: string;
  /**
   * For a new document session key (asked for with `keyHint: null`): its
   * hint, which the server records so every other client gets the same key.
   */
  keyHint?: string | null;
}

/** How to open a document. */
export interface DocumentOptions {
  /**
   * Key id to seal with: the client's key (`addKey`) or, without one, the
   * document session's key, asked from the key provider with the document id
   * and the session's key hint once the server has named it.
   */
  kid: string;
  /** On `presence-doc-ID` (a roster, user ids on cursors) instead of `private-doc-ID`. */
  presence?: boolean;
  /** The hint of the client's key for `kid`, if known: claimed for a new document. */
  keyHint?: string | null;
  /** Upload a snapshot every this many ops (default 500). */
  snapshotEvery?: number;
  /** Compare digests every this many ops (default 100). */
  digestEvery?: number;
}

/** What a delivered event carries besides its data. */
export interface MessageMeta {
  event: string;
  /** The sender, on presence channels. */
  userId: string | null;
  /** The scope its sealed fields were bound to (`chat:ROOM:MSG`…), if it had any. */
  scope: string | null;
}

/** Something that happened to a document. */
export type DocumentEvent =
  /** Replace the editor's content with `view`; the editor is at `version`. `unsent`: changes not carried over. */
  | { type: "ready"; view: Delta; seq: number; unsent: Delta | null; version: number }
  /** Apply `change` only when the editor is at `base`; it is then at `version`. */
  | { type: "remoteChange"; change: Delta; base: number; version: number }
  | {
      type: "skipped";
      seq: number;
      opId: string;
      userId: string | null;
      reason: string;
      /** Why, as a stable code. */
      code: "key_refused" | "unreadable" | "replayed" | "does_not_apply";
    }
  | { type: "cursor"; userId: string | null; index: number; length: number }
  | { type: "cursorError"; userId: string | null; message: string }
  /** The key provider refused the document's session key (the document closes). */
  | { type: "keyNeeded"; kid: string; kv: number | null; keyHint: string | null }
  /** The session stopped; input is refused until `restart()`. */
  | { type: "diverged"; seq: number; reason: string; unsent: Delta | null }
  | { type: "refused"; code: string; message: string; retryInMs: number | null };

/** @internal A message or undecryptable event on a channel. */
export type ChannelEvent =
  | { type: "message"; channel: string | null; event: string; data: unknown; userId: string | null; scope: string | null }
  | { type: "undecryptable"; channel: string | null; event: string; userId: string | null; code: string; message: string };

/** @internal */
export type MachineEvent =
  | ChannelEvent
  | { type: "state"; state: unknown }
  | { type: "subscribed"; channel: string }
  | { type: "subscriptionFailed"; channel: string; status: number | null; message: string }
  | { type: "memberAdded" | "memberRemoved"; channel: string; member: unknown }
  | { type: "error"; code: number | null; message: string }
  | { type: "document"; docId: string; event: DocumentEvent }
  | { type: "needAuthorization"; socketId: string; channel: string }
  | { type: "needKey"; request: KeyRequest }
  | { type: "catchUp"; channel: string; outcome: CatchUpOutcome }
  | {
      type: "history";
      channel: string;
      requestId: string;
      result: { type: "page"; events: HistoryEvent[]; more: boolean } | { type: "refused"; code: string; message: string };
    };

/**
 * One event of a history page (`channel.history()`): its data opened, or —
 * when its sealed fields did not open — `undecryptable`, never ciphertext.
 */
export interface HistoryEvent {
  /** Its offset in the channel's stream (ask `before` the first one for the page before). */
  offset: number;
  event: string;
  userId: string | null;
  /** When the server took it, ms since the Unix epoch. */
  timeMs: number;
  data?: unknown;
  scope?: string | null;
  undecryptable?: { code: string; message: string };
}

/** A page of a channel's history, oldest first; `more`: older events are kept. */
export interface HistoryPage {
  events: HistoryEvent[];
  more: boolean;
}

/**
 * How a channel with history caught up after a reconnect or a gap
 * (docs/history.md): the missed events were delivered before it, once and
 * in order (`complete`), or some were lost (`gap`: `position_expired` or
 * `epoch_changed`) or could not be read (`failed`) — reload the channel's
 * state from your own source then. `events`: how many missed events were
 * delivered.
 */
export type CatchUpOutcome =
  | { type: "complete"; events: number }
  | { type: "gap"; gap: "position_expired" | "epoch_changed"; events: number }
  | { type: "failed"; code: string; message: string; events: number };

/** @internal */
export type MachineTransmit =
  | { type: "subscribe"; channel: string }
  | { type: "unsubscribe"; channel: string }
  | { type: "trigger"; channel: string; event: string; data: unknown }
  | { type: "none" };

/** The parts of a pusher-js 8 `Pusher` instance this package uses. */
export interface PusherLike {
  subscribe(name: string): { subscribed: boolean };
  unsubscribe(name: string): void;
  channel(name: string): { trigger(event: string, data: unknown): boolean } | undefined | null;
  send_event(event: string, data: unknown, channel?: string): boolean;
  connection: {
    bind(event: string, callback: (value: never) => void): unknown;
    unbind(event: string, callback: (value: never) => void): unknown;
  };
}
