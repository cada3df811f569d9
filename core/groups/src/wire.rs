//! The byte layout of what the app signs (device certificates, rosters) and
//! of the group log's entries: length-prefixed fields, every length bounded
//! before anything is allocated, nothing left over at the end.

use crate::GroupError;

/// A value longer than this is refused when read (the largest field is a
/// roster of [`crate::MAX_ROSTER_DEVICES`] ids or an MLS message).
pub(crate) const MAX_FIELD_BYTES: usize = 4 << 20;

#[derive(Default)]
pub(crate) struct Writer(Vec<u8>);

impl Writer {
    pub(crate) fn new() -> Self {
        Self::default()
    }

    pub(crate) fn u8(&mut self, value: u8) -> &mut Self {
        self.0.push(value);
        self
    }

    pub(crate) fn u64(&mut self, value: u64) -> &mut Self {
        self.0.extend_from_slice(&value.to_be_bytes());
        self
    }

    pub(crate) fn u32(&mut self, value: u32) -> &mut Self {
        self.0.extend_from_slice(&value.to_be_bytes());
        self
    }

    /// A field: its length as 4 bytes, then its bytes.
    pub(crate) fn bytes(&mut self, value: &[u8]) -> &mut Self {
        let len = u32::try_from(value.len()).expect("fields are bounded far below 4 GiB");
        self.u32(len);
        self.0.extend_from_slice(value);
        self
    }

    pub(crate) fn finish(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.0)
    }
}

pub(crate) struct Reader<'a> {
    rest: &'a [u8],
    what: &'static str,
}

impl<'a> Reader<'a> {
    /// Reads `bytes`; errors name `what` (e.g. "device certificate").
    pub(crate) fn new(bytes: &'a [u8], what: &'static str) -> Self {
        Self { rest: bytes, what }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], GroupError> {
        if self.rest.len() < n {
            return Err(GroupError::Malformed(self.what));
        }
        let (head, tail) = self.rest.split_at(n);
        self.rest = tail;
        Ok(head)
    }

    pub(crate) fn u8(&mut self) -> Result<u8, GroupError> {
        Ok(self.take(1)?[0])
    }

    pub(crate) fn u32(&mut self) -> Result<u32, GroupError> {
        let b = self.take(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    pub(crate) fn u64(&mut self) -> Result<u64, GroupError> {
        let mut b = [0; 8];
        b.copy_from_slice(self.take(8)?);
        Ok(u64::from_be_bytes(b))
    }

    /// A field of at most `max` bytes.
    pub(crate) fn bytes(&mut self, max: usize) -> Result<&'a [u8], GroupError> {
        let len = self.u32()? as usize;
        if len > max.min(MAX_FIELD_BYTES) {
            return Err(GroupError::Malformed(self.what));
        }
        self.take(len)
    }

    /// A UTF-8 id of 1..=[`crate::MAX_ID_BYTES`] bytes.
    pub(crate) fn id(&mut self) -> Result<String, GroupError> {
        let bytes = self.bytes(crate::MAX_ID_BYTES)?;
        match std::str::from_utf8(bytes) {
            Ok(id) if !id.is_empty() => Ok(id.to_owned()),
            _ => Err(GroupError::Malformed(self.what)),
        }
    }

    /// Fails unless every byte was read.
    pub(crate) fn end(self) -> Result<(), GroupError> {
        if self.rest.is_empty() { Ok(()) } else { Err(GroupError::Malformed(self.what)) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths_are_checked_before_reading() {
        let mut w = Writer::new();
        w.bytes(b"abc").u64(7);
        let bytes = w.finish();
        let mut r = Reader::new(&bytes, "test");
        assert_eq!(r.bytes(3).unwrap(), b"abc");
        assert_eq!(r.u64().unwrap(), 7);
        r.end().unwrap();
        // A field longer than allowed, a truncated one, trailing bytes.
        assert!(Reader::new(&bytes, "test").bytes(2).is_err());
        assert!(Reader::new(&bytes[..5], "test").bytes(3).is_err());
        let mut r = Reader::new(&bytes, "test");
        r.bytes(3).unwrap();
        assert!(r.end().is_err());
        // A length claiming 4 GiB allocates nothing and fails.
        assert!(Reader::new(&[0xff, 0xff, 0xff, 0xff], "test").bytes(usize::MAX).is_err());
    }
}
