//! The queue's bounds, batching, hand-offs and close, against real sockets.

use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpStream};

use super::fanout::FANOUT_CHUNK;
use super::*;
use crate::ws::frame::{CLOSE, encode_close};
use std::time::Duration;

fn limits(frames: usize, bytes: usize) -> QueueLimits {
    QueueLimits { frames, bytes }
}

/// A handle writing into a loopback socket, and the socket's peer.
async fn connected(limits: QueueLimits) -> (ConnHandle, watch::Receiver<CloseRequest>, TcpStream) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let peer = TcpStream::connect(listener.local_addr().unwrap()).await.unwrap();
    let (server, _) = listener.accept().await.unwrap();
    let (_read, write) = server.into_split();
    let (handle, close) = ConnHandle::new("1.1".into(), Some(Socket::Tcp(write)), limits);
    (handle, close, peer)
}

/// A handle writing into a TLS connection over loopback, and the TLS
/// client on the other end.
async fn connected_tls(
    limits: QueueLimits,
) -> (ConnHandle, watch::Receiver<CloseRequest>, tokio_rustls::client::TlsStream<TcpStream>) {
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
    let pair = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let cert = CertificateDer::from(pair.cert.der().to_vec());
    let key = PrivateKeyDer::Pkcs8(pair.signing_key.serialize_der().into());
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let server_config = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert.clone()], key)
        .unwrap();
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert).unwrap();
    let client_config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let tcp = TcpStream::connect(listener.local_addr().unwrap()).await.unwrap();
    let (server, _) = listener.accept().await.unwrap();
    let connector = tokio_rustls::TlsConnector::from(std::sync::Arc::new(client_config));
    let acceptor = tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(server_config));
    let name = ServerName::try_from("localhost").unwrap();
    let (client, server) = tokio::join!(connector.connect(name, tcp), acceptor.accept(server));
    let (_read, write) = tokio::io::split(server.unwrap());
    let socket = Socket::Tls(tokio::sync::Mutex::new(write));
    let (handle, close) = ConnHandle::new("1.1".into(), Some(socket), limits);
    (handle, close, client.unwrap())
}

/// Reads one server frame: (opcode, payload).
async fn read_frame<S: tokio::io::AsyncRead + Unpin>(peer: &mut S) -> (u8, Vec<u8>) {
    let mut head = [0u8; 2];
    peer.read_exact(&mut head).await.unwrap();
    let len = match head[1] {
        126 => usize::from(peer.read_u16().await.unwrap()),
        127 => peer.read_u64().await.unwrap() as usize,
        n => usize::from(n),
    };
    let mut payload = vec![0; len];
    peer.read_exact(&mut payload).await.unwrap();
    (head[0] & 0x0f, payload)
}

#[test]
fn over_the_byte_bound_closes_as_slow_consumer() {
    let metrics = Metrics::default();
    let (conn, close) = ConnHandle::new("1.1".into(), None, limits(100, 1000));
    assert!(conn.send(Bytes::from(vec![b'x'; 600]), &metrics));
    assert!(!conn.send(Bytes::from(vec![b'x'; 600]), &metrics));
    assert_eq!(*close.borrow(), Some((codes::OVER_CAPACITY, "slow consumer: outbound bytes over the limit")));
    assert_eq!(conn.queued_bytes(), 600);
    assert_eq!(metrics.slow_consumers.get(), 1);
}

#[test]
fn over_the_frame_bound_closes_as_slow_consumer() {
    let metrics = Metrics::default();
    let (conn, close) = ConnHandle::new("1.1".into(), None, limits(2, 1 << 20));
    for _ in 0..2 {
        assert!(conn.send(Bytes::from_static(b"{}"), &metrics));
    }
    assert!(!conn.send(Bytes::from_static(b"{}"), &metrics));
    assert_eq!(*close.borrow(), Some((codes::OVER_CAPACITY, "slow consumer: outbound queue full")));
    assert_eq!(conn.queued_bytes(), 4);
}

#[tokio::test]
async fn an_idle_connection_is_written_by_the_sender_without_its_task() {
    let metrics = Metrics::default();
    let (conn, _close, mut peer) = connected(limits(10, 1000)).await;
    assert!(conn.send(Bytes::from_static(b"{\"a\":1}"), &metrics));
    assert!(conn.queue(Outbound::Pong(Bytes::from_static(b"p")), &metrics));
    // No writer task runs: the bytes came from the senders' calls.
    let mut got = [0u8; 12];
    peer.read_exact(&mut got).await.unwrap();
    assert_eq!(&got, b"\x81\x07{\"a\":1}\x8a\x01p");
    assert_eq!(conn.queued_bytes(), 0);
    assert_eq!(conn.lock().writer, Writer::Idle);
}

