// @sealcast/client: end-to-end-encrypted events and collaborative
// documents over an app's unchanged pusher-js 8 connection.
//
// Everything that decides anything (sealing, opening, keys, held events,
// the document client and its OT) is the Rust core, compiled to
// WebAssembly (`Machine`). This file only carries the machine's outputs to
// pusher-js and pusher-js's events to the machine, and turns the
// machine's requests into calls of the app's async key provider.

import initWasm, { documentChannel, initSync, Machine } from "./wasm/sealcast_wasm.js";
import type {
  CatchUpOutcome,
  ChannelEvent,
  HistoryPage,
  DocumentEvent,
  DocumentOptions,
  KeyGrant,
  KeyRequest,
  MachineEvent,
  MachineTransmit,
  MessageMeta,
  PusherLike,
} from "./types.js";

/** On a channel with history: the position of an event this connection was not sent (docs/history.md). */
const EXCLUDED_EVENT = "pusher_internal:sealcast_excluded";

/** pusher-js's transport connection: its `message` events are the raw frames. */
interface FrameSource {
  bind(event: "message", callback: (frame: { data?: unknown }) => void): unknown;
  unbind(event: "message", callback: (frame: { data?: unknown }) => void): unknown;
}

/** pusher-js's transport connection, for sending: its state and WebSocket. */
interface FrameSink {
  state?: unknown;
  socket?: { send?: (data: string) => void } | null;
}

export * from "./types.js";
export {
  deltaApply,
  deltaCompose,
  deltaInvert,
  deltaTransform,
  deltaTransformPosition,
  deriveKey,
  documentChannel,
  documentKeyFromHint,
  generateKey,
  newDocumentKey,
  openJson,
  sealJson,
} from "./wasm/sealcast_wasm.js";

let loaded: Promise<void> | undefined;

/**
 * Loads the WebAssembly module once. In a browser, with no argument, it is
 * fetched from beside this file (`wasm/sealcast_wasm_bg.wasm`); pass a URL,
 * a `Response` or the bytes to load it from elsewhere (Node: the bytes).
 */
export function loadSealcast(source?: URL | string | Response | BufferSource): Promise<void> {
  if (!loaded) {
    if (source instanceof ArrayBuffer || ArrayBuffer.isView(source)) {
      initSync({ module: source });
      loaded = Promise.resolve();
    } else {
      loaded = initWasm(source === undefined ? undefined : { module_or_path: source }).then(() => undefined);
    }
  }
  return loaded;
}

/**
 * What a key provider throws (or rejects with) when it cannot answer now:
 * its key server is unreachable, the device is offline. The request counts
 * as unanswered, so what waits for the key goes on waiting until the key
 * timeout (a document then asks again) and no document op is skipped for a
 * passing outage. Any other error is a refusal, which is final.
 */
export class KeyUnavailable extends Error {
  constructor(message: string) {
    super(message);
    this.name = "KeyUnavailable";
  }
}

/** An error from the core: `code` is stable (`busy`, `not_subscribed`, `diverged`…). */
export class SealcastError extends Error {
  readonly code: string;
  constructor(code: string, message: string) {
    super(message);
    this.name = "SealcastError";
    this.code = code;
  }
}

/** Runs a machine call, turning its `Error("code: message")` into a SealcastError. */
function call<T>(f: () => T): T {
  try {
    return f();
  } catch (err) {
    const text = err instanceof Error ? err.message : String(err);
    const colon = text.indexOf(": ");
    throw colon > 0 ? new SealcastError(text.slice(0, colon), text.slice(colon + 2)) : new SealcastError("error", text);
  }
}

/** What an app's auth endpoint answers for a channel (Pusher's format). */
export interface ChannelAuthorization {
  auth: string;
  channel_data?: string | null;
}

/**
 * pusher-js's `channelAuthorization` option from an async function (the
 * app calling its own backend): `new Pusher(key, { channelAuthorization:
 * channelAuthorizer(async (socketId, channel) => …) })`.
 */
export function channelAuthorizer(authorize: (socketId: string, channelName: string) => Promise<ChannelAuthorization>) {
  return {
    customHandler: (
      params: { socketId: string; channelName: string },
      callback: (error: Error | null, data: ChannelAuthorization | null) => void,
    ) => {
      authorize(params.socketId, params.channelName).then(
        (authorization) => callback(null, authorization),
        (err: unknown) => callback(err instanceof Error ? err : new Error(String(err)), null),
      );
    },
  };
}

