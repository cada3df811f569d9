// A child process for Main.kt's exit test: two clients exchange sealed
// chat events, then the JVM exits with them in the state MODE names
// ("live": untouched, events in flight; "close": closed first). The
// parent checks that the process ends by itself with status 0.

import io.sealcast.*

fun exitChild(port: String, channel: String, mode: String) {
    val url = "ws://127.0.0.1:$port"
    val keys = Keys(mapOf(("room" to 1u) to key(1)))
    val a = SealcastClient(url, APP_KEY, Auth("a"), keys, Inbox())
    val b = SealcastClient(url, APP_KEY, Auth("b"), keys, Inbox())
    a.subscribe(channel)
    b.subscribe(channel)
    Thread.sleep(300)
    for (i in 0 until 40) b.sendChat(channel, "room", "x-$i", """{"body":"$i"}""")
    Thread.sleep(50)
    if (mode == "close") {
        a.close()
        b.close()
    }
    // Returning from main: the JVM must exit (no SDK thread may keep it
    // alive or crash it).
}