#[tokio::test]
async fn a_full_socket_hands_the_rest_to_the_writer_task_in_order() {
    let metrics = Metrics::default();
    let (conn, close, mut peer) = connected(limits(100_000, 64 << 20)).await;
    // The peer reads nothing until the socket is full and frames are
    // cut and queued.
    let mut sent = 0u32;
    while conn.lock().writer != Writer::Task {
        let mut frame = format!("{sent}:").into_bytes();
        frame.resize(1000 + (sent as usize * 7) % 300, b'x');
        assert!(conn.send(Bytes::from(frame), &metrics));
        sent += 1;
        assert!(sent < 50_000, "the socket never filled");
    }
    let more = sent + 100;
    for n in sent..more {
        assert!(conn.send(Bytes::from(format!("{n}:")), &metrics));
    }
    assert!(conn.queued_bytes() > 0);
    let writer = tokio::spawn(write_loop(conn.clone(), close));
    for n in 0..more {
        let (opcode, payload) = read_frame(&mut peer).await;
        assert_eq!(opcode, TEXT);
        assert!(payload.starts_with(format!("{n}:").as_bytes()), "frame {n} out of order or cut");
    }
    conn.close(4009, "bye");
    let (opcode, payload) = read_frame(&mut peer).await;
    assert_eq!((opcode, &payload[..2]), (CLOSE, &4009u16.to_be_bytes()[..]));
    assert_eq!(&payload[2..], b"bye");
    writer.await.unwrap();
    // FIN after the close frame.
    assert_eq!(peer.read(&mut [0u8; 16]).await.unwrap(), 0);
}

#[tokio::test]
async fn a_close_writes_what_is_queued_then_the_close_frame() {
    let metrics = Metrics::default();
    let (conn, close, mut peer) = connected(limits(10, 1000)).await;
    let writer = tokio::spawn(write_loop(conn.clone(), close));
    conn.send(Bytes::from_static(b"first"), &metrics);
    conn.close(4100, "slow");
    assert_eq!(read_frame(&mut peer).await, (TEXT, b"first".to_vec()));
    assert_eq!(read_frame(&mut peer).await.0, CLOSE);
    writer.await.unwrap();
    // After the close nobody writes: a frame only waits in the queue.
    assert!(conn.send(Bytes::from_static(b"late"), &metrics));
    assert_eq!(peer.read(&mut [0u8; 16]).await.unwrap(), 0);
}

#[tokio::test]
async fn a_fanout_writes_after_it_is_done_queueing() {
    let metrics = Metrics::default();
    let mut peers = Vec::new();
    let mut fanout = Fanout::default();
    for _ in 0..(FANOUT_CHUNK * 2 + 3) {
        let (conn, _close, peer) = connected(limits(10, 1000)).await;
        assert!(fanout.push(&conn, Bytes::from_static(b"event"), &metrics));
        // Queued, not written yet.
        assert_eq!(conn.queued_bytes(), 5);
        peers.push((conn, peer));
    }
    fanout.write();
    for (_conn, peer) in &mut peers {
        assert_eq!(read_frame(peer).await, (TEXT, b"event".to_vec()));
    }
}

#[test]
fn a_cut_frame_is_resumed_where_the_socket_stopped() {
    let (conn, _close) = ConnHandle::new("1.1".into(), None, limits(10, 1000));
    let metrics = Metrics::default();
    for payload in [&b"abc"[..], b"defgh"] {
        assert!(conn.send(Bytes::copy_from_slice(payload), &metrics));
    }
    let mut queue = conn.lock();
    let mut batch = Batch::default();
    batch.take(&queue);
    // The socket took the first frame (2 + 3 bytes) and 3 bytes of the
    // second: its 2-byte header and "d".
    batch.written(&mut queue, 5 + 3);
    assert_eq!((queue.frames.len(), queue.front_written, queue.bytes), (1, 3, 5));
    let mut rest = Batch::default();
    rest.take(&queue);
    let mut slices = [IoSlice::new(&[]); 2 * MAX_BATCH_FRAMES];
    let count = rest.slices(&mut slices);
    let bytes: Vec<u8> = slices[..count].iter().flat_map(|s| s.to_vec()).collect();
    assert_eq!(bytes, b"efgh");
}