/** The app's source of keys: its own backend (see docs/keys.md). */
export type KeyProvider = (request: KeyRequest) => Promise<KeyGrant>;

export interface SealcastOptions {
  /** Fetches a key the client lacks (asked once per key; events wait meanwhile). */
  keyProvider: KeyProvider;
  /** Most received events held waiting for keys, and most sealed sends waiting (default 1000). */
  maxHeld?: number;
  /** Longest wait for the key provider, ms (default 30000). */
  keyTimeoutMs?: number;
  /** After the provider failed, how long events naming that key fail at once, ms (default 10000). */
  keyRetryAfterMs?: number;
  /** Errors not tied to a channel or document (a failed key fetch, a server error…). */
  onError?: (error: { code: number | null; message: string }) => void;
  /**
   * Send the SDK's own requests (documents, history reads) straight on
   * pusher-js's open WebSocket (default true). pusher-js defers every frame
   * it sends with a zero-delay timer (≥ 1 ms, more in a busy tab); the SDK's
   * requests need no ordering with the app's own pusher-js sends. Client
   * events always go through pusher-js. False: everything through pusher-js
   * (for comparison: docs/benchmarks.md).
   */
  directSend?: boolean;
}

type Listener<T> = (value: T) => void;

/** Listeners per name, called in order; a throwing listener does not stop the others. */
class Listeners<T> {
  private readonly byName = new Map<string, Listener<T>[]>();
  on(name: string, listener: Listener<T>): void {
    const list = this.byName.get(name) ?? [];
    list.push(listener);
    this.byName.set(name, list);
  }
  off(name: string, listener?: Listener<T>): void {
    if (!listener) this.byName.delete(name);
    else this.byName.set(name, (this.byName.get(name) ?? []).filter((l) => l !== listener));
  }
  emit(name: string, value: T): void {
    for (const listener of [...(this.byName.get(name) ?? []), ...(this.byName.get("*") ?? [])]) {
      try {
        listener(value);
      } catch (err) {
        setTimeout(() => {
          throw err;
        });
      }
    }
  }
}

/**
 * sealcast on an app's pusher-js instance. Channels are subscribed through
 * it (`channel(name)`), so it sees their events; pusher-js keeps the
 * connection, authorization and reconnects.
 */
export class SealcastClient {
  private readonly machine: Machine;
  private readonly pusher: PusherLike;
  private readonly options: SealcastOptions;
  private readonly channels = new Map<string, SealedChannel>();
  private readonly documents = new Map<string, SealedDocument>();
  /** The app's history reads waiting for their page, by request id. */
  private readonly historyReads = new Map<string, { resolve: (page: HistoryPage) => void; reject: (err: Error) => void }>();
  private pumping = false;
  private pumpAgain = false;
  private pumpQueued = false;
  private timer: ReturnType<typeof setTimeout> | undefined;
  private closed = false;
  private readonly onMessage = (message: { event: string; channel?: string; data?: unknown; user_id?: string }) =>
    this.handleMessage(message);
  private readonly onStateChange = (states: { current: string }) => {
    if (states.current === "connected") {
      this.tapFrames();
    } else {
      this.machine.handleUnsubscribed(undefined);
      this.pump();
    }
  };
  /** pusher-js's socket of the current connection, when its frames are tapped. */
  private tapped: FrameSource | undefined;
  private readonly onFrame = (frame: { data?: unknown }) => {
    if (typeof frame.data === "string") this.handleFrame(frame.data);
  };

  /** Call `loadSealcast()` first. */
  constructor(pusher: PusherLike, options: SealcastOptions) {
    this.pusher = pusher;
    this.options = options;
    const config = {
      maxHeld: options.maxHeld,
      keyTimeoutMs: options.keyTimeoutMs,
      keyRetryAfterMs: options.keyRetryAfterMs,
    };
    this.machine = call(() => new Machine(JSON.stringify(config)));
    pusher.connection.bind("message", this.onMessage);
    pusher.connection.bind("state_change", this.onStateChange);
    this.tapFrames();
  }

  /** The channel `name` (subscribing through pusher-js on first use). */
  channel(name: string): SealedChannel {
    let channel = this.channels.get(name);
    if (!channel) {
      call(() => this.machine.subscribe(name));
      channel = new SealedChannel(this, name);
      this.channels.set(name, channel);
      this.pump();
    }
    return channel;
  }

