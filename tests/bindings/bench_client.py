"""Python receiver for scripts/bench/client-ffi.sh: the same measurement as
examples/client_bench.rs (receiver role), through the uniffi binding.
Usage: bench_client.py BINDINGS_DIR PORT COUNT"""

import json
import sys
import threading
import time

sys.path.insert(0, sys.argv[1])
import sealcast as s  # noqa: E402

PORT, COUNT = int(sys.argv[2]), int(sys.argv[3])


class Fixed(s.Authorizer, s.KeyProvider):
    def authorize(self, socket_id, channel):
        return s.ChannelAuthorization(auth=s.sign_channel_auth("bench-key", "bench-secret", socket_id, channel, None), channel_data=None)

    def key(self, request):
        return s.KeyGrant(kv=1, key=bytes([1] * 32))


class Receiver(s.ClientListener):
    def __init__(self):
        self.subscribed = threading.Event()
        self.done = threading.Event()
        self.received = 0
        self.cpu_start = 0.0

    def on_subscribed(self, channel):
        self.subscribed.set()

    def on_message(self, channel, event, data_json, user_id, scope):
        if event != "client-chat":
            return
        assert len(json.loads(data_json)["body"]) == 200
        self.received += 1
        if self.received == 1000:
            self.cpu_start = time.process_time()
        if self.received == COUNT:
            self.cpu_end = time.process_time()
            self.done.set()

    def on_state(self, state): pass
    def on_subscription_failed(self, channel, status, message): pass
    def on_undecryptable(self, channel, event, user_id, code, message): pass
    def on_member_added(self, channel, member): pass
    def on_member_removed(self, channel, member): pass
    def on_error(self, code, message): pass
    def on_document(self, doc_id, event): pass
    def on_catch_up(self, channel, outcome): pass
    def on_history(self, channel, request_id, result): pass


receiver = Receiver()
fixed = Fixed()
client = s.SealcastClient(f"ws://127.0.0.1:{PORT}", "bench-key", fixed, fixed, receiver)
client.subscribe("private-bench")
assert receiver.subscribed.wait(10)
print("ready", flush=True)
assert receiver.done.wait(120), f"received only {receiver.received}"
per_event = (receiver.cpu_end - receiver.cpu_start) * 1e6 / (COUNT - 1000)
body = json.dumps({"body": "x" * 200})
calls = 5000
started = time.perf_counter()
for n in range(calls):
    client.send_chat("private-bench", "room", f"s-{n}", body)
per_call = (time.perf_counter() - started) * 1e6 / calls
print(f"python: receive {per_event:.1f} us cpu/event, send {per_call:.1f} us/call")
del client
time.sleep(0.5)