#[test]
fn one_writev_offers_at_most_max_write_bytes() {
    let (conn, _close) = ConnHandle::new("1.1".into(), None, limits(10, 1 << 20));
    let metrics = Metrics::default();
    assert!(conn.send(Bytes::from(vec![b'x'; 200 * 1024]), &metrics));
    let queue = conn.lock();
    let mut batch = Batch::default();
    batch.take(&queue);
    let mut slices = [IoSlice::new(&[]); 2 * MAX_BATCH_FRAMES];
    let count = batch.slices(&mut slices);
    assert_eq!(slices[..count].iter().map(|s| s.len()).sum::<usize>(), MAX_WRITE_BYTES);
}

#[tokio::test]
async fn a_large_frame_arrives_whole_in_several_turns() {
    let metrics = Metrics::default();
    let (conn, close, mut peer) = connected(limits(10, 4 << 20)).await;
    let writer = tokio::spawn(write_loop(conn.clone(), close));
    let big: Vec<u8> = (0..(1 << 20)).map(|i| (i % 251) as u8).collect();
    assert!(conn.send(Bytes::from(big.clone()), &metrics));
    assert!(conn.send(Bytes::from_static(b"after"), &metrics));
    assert_eq!(read_frame(&mut peer).await, (TEXT, big));
    assert_eq!(read_frame(&mut peer).await, (TEXT, b"after".to_vec()));
    conn.close(1000, "");
    writer.await.unwrap();
}

#[test]
fn close_reasons_fit_a_control_frame() {
    let mut out = Vec::new();
    encode_close(&mut out, 4100, &"é".repeat(100));
    assert!(out.len() <= 2 + 125 && out[1] as usize == out.len() - 2);
    assert!(std::str::from_utf8(&out[4..]).is_ok());
}

#[tokio::test]
async fn over_tls_the_writer_task_writes_everything_in_order_then_closes() {
    let metrics = Metrics::default();
    let (conn, close, mut peer) = connected_tls(limits(100_000, 64 << 20)).await;
    let writer = tokio::spawn(write_loop(conn.clone(), close));
    // Far more than the socket and rustls's buffer hold while the peer
    // does not read: the writer waits, senders only queue.
    let mut fanout = Fanout::default();
    for n in 0..3000u32 {
        let mut frame = format!("{n}:").into_bytes();
        frame.resize(500 + (n as usize * 7) % 300, b'x');
        if n % 2 == 0 {
            assert!(conn.send(Bytes::from(frame), &metrics));
        } else {
            assert!(fanout.push(&conn, Bytes::from(frame), &metrics));
        }
    }
    fanout.write();
    assert!(conn.queue(Outbound::Pong(Bytes::from_static(b"p")), &metrics));
    for n in 0..3000u32 {
        let (opcode, payload) = read_frame(&mut peer).await;
        assert_eq!(opcode, TEXT);
        assert!(payload.starts_with(format!("{n}:").as_bytes()), "frame {n} out of order or cut");
    }
    assert_eq!(read_frame(&mut peer).await, (PONG, b"p".to_vec()));
    conn.close(4009, "bye");
    let (opcode, payload) = read_frame(&mut peer).await;
    assert_eq!((opcode, &payload[..2]), (CLOSE, &4009u16.to_be_bytes()[..]));
    writer.await.unwrap();
    // close_notify, then the end of the stream.
    assert_eq!(peer.read(&mut [0u8; 16]).await.unwrap(), 0);
    assert_eq!(conn.queued_bytes(), 0);
}

#[tokio::test]
async fn over_tls_a_close_while_the_peer_does_not_read_cuts_no_frame() {
    let metrics = Metrics::default();
    let (conn, close, mut peer) = connected_tls(limits(100_000, 64 << 20)).await;
    let writer = tokio::spawn(write_loop(conn.clone(), close));
    for n in 0..20_000u32 {
        let mut frame = format!("{n}:").into_bytes();
        frame.resize(1000, b'y');
        assert!(conn.send(Bytes::from(frame), &metrics));
    }
    // Let the writer fill the socket and wait, then ask it to close.
    while conn.queued_bytes() == 20_000 * 1000 {
        tokio::task::yield_now().await;
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    conn.close(4100, "slow");
    // Every frame the peer gets is whole and in order, then the close.
    let mut next = 0u32;
    loop {
        let (opcode, payload) = read_frame(&mut peer).await;
        if opcode == CLOSE {
            assert_eq!(&payload[..2], &4100u16.to_be_bytes()[..]);
            break;
        }
        assert_eq!(opcode, TEXT);
        assert!(payload.starts_with(format!("{next}:").as_bytes()), "frame {next} out of order or cut");
        assert_eq!(payload.len(), 1000);
        next += 1;
    }
    assert!(next < 20_000, "the close came after the whole queue: the socket never filled");
    writer.await.unwrap();
}