  /** Opens an encrypted document (on `private-doc-ID`, or `presence-doc-ID`). */
  openDocument(docId: string, options: DocumentOptions): SealedDocument {
    const existing = this.documents.get(docId);
    if (existing) return existing;
    call(() => this.machine.openDocument(docId, JSON.stringify(options)));
    const doc = new SealedDocument(this, docId, options.presence === true);
    this.documents.set(docId, doc);
    this.pump();
    return doc;
  }

  /** Adds a key version (base64url), e.g. after a rotation. */
  addKey(kid: string, kv: number, key: string): void {
    this.run((m) => m.addKey(kid, kv, key));
  }

  /** Stops listening to pusher-js and frees the machine (pusher-js stays connected). */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    clearTimeout(this.timer);
    this.pusher.connection.unbind("message", this.onMessage);
    this.pusher.connection.unbind("state_change", this.onStateChange);
    this.tapped?.unbind("message", this.onFrame);
    for (const read of this.historyReads.values()) read.reject(new SealcastError("closed", "the client was closed"));
    this.historyReads.clear();
    for (const name of this.channels.keys()) this.pusher.unsubscribe(name);
    this.channels.clear();
    this.documents.clear();
    this.machine.free();
  }

  /** @internal */
  readHistory(name: string, before: number | undefined, limit: number): Promise<HistoryPage> {
    const requestId = this.run((m) => m.readHistory(name, before, limit));
    return new Promise((resolve, reject) => this.historyReads.set(requestId, { resolve, reject }));
  }

  /** @internal A command on the machine; outputs are carried out right after the caller's code. */
  run<T>(f: (machine: Machine) => T): T {
    if (this.closed) throw new SealcastError("closed", "the client was closed");
    const result = call(() => f(this.machine));
    this.schedulePump();
    return result;
  }

  /** @internal */
  forgetChannel(name: string): void {
    this.channels.delete(name);
    this.machine.unsubscribe(name);
    this.pump();
  }

  /** @internal */
  forgetDocument(docId: string): void {
    this.documents.delete(docId);
    this.machine.closeDocument(docId);
    this.pump();
  }

  /**
   * Reads the frames of pusher-js's current connection as the server sent
   * them: pusher-js drops the stream positions (`offset`, `epoch`) of
   * channels with history, which catching up needs. pusher-js has already
   * handled each frame when it arrives here. Without access to its
   * transport (another pusher-js), events come through `message` as
   * before, without positions (no catch-up).
   */
  private tapFrames(): void {
    const source = (this.pusher.connection as { connection?: { transport?: FrameSource } | null }).connection
      ?.transport;
    if (!source || typeof source.bind !== "function" || source === this.tapped) return;
    this.tapped?.unbind("message", this.onFrame);
    this.tapped = source;
    source.bind("message", this.onFrame);
  }

  private handleFrame(text: string): void {
    let frame: { event?: unknown; channel?: unknown; data?: unknown; user_id?: unknown; offset?: unknown; epoch?: unknown };
    try {
      frame = JSON.parse(text);
    } catch {
      return; // pusher-js reports frames it cannot read
    }
    if (typeof frame.event !== "string" || typeof frame.channel !== "string") return;
    let data = frame.data;
    if (typeof data === "string") {
      try {
        data = JSON.parse(data);
      } catch {
        // a plain string, as pusher-js passes it on
      }
    }
    const userId = typeof frame.user_id === "string" ? frame.user_id : undefined;
    const offset = typeof frame.offset === "number" ? frame.offset : undefined;
    const epoch = typeof frame.epoch === "string" ? frame.epoch : undefined;
    this.handleEvent({ event: frame.event, channel: frame.channel, data, user_id: userId }, offset, epoch);
  }

  private handleMessage(message: { event: string; channel?: string; data?: unknown; user_id?: string }): void {
    // With the frames tapped, events arrive through `handleFrame` (with
    // their positions) and the decoded copy is not needed.
    if (this.tapped === undefined) this.handleEvent(message, undefined, undefined);
  }

  private handleEvent(
    message: { event: string; channel?: string; data?: unknown; user_id?: string },
    offset: number | undefined,
    epoch: string | undefined,
  ): void {
    const name = message.channel;
    if (this.closed || name === undefined || !this.tracks(name)) return;
    const event = message.event;
    if (event === "pusher_internal:subscription_succeeded") {
      this.machine.handleSubscribed(name, offset, epoch);
    } else if (event === "pusher:subscription_error") {
      this.channels.get(name)?.emitFailure(message.data);
    } else if (event === EXCLUDED_EVENT || (!event.startsWith("pusher:") && !event.startsWith("pusher_internal:"))) {
      // (EXCLUDED_EVENT: a position this connection skips — its own client
      // event — counted by the machine, never shown to the app.)
      const data = typeof message.data === "string" ? message.data : JSON.stringify(message.data ?? null);
      this.machine.handleChannelEvent(name, event, data, message.user_id, offset, epoch);
    } else {
      return;
    }
    this.pump();
  }

  private tracks(name: string): boolean {
    if (this.channels.has(name)) return true;
    for (const doc of this.documents.values()) if (doc.channelName === name) return true;
    return false;
  }

  private schedulePump(): void {
    if (this.pumpQueued) return;
    this.pumpQueued = true;
    queueMicrotask(() => {
      this.pumpQueued = false;
      this.pump();
    });
  }

  /** Carries out the machine's outputs: transmits, then events, then its timer. */
  private pump(): void {
    if (this.closed) return;
    if (this.pumping) {
      this.pumpAgain = true;
      return;
    }
    this.pumping = true;
    try {
      do {
        this.pumpAgain = false;
        let text: string | undefined;
        while ((text = this.machine.pollTransmit()) !== undefined) this.transmit(JSON.parse(text) as MachineTransmit);
        while ((text = this.machine.pollEvent()) !== undefined) this.dispatch(JSON.parse(text) as MachineEvent);
      } while (this.pumpAgain);
      clearTimeout(this.timer);
      const wait = this.machine.pollTimeout();
      if (wait !== undefined) {
        this.timer = setTimeout(() => {
          if (this.closed) return;
          this.machine.handleTimeout();
          this.pump();
        }, Math.max(0, Math.ceil(wait)));
      }
    } finally {
      this.pumping = false;
    }
  }

  private transmit(t: MachineTransmit): void {
    switch (t.type) {
      case "subscribe": {
        const channel = this.pusher.subscribe(t.channel);
        if (channel.subscribed) this.machine.handleSubscribed(t.channel);
        break;
      }
      case "unsubscribe":
        this.pusher.unsubscribe(t.channel);
        break;
      case "trigger":
        // Client events go through the channel (pusher-js checks the name);
        // the document requests (`sealcast:doc-*`) are sent as they are.
        if (t.event.startsWith("client-")) {
          const channel = this.pusher.channel(t.channel);
          if (channel) channel.trigger(t.event, t.data);
        } else if (!this.sendDirect(t.event, t.data, t.channel)) {
          this.pusher.send_event(t.event, t.data, t.channel);
        }
        break;
    }
  }

  /**
   * Writes one of the SDK's requests on pusher-js's open WebSocket now, as
   * pusher-js would encode it (one JSON frame), skipping its per-frame
   * timer; false when that is off or not possible (then pusher-js sends it).
   */
  private sendDirect(event: string, data: unknown, channel: string | null | undefined): boolean {
    if (this.options.directSend === false) return false;
    const sink = (this.pusher.connection as { connection?: { transport?: FrameSink } | null }).connection?.transport;
    const socket = sink?.state === "open" ? sink.socket : null;
    if (!socket || typeof socket.send !== "function") return false;
    socket.send(JSON.stringify(channel ? { event, data, channel } : { event, data }));
    return true;
  }

  private dispatch(e: MachineEvent): void {
    switch (e.type) {
      case "message":
      case "undecryptable":
        if (e.channel !== null) this.channels.get(e.channel)?.deliver(e);
        break;
      case "subscribed":
        this.channels.get(e.channel)?.emitSubscribed();
        break;
      case "subscriptionFailed":
        this.channels.get(e.channel)?.emitFailure(e);
        break;
      case "document":
        this.documents.get(e.docId)?.deliver(e.event);
        break;
      case "catchUp":
        this.channels.get(e.channel)?.emitCatchUp(e.outcome);
        break;
      case "history": {
        const read = this.historyReads.get(e.requestId);
        this.historyReads.delete(e.requestId);
        if (e.result.type === "page") read?.resolve({ events: e.result.events, more: e.result.more });
        else read?.reject(new SealcastError(e.result.code, e.result.message));
        break;
      }
      case "needKey":
        this.fetchKey(e.request);
        break;
      case "error":
        this.options.onError?.({ code: e.code, message: e.message });
        break;
      // pusher-js owns the connection, its members and its authorization:
      // it reports those itself (and the machine asks for no authorization
      // over an external transport).
      case "state":
      case "memberAdded":
      case "memberRemoved":
      case "needAuthorization":
        break;
      default: {
        // A new event type is a compile error here, never silently dropped.
        const unhandled: never = e;
        return unhandled;
      }
    }
  }

  private fetchKey(request: KeyRequest): void {
    const asked = JSON.stringify(request);
    Promise.resolve()
      .then(() => this.options.keyProvider(request))
      .then(
        (grant) => {
          if (!this.closed) this.machine.handleKey(asked, grant.kv, grant.key, grant.keyHint ?? undefined);
        },
        (err: unknown) => {
          if (this.closed) return;
          const message = err instanceof Error ? err.message : String(err);
          if (err instanceof KeyUnavailable) this.machine.handleKeyUnavailable(asked, message);
          else this.machine.handleKeyError(asked, message);
        },
      )
      .catch((err: unknown) => {
        // A grant that is not a key (bad base64…): report, as a refusal.
        if (!this.closed) this.machine.handleKeyError(asked, err instanceof Error ? err.message : String(err));
      })
      .finally(() => this.pump());
  }
}

