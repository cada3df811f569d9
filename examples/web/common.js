// What both demo pages share: connect pusher-js (unchanged, from its own
// bundle) to the realtime server, with the example auth server as the
// channel authorizer and key provider, and put sealcast on top.
import { KeyUnavailable, loadSealcast, SealcastClient } from "./sealcast/index.js";

/** The page's query parameter `name`, or `fallback`. */
export function param(name, fallback) {
  return new URLSearchParams(location.search).get(name) || fallback;
}

/**
 * GETs JSON from the auth server. A 4xx answer is a refusal (no such key,
 * or not this user's); a network failure or a 5xx is retried a few times
 * (0.5 s, 1 s, 2 s, 4 s), then reported as `KeyUnavailable`, which counts
 * as no answer yet rather than a refusal (a refused document key version
 * skips the op that named it; docs/keys.md).
 */
async function getJson(path) {
  for (let attempt = 0; ; attempt++) {
    let failure;
    try {
      const answer = await fetch(path);
      if (answer.ok) return answer.json();
      failure = new Error(`the key server answered ${answer.status}`);
      if (answer.status < 500) throw failure;
    } catch (err) {
      if (err === failure) throw err;
      failure = err;
    }
    if (attempt >= 4) throw new KeyUnavailable(String(failure?.message ?? failure));
    await new Promise((resolve) => setTimeout(resolve, 500 * 2 ** attempt));
  }
}

/**
 * The app's key provider (docs/keys.md): room keys by key id; document keys
 * per document session, a new one when the server has recorded no session
 * yet (`keyHint: null`), whose hint the server then records for everyone.
 */
async function keyProvider(request) {
  if (request.docId !== null) {
    const hint = request.keyHint === null ? "" : `&key_hint=${encodeURIComponent(request.keyHint)}`;
    const answer = await getJson(`/doc-key?doc_id=${encodeURIComponent(request.docId)}${hint}`);
    return { kv: answer.kv, key: answer.key, keyHint: answer.key_hint };
  }
  const kv = request.kv === null ? "" : `&kv=${request.kv}`;
  return getJson(`/keys?kid=${encodeURIComponent(request.kid)}${kv}`);
}

/** Connects as `user`; resolves to { pusher, client } once connected. */
export async function connect(user) {
  const [config] = await Promise.all([fetch("/config.json").then((r) => r.json()), loadSealcast()]);
  const pusher = new Pusher(config.appKey, {
    wsHost: config.wsHost,
    wsPort: config.wsPort,
    forceTLS: false,
    enabledTransports: ["ws"],
    disableStats: true,
    cluster: "local",
    // The app's own auth endpoint decides who may join which channel.
    channelAuthorization: { endpoint: "/auth", transport: "ajax", params: { user_id: user } },
  });
  const client = new SealcastClient(pusher, {
    keyProvider,
    onError: (error) => console.warn("sealcast:", error.message),
  });
  await new Promise((resolve) => {
    if (pusher.connection.state === "connected") resolve();
    else pusher.connection.bind("connected", resolve);
  });
  return { pusher, client };
}
