
# --- sealcast: appended to the generated module by scripts/bindings.sh ---
# A process that exits with a client alive must not abort. While the
# interpreter finalizes, a native thread that calls into Python (an event
# for a listener, or freeing a listener object) is terminated by the
# interpreter, which aborts the process ("FATAL: exception not rethrown").
# So every live client is closed by an atexit handler, which runs before
# finalization: `shutdown()` returns only once no SDK thread will call into
# Python again. `close()` is its Pythonic alias.
import atexit as _sealcast_atexit
import weakref as _sealcast_weakref

_sealcast_live_clients = _sealcast_weakref.WeakSet()
_sealcast_client_init = SealcastClient.__init__


def _sealcast_tracked_init(self, *args, **kwargs):
    _sealcast_client_init(self, *args, **kwargs)
    _sealcast_live_clients.add(self)


SealcastClient.__init__ = _sealcast_tracked_init
SealcastClient.close = SealcastClient.shutdown


@_sealcast_atexit.register
def _sealcast_close_live_clients():
    for live in list(_sealcast_live_clients):
        try:
            live.shutdown()
        except Exception:  # noqa: BLE001 - closing at exit must not raise
            pass