/** A channel seen through sealcast: sealed events in and out. */
export class SealedChannel {
  readonly name: string;
  private readonly client: SealcastClient;
  private readonly listeners = new Listeners<ChannelEvent>();

  /** @internal */
  constructor(client: SealcastClient, name: string) {
    this.client = client;
    this.name = name;
  }

  /**
   * Calls `callback(data, meta)` for each `event` (`"*"`: every event), its
   * sealed fields opened. An event whose fields did not open arrives at
   * `bindUndecryptable` instead, never as ciphertext.
   */
  bind(event: string, callback: (data: unknown, meta: MessageMeta) => void): this {
    this.listeners.on(`message:${event}`, (e) => {
      if (e.type === "message") callback(e.data, { event: e.event, userId: e.userId, scope: e.scope });
    });
    return this;
  }

  /** Calls `callback` for each event whose sealed fields could not be opened (wrong or missing key, tampering). */
  bindUndecryptable(callback: (error: { event: string; userId: string | null; code: string; message: string }) => void): this {
    this.listeners.on("undecryptable", (e) => {
      if (e.type === "undecryptable") callback({ event: e.event, userId: e.userId, code: e.code, message: e.message });
    });
    return this;
  }

  /** Calls `callback` each time the subscription succeeds (again after reconnects). */
  bindSubscribed(callback: () => void): this {
    this.listeners.on("subscribed", () => callback());
    return this;
  }

