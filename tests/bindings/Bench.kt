// Kotlin receiver for scripts/bench/client-ffi.sh: the same measurement as
// examples/client_bench.rs (receiver role), through the uniffi binding.
// Args: PORT COUNT.

import io.sealcast.*
import java.lang.management.ManagementFactory
import java.util.concurrent.CountDownLatch
import java.util.concurrent.TimeUnit

fun processCpuNanos(): Long =
    (ManagementFactory.getOperatingSystemMXBean() as com.sun.management.OperatingSystemMXBean).processCpuTime

class Fixed : Authorizer, KeyProvider {
    override fun authorize(socketId: String, channel: String) =
        ChannelAuthorization(signChannelAuth("bench-key", "bench-secret", socketId, channel, null), null)
    override fun key(request: KeyRequest) = KeyGrant(1u, ByteArray(32) { 1 })
}

class Receiver(private val count: Int) : ClientListener {
    val subscribed = CountDownLatch(1)
    val done = CountDownLatch(1)
    @Volatile var received = 0
    @Volatile var cpuStart = 0L
    @Volatile var cpuEnd = 0L

    override fun onSubscribed(channel: String) = subscribed.countDown()
    override fun onMessage(channel: String?, event: String, dataJson: String, userId: String?, scope: String?) {
        if (event != "client-chat") return
        check(dataJson.length > 200)
        received++
        if (received == 1000) cpuStart = processCpuNanos()
        if (received == count) {
            cpuEnd = processCpuNanos()
            done.countDown()
        }
    }
    override fun onState(state: ConnectionState) {}
    override fun onSubscriptionFailed(channel: String, status: UShort?, message: String) {}
    override fun onUndecryptable(channel: String?, event: String, userId: String?, code: String, message: String) {}
    override fun onMemberAdded(channel: String, member: PresenceMember) {}
    override fun onMemberRemoved(channel: String, member: PresenceMember) {}
    override fun onError(code: UShort?, message: String) {}
    override fun onDocument(docId: String, event: DocumentEvent) {}
    override fun onCatchUp(channel: String, outcome: CatchUp) {}
    override fun onHistory(channel: String, requestId: String, result: HistoryResult) {}
}

fun main(args: Array<String>) {
    val count = args[1].toInt()
    val receiver = Receiver(count)
    val fixed = Fixed()
    val client = SealcastClient("ws://127.0.0.1:${args[0]}", "bench-key", fixed, fixed, receiver)
    client.subscribe("private-bench")
    check(receiver.subscribed.await(10, TimeUnit.SECONDS))
    println("ready")
    System.out.flush()
    check(receiver.done.await(120, TimeUnit.SECONDS)) { "received only ${receiver.received}" }
    val perEvent = (receiver.cpuEnd - receiver.cpuStart) / 1000.0 / (count - 1000)
    val body = "{\"body\":\"${"x".repeat(200)}\"}"
    val calls = 5000
    val started = System.nanoTime()
    for (n in 0 until calls) client.sendChat("private-bench", "room", "s-$n", body)
    val perCall = (System.nanoTime() - started) / 1000.0 / calls
    println("kotlin: receive ${"%.1f".format(perEvent)} us cpu/event, send ${"%.1f".format(perCall)} us/call")
    client.destroy()
    Thread.sleep(300)
    kotlin.system.exitProcess(0)
}
