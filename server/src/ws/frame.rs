//! The RFC 6455 frame codec, both directions: a client frame's header
//! ([`parse_head`], masked as clients must) and unmasking for the
//! [`reader`](super::reader), and unmasked, unfragmented server frames
//! ([`encode_text`], [`encode_close`]) for the
//! [`outbound`](super::outbound) queue.

// Opcodes (RFC 6455 §5.2).

/// A continuation frame.
pub const CONTINUATION: u8 = 0x0;
/// A text frame.
pub const TEXT: u8 = 0x1;
/// A binary frame.
pub const BINARY: u8 = 0x2;
/// A close frame.
pub const CLOSE: u8 = 0x8;
/// A ping.
pub const PING: u8 = 0x9;
/// A pong.
pub const PONG: u8 = 0xA;

/// A client frame header a server must refuse (RFC 6455 §5.1–5.2): why.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BadHeader(pub &'static str);

/// A client frame's header.
pub struct Head {
    /// The last frame of its message.
    pub fin: bool,
    /// Its opcode.
    pub opcode: u8,
    /// The masking key.
    pub mask: [u8; 4],
    /// Its payload's length.
    pub len: u64,
    /// The header's own length.
    pub head_len: usize,
}

/// The frame header at the start of `buffer`, `None` when incomplete.
pub fn parse_head(buffer: &[u8]) -> Result<Option<Head>, BadHeader> {
    let [first, second, rest @ ..] = buffer else { return Ok(None) };
    if first & 0x70 != 0 {
        return Err(BadHeader("reserved bits set (no extension was negotiated)"));
    }
    if second & 0x80 == 0 {
        // RFC 6455 §5.1: the server must close on an unmasked client frame.
        return Err(BadHeader("client frames must be masked"));
    }
    let (len, extra) = match second & 0x7F {
        126 => match rest {
            [a, b, ..] => (u64::from(u16::from_be_bytes([*a, *b])), 2),
            _ => return Ok(None),
        },
        127 => match rest.get(..8) {
            Some(bytes) => {
                let mut be = [0u8; 8];
                be.copy_from_slice(bytes);
                (u64::from_be_bytes(be), 8)
            }
            None => return Ok(None),
        },
        short => (u64::from(short), 0),
    };
    let Some(mask) = rest.get(extra..extra + 4) else { return Ok(None) };
    Ok(Some(Head {
        fin: first & 0x80 != 0,
        opcode: first & 0x0F,
        mask: [mask[0], mask[1], mask[2], mask[3]],
        len,
        head_len: 2 + extra + 4,
    }))
}

/// Unmasks a client frame's payload in place.
pub fn unmask(payload: &mut [u8], mask: [u8; 4]) {
    for (i, byte) in payload.iter_mut().enumerate() {
        *byte ^= mask[i % 4];
    }
}

/// An unmasked, unfragmented server frame's header (RFC 6455 §5.2).
pub fn frame_header(opcode: u8, len: usize) -> ([u8; 10], usize) {
    let mut header = [0u8; 10];
    header[0] = 0x80 | opcode;
    match len {
        n if n < 126 => {
            header[1] = n as u8;
            (header, 2)
        }
        n if n <= usize::from(u16::MAX) => {
            header[1] = 126;
            header[2..4].copy_from_slice(&(n as u16).to_be_bytes());
            (header, 4)
        }
        n => {
            header[1] = 127;
            header[2..10].copy_from_slice(&(n as u64).to_be_bytes());
            (header, 10)
        }
    }
}

/// Appends one unmasked, unfragmented server frame.
pub fn encode_frame(out: &mut Vec<u8>, opcode: u8, payload: &[u8]) {
    let (header, len) = frame_header(opcode, payload.len());
    out.extend_from_slice(&header[..len]);
    out.extend_from_slice(payload);
}

/// Appends a text frame.
pub fn encode_text(out: &mut Vec<u8>, payload: &[u8]) {
    encode_frame(out, TEXT, payload);
}

/// Appends a close frame with `code` and `reason` (truncated to fit the
/// 125-byte control frame limit).
pub fn encode_close(out: &mut Vec<u8>, code: u16, reason: &str) {
    let mut end = reason.len().min(123);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    let mut payload = Vec::with_capacity(2 + end);
    payload.extend_from_slice(&code.to_be_bytes());
    payload.extend_from_slice(&reason.as_bytes()[..end]);
    encode_frame(out, CLOSE, &payload);
}