  /** Calls `callback` when the subscription is refused. */
  bindFailure(callback: (error: unknown) => void): this {
    this.listeners.on("failure", (e) => callback(e));
    return this;
  }

  /**
   * On a channel with history (docs/history.md): calls `callback` after
   * each catch-up — after a reconnect or a gap, once the missed events were
   * delivered (in order, once) — with how it went. On `gap` or `failed`,
   * reload the channel's state from your own source.
   */
  bindCatchUp(callback: (outcome: CatchUpOutcome) => void): this {
    this.listeners.on("catchUp", (e) => callback(e as unknown as CatchUpOutcome));
    return this;
  }

  /**
   * A page of this channel's history (docs/history.md), scrolling back:
   * the newest `limit` events (default 50, at most 1,000) before offset
   * `before` (default: the newest), opened. Rejects with a `SealcastError`
   * (`history_off`, `rate_limited`, `not_subscribed`, …) when the server
   * refuses it.
   */
  history(options: { before?: number; limit?: number } = {}): Promise<HistoryPage> {
    return this.client.readHistory(this.name, options.before, options.limit ?? 50);
  }

  /** A plaintext `client-` event. */
  trigger(event: string, data: unknown): void {
    this.client.run((m) => m.trigger(this.name, event, JSON.stringify(data)));
  }

  /**
   * A `client-` event with `paths` (JSON pointers, e.g. `/body`) of `data`
   * sealed for `scope` (`chat:ROOM:MSG`, `call:CALL:EVENT`,
   * `custom:SCOPE:ID:EVENT`) under the current version of key `kid`. When
   * the key is not there yet the event waits for it (in order).
   */
  triggerSealed(event: string, data: unknown, seal: { paths: string[]; kid: string; scope: string }): void {
    this.client.run((m) => m.triggerSealed(this.name, event, JSON.stringify(data), seal.paths, seal.kid, seal.scope));
  }

  /** A chat message: `/body` sealed for `chat:ROOM:MESSAGE_ID` with key id `room`, as `client-chat`. */
  sendChat(room: string, messageId: string, data: { body: unknown } & Record<string, unknown>): void {
    this.client.run((m) => m.sendChat(this.name, room, messageId, JSON.stringify(data)));
  }

