// End-to-end-encrypted chat in the browser: each message's body is sealed
// for `chat:ROOM:MESSAGE_ID` before pusher-js sends it; the server relays
// ciphertext. Same channel and scope as the Rust `chat` example, so the
// two talk to each other. `/chat.html?room=ID&user=NAME`.
import { connect, param } from "./common.js";

const room = param("room", "lobby");
const user = param("user", `guest-${Math.floor(Math.random() * 1000)}`);
const list = document.getElementById("messages");
const input = document.getElementById("message");
const status = document.getElementById("status");
document.getElementById("room").textContent = `${room} as ${user}`;

/** One element per message; its text is the plaintext. */
function show(text, from, kind = "message") {
  const item = document.createElement("li");
  item.className = kind;
  item.dataset.user = from;
  item.title = from;
  item.textContent = text;
  list.append(item);
}

const { client } = await connect(user);
const channel = client.channel(`presence-chat-${room}`);
channel.bind("client-chat", (data, meta) => show(String(data.body), meta.userId ?? "?"));
channel.bindUndecryptable((error) => show(`a message from ${error.userId ?? "?"} did not open (${error.code})`, error.userId ?? "?", "undecryptable"));
channel.bindSubscribed(() => {
  status.textContent = "connected; messages are end-to-end encrypted";
  input.disabled = false;
  input.focus();
});
channel.bindFailure(() => (status.textContent = "the server refused this channel"));
// After a reconnect the messages sent meanwhile arrive first (the server
// keeps the chat's history), then this says whether any were lost.
channel.bindCatchUp((outcome) => {
  if (outcome.type === "complete") {
    if (outcome.events > 0) show(`caught up: ${outcome.events} message(s) sent while you were away`, "sealcast", "notice");
  } else {
    show("some messages sent while you were away could not be recovered: reload the page", "sealcast", "notice");
  }
});

let sent = 0;
input.addEventListener("keydown", (event) => {
  if (event.key !== "Enter" || !input.value) return;
  const body = input.value;
  const id = `${user}-${Date.now()}-${sent++}`;
  try {
    channel.sendChat(room, id, { body, id });
    show(body, user, "message own");
    input.value = "";
  } catch (err) {
    status.textContent = `not sent: ${err.message}`;
  }
});
