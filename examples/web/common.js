// What both demo pages share: connect pusher-js (unchanged, from its own
// bundle) to the realtime server, with the example auth server as the
// channel authorizer and key provider, and put sealcast on top.
import { loadSealcast, SealcastClient } from "./sealcast/index.js";

/** The page's query parameter `name`, or `fallback`. */
export function param(name, fallback) {
  return new URLSearchParams(location.search).get(name) || fallback;
}

/** The app's key provider: its backend hands out keys by key id (docs/keys.md). */
async function keyProvider(request) {
  const kv = request.kv === null ? "" : `&kv=${request.kv}`;
  const answer = await fetch(`/keys?kid=${encodeURIComponent(request.kid)}${kv}`);
  if (!answer.ok) throw new Error(`the key server answered ${answer.status}`);
  return answer.json();
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
