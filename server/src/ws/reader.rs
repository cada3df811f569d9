//! Reading client WebSocket messages (RFC 6455 §5) within a byte budget.
//!
//! The reader is ours rather than the WebSocket library's because the
//! budget must hold across fragments: a message is refused as soon as the
//! fragments received so far plus the next frame's declared length pass
//! `max_message_bytes`, before that frame's payload is buffered. It also
//! enforces what a server must (client frames are masked, text is UTF-8,
//! control frames are short and unfragmented), each violation a typed
//! [`ReadError`] with the close code the peer gets.
//!
//! [`MessageReader::decode`] is sans-IO (bytes in, messages out: the fuzz
//! target drives it directly); [`MessageReader::read`] feeds it from a
//! socket.

use bytes::{Buf, Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt};

use super::frame::{BINARY, BadHeader, CLOSE, CONTINUATION, PING, PONG, TEXT, parse_head, unmask};

/// A complete client message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// A text message (whole, valid UTF-8).
    Text(Bytes),
    /// A binary message (not part of the Pusher protocol).
    Binary,
    /// A WebSocket ping with its payload (answered with a pong).
    Ping(Bytes),
    /// A WebSocket pong.
    Pong,
    /// The client closes.
    Close,
}

/// Why a connection's input was refused; each maps to a close code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ReadError {
    /// The message (all its fragments) is larger than the budget: 1009.
    #[error("message larger than {0} bytes")]
    TooBig(usize),
    /// A framing rule was broken: 1002.
    #[error("protocol error: {0}")]
    Protocol(&'static str),
    /// A text message is not UTF-8: 1007.
    #[error("text message is not valid UTF-8")]
    InvalidUtf8,
}

impl ReadError {
    /// The WebSocket close code for this error.
    pub fn close_code(self) -> u16 {
        match self {
            ReadError::TooBig(_) => 1009,
            ReadError::Protocol(_) => 1002,
            ReadError::InvalidUtf8 => 1007,
        }
    }

    /// The close reason sent with the code.
    pub fn close_reason(self) -> &'static str {
        match self {
            ReadError::TooBig(_) => "message too big",
            ReadError::Protocol(reason) => reason,
            ReadError::InvalidUtf8 => "invalid UTF-8 in a text message",
        }
    }
}

/// Bytes a socket read asks for at a time; also the buffer an idle
/// connection keeps.
const READ_CHUNK: usize = 4096;
/// A buffer grown past this for one large message is released afterwards.
const KEEP_CAPACITY: usize = 64 * 1024;

/// Turns a byte stream into [`Message`]s, holding at most one message's
/// worth of input (plus one frame header and one read).
#[derive(Debug)]
pub struct MessageReader {
    max_message_bytes: usize,
    buffer: BytesMut,
    /// The message being assembled from fragments: (is text, bytes so far).
    fragments: Option<(bool, BytesMut)>,
}

impl MessageReader {
    /// A reader refusing messages over `max_message_bytes`.
    pub fn new(max_message_bytes: usize) -> MessageReader {
        MessageReader { max_message_bytes, buffer: BytesMut::new(), fragments: None }
    }

    /// Bytes received and not yet returned as a message.
    pub fn buffered(&self) -> usize {
        self.buffer.len() + self.fragments.as_ref().map_or(0, |(_, f)| f.len())
    }

    /// Appends received bytes (the sans-IO entry; [`MessageReader::read`]
    /// reads straight into the buffer instead).
    pub fn push(&mut self, bytes: &[u8]) {
        self.buffer.extend_from_slice(bytes);
    }

    /// Reads from `stream` until a whole message is decoded. `Ok(None)`:
    /// the stream ended (cleanly between messages or not).
    pub async fn read<R: AsyncRead + Unpin>(&mut self, stream: &mut R) -> Result<Option<Message>, ReadError> {
        loop {
            if let Some(message) = self.decode()? {
                if self.buffer.is_empty() && self.buffer.capacity() > KEEP_CAPACITY {
                    self.buffer = BytesMut::new();
                }
                return Ok(Some(message));
            }
            self.buffer.reserve(READ_CHUNK);
            match stream.read_buf(&mut self.buffer).await {
                Ok(0) | Err(_) => return Ok(None),
                Ok(_) => {}
            }
        }
    }