  /** A call-signaling event with `/sdp` and `/candidate` sealed, key id `callId`. */
  sendSignal(callId: string, event: string, data: unknown): void {
    this.client.run((m) => m.sendSignal(this.name, callId, event, JSON.stringify(data)));
  }

  /** This user's presence state (typing, cursor…), sealed under `kid`, as `client-presence-state`. */
  sendPresenceState(kid: string, state: unknown): void {
    this.client.run((m) => m.sendPresenceState(this.name, kid, JSON.stringify(state)));
  }

  /** Leaves the channel. */
  unsubscribe(): void {
    this.client.forgetChannel(this.name);
  }

  /** @internal */
  deliver(e: ChannelEvent): void {
    if (e.type === "message") this.listeners.emit(`message:${e.event}`, e);
    else this.listeners.emit("undecryptable", e);
  }

  /** @internal */
  emitSubscribed(): void {
    this.listeners.emit("subscribed", { type: "subscribed" } as unknown as ChannelEvent);
  }

  /** @internal */
  emitFailure(error: unknown): void {
    this.listeners.emit("failure", error as ChannelEvent);
  }

  /** @internal */
  emitCatchUp(outcome: CatchUpOutcome): void {
    this.listeners.emit("catchUp", outcome as unknown as ChannelEvent);
  }
}

/**
 * An encrypted collaborative document. The server orders and stores opaque
 * ops; this client (the core's document client) transforms, checks digests
 * and reports. Edits are Quill deltas against a version the editor shows.
 */
export class SealedDocument {
  readonly docId: string;
  /** `private-doc-ID` or `presence-doc-ID`. */
  readonly channelName: string;
  private readonly client: SealcastClient;
  private readonly listeners = new Listeners<DocumentEvent>();

  /** @internal */
  constructor(client: SealcastClient, docId: string, presence: boolean) {
    this.client = client;
    this.docId = docId;
    this.channelName = documentChannel(docId, presence);
  }

  /** Listens for one kind of document event (`ready`, `remoteChange`, `cursor`, `diverged`…) or `"*"`. */
  on<K extends DocumentEvent["type"] | "*">(
    type: K,
    listener: (event: K extends "*" ? DocumentEvent : Extract<DocumentEvent, { type: K }>) => void,
  ): this {
    this.listeners.on(type, listener as Listener<DocumentEvent>);
    return this;
  }

  /** Removes a listener added with `on`. */
  off(type: DocumentEvent["type"] | "*", listener: (event: never) => void): this {
    this.listeners.off(type, listener as Listener<DocumentEvent>);
    return this;
  }

  /**
   * The user changed the view at `version` (the version of the last `ready`
   * or `remoteChange` the editor applied) by `change` (a Quill delta).
   * Returns the version the editor is at now; a `remoteChange` based on it
   * follows when the SDK's view had moved on meanwhile.
   */
  edit(version: number, change: unknown): number {
    return this.client.run((m) => m.editDocument(this.docId, version, JSON.stringify(change)));
  }

  /** Undoes the user's newest change (arrives as a `remoteChange`); false when there is none. */
  undo(): boolean {
    return this.client.run((m) => m.undoDocument(this.docId));
  }

  /** Redoes the newest undone change. */
  redo(): boolean {
    return this.client.run((m) => m.redoDocument(this.docId));
  }

  /** Shares this user's selection with the others (sealed). */
  cursor(index: number, length: number): void {
    this.client.run((m) => m.documentCursor(this.docId, index, length));
  }

  /** The document as this user sees it, and its version. */
  view(): { view: { ops: unknown[] }; version: number } {
    return JSON.parse(this.client.run((m) => m.documentView(this.docId)));
  }

  /** True once joined and not diverged. */
  get ready(): boolean {
    return this.client.run((m) => m.documentReady(this.docId));
  }

  /** True while this user's edits await the server's acknowledgement. */
  get hasPending(): boolean {
    return this.client.run((m) => m.documentHasPending(this.docId));
  }

  /** After `diverged`: reloads the document from the server. */
  restart(): void {
    this.client.run((m) => m.restartDocument(this.docId));
  }

  /** Closes the document and leaves its channel. */
  close(): void {
    this.client.forgetDocument(this.docId);
  }

  /** @internal */
  deliver(event: DocumentEvent): void {
    this.listeners.emit(event.type, event);
  }
}