    /// Decodes the next message from what was received, `Ok(None)` when more
    /// bytes are needed. After an error the connection must be closed.
    pub fn decode(&mut self) -> Result<Option<Message>, ReadError> {
        loop {
            let Some(head) = parse_head(&self.buffer).map_err(|BadHeader(why)| ReadError::Protocol(why))?
            else {
                return Ok(None);
            };
            let control = head.opcode & 0x8 != 0;
            if control {
                if !head.fin {
                    return Err(ReadError::Protocol("fragmented control frame"));
                }
                if head.len > 125 {
                    return Err(ReadError::Protocol("control frame longer than 125 bytes"));
                }
            } else {
                let so_far = self.fragments.as_ref().map_or(0, |(_, f)| f.len());
                if head.len.saturating_add(so_far as u64) > self.max_message_bytes as u64 {
                    return Err(ReadError::TooBig(self.max_message_bytes));
                }
            }
            // The length is within the budget (or ≤ 125), so it fits a usize.
            let len = head.len as usize;
            if self.buffer.len() < head.head_len + len {
                // Room for the rest of this frame, bounded by the check above.
                self.buffer.reserve(head.head_len + len - self.buffer.len());
                return Ok(None);
            }
            self.buffer.advance(head.head_len);
            let mut payload = self.buffer.split_to(len);
            unmask(&mut payload, head.mask);
            match (head.opcode, &mut self.fragments) {
                (PING, _) => return Ok(Some(Message::Ping(payload.freeze()))),
                (PONG, _) => return Ok(Some(Message::Pong)),
                (CLOSE, _) => {
                    if payload.len() == 1 {
                        return Err(ReadError::Protocol("close frame with a 1-byte payload"));
                    }
                    if payload.len() > 2 && std::str::from_utf8(&payload[2..]).is_err() {
                        return Err(ReadError::InvalidUtf8);
                    }
                    return Ok(Some(Message::Close));
                }
                (TEXT | BINARY, Some(_)) => {
                    return Err(ReadError::Protocol("new message before the last one finished"));
                }
                (TEXT | BINARY, None) if head.fin => return finish(head.opcode == TEXT, payload).map(Some),
                (TEXT | BINARY, slot @ None) => *slot = Some((head.opcode == TEXT, payload)),
                (CONTINUATION, None) => return Err(ReadError::Protocol("continuation without a message")),
                (CONTINUATION, Some((_, so_far))) => {
                    so_far.extend_from_slice(&payload);
                    if head.fin {
                        let Some((text, whole)) = self.fragments.take() else { continue };
                        return finish(text, whole).map(Some);
                    }
                }
                _ => return Err(ReadError::Protocol("reserved opcode")),
            }
        }
    }
}

fn finish(text: bool, payload: BytesMut) -> Result<Message, ReadError> {
    if !text {
        return Ok(Message::Binary);
    }
    if std::str::from_utf8(&payload).is_err() {
        return Err(ReadError::InvalidUtf8);
    }
    Ok(Message::Text(payload.freeze()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A masked client frame.
    pub(crate) fn frame(fin: bool, opcode: u8, payload: &[u8]) -> Vec<u8> {
        let mask = [0x12, 0x34, 0x56, 0x78];
        let mut out = vec![(u8::from(fin) << 7) | opcode];
        match payload.len() {
            n if n < 126 => out.push(0x80 | n as u8),
            n if n <= 0xFFFF => {
                out.push(0x80 | 126);
                out.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                out.push(0x80 | 127);
                out.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        out.extend_from_slice(&mask);
        out.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        out
    }

    fn decode_all(bytes: &[u8], max: usize) -> Result<Vec<Message>, ReadError> {
        let mut reader = MessageReader::new(max);
        reader.push(bytes);
        let mut out = Vec::new();
        while let Some(message) = reader.decode()? {
            out.push(message);
        }
        Ok(out)
    }

    #[test]
    fn whole_and_fragmented_text_with_interleaved_ping() {
        let mut bytes = frame(true, TEXT, b"{\"a\":1}");
        bytes.extend(frame(false, TEXT, b"{\"b\":"));
        bytes.extend(frame(true, PING, b"hi"));
        bytes.extend(frame(false, CONTINUATION, b"\"\xF0\x9F"));
        bytes.extend(frame(true, CONTINUATION, b"\x98\x80\"}"));
        let messages = decode_all(&bytes, 1024).unwrap();
        assert_eq!(
            messages,
            vec![
                Message::Text(Bytes::from_static(b"{\"a\":1}")),
                Message::Ping(Bytes::from_static(b"hi")),
                Message::Text(Bytes::from("{\"b\":\"😀\"}")),
            ]
        );
    }

    #[test]
    fn byte_at_a_time_gives_the_same_messages() {
        let mut bytes = frame(false, TEXT, &[b'x'; 300]);
        bytes.extend(frame(true, CONTINUATION, &[b'y'; 70_000]));
        let mut reader = MessageReader::new(100_000);
        let mut out = Vec::new();
        for byte in &bytes {
            reader.push(&[*byte]);
            if let Some(message) = reader.decode().unwrap() {
                out.push(message);
            }
        }
        assert_eq!(out.len(), 1);
        assert!(matches!(&out[0], Message::Text(t) if t.len() == 70_300));
    }

    #[test]
    fn the_budget_holds_across_fragments_before_payload_arrives() {
        let mut reader = MessageReader::new(1000);
        for _ in 0..3 {
            reader.push(&frame(
                false,
                if reader.buffered() == 0 { TEXT } else { CONTINUATION },
                &[b'a'; 300],
            ));
            assert_eq!(reader.decode(), Ok(None));
        }
        // The fourth fragment's header alone (no payload yet) is refused.
        let fourth = frame(true, CONTINUATION, &[b'a'; 300]);
        reader.push(&fourth[..8]);
        assert_eq!(reader.decode(), Err(ReadError::TooBig(1000)));
        // A single frame declaring 2^63 bytes is refused from its header.
        let mut huge = vec![0x81, 0x80 | 127];
        huge.extend_from_slice(&(1u64 << 63).to_be_bytes());
        huge.extend_from_slice(&[0; 4]);
        assert_eq!(decode_all(&huge, 1000), Err(ReadError::TooBig(1000)));
    }

    #[test]
    fn violations_have_their_close_codes() {
        let unmasked = [0x81, 0x02, b'h', b'i'];
        let cases: Vec<(Vec<u8>, u16)> = vec![
            (unmasked.to_vec(), 1002),
            (frame(true, TEXT, b"\xFF\xFE"), 1007),
            (frame(false, PING, b""), 1002),
            (frame(true, PING, &[0; 126]), 1002),
            (frame(true, CONTINUATION, b"x"), 1002),
            ([frame(false, TEXT, b"a"), frame(true, TEXT, b"b")].concat(), 1002),
            (frame(true, 0x3, b""), 1002),
            (vec![0x81 | 0x40, 0x80, 0, 0, 0, 0], 1002),
            (frame(true, CLOSE, b"x"), 1002),
            (frame(true, CLOSE, b"\x03\xE8\xFF"), 1007),
        ];
        for (bytes, code) in cases {
            let err = decode_all(&bytes, 1024).expect_err("refused");
            assert_eq!(err.close_code(), code, "{bytes:?}: {err}");
        }
    }

    #[test]
    fn binary_close_and_pong_are_messages() {
        let bytes =
            [frame(true, BINARY, b"\0\x01"), frame(true, PONG, b""), frame(true, CLOSE, b"\x03\xE8ok")]
                .concat();
        assert_eq!(decode_all(&bytes, 1024).unwrap(), vec![Message::Binary, Message::Pong, Message::Close]);
    }
}
