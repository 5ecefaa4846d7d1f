//! The small binary forms the server stores beside its JSON and SQL: big-endian integers,
//! presence flags and byte strings behind a 4-byte length. Used by the SQLite rows of a
//! pending package 4 and by the session record's commands in flight.

/// Why stored bytes cannot be read back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum Malformed {
    /// The bytes end inside a value.
    #[error("truncated")]
    Truncated,
    /// A presence flag other than 0 or 1.
    #[error("bad presence flag")]
    Flag,
    /// A string that is not UTF-8.
    #[error("text is not UTF-8")]
    NotUtf8,
    /// A byte string too long for its 4-byte length (when writing).
    #[error("a value of {0} bytes is too long")]
    TooLong(usize),
}

/// Appends `b` behind its length (u32, big endian).
pub(crate) fn put_bytes(out: &mut Vec<u8>, b: &[u8]) -> Result<(), Malformed> {
    let len = u32::try_from(b.len()).map_err(|_| Malformed::TooLong(b.len()))?;
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(b);
    Ok(())
}

/// Reads the values [`put_bytes`] and plain `to_be_bytes` wrote, front to back.
pub(crate) struct Reader<'a>(pub(crate) &'a [u8]);

impl<'a> Reader<'a> {
    /// Nothing left.
    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The next `N` bytes.
    pub(crate) fn take<const N: usize>(&mut self) -> Result<[u8; N], Malformed> {
        let (head, rest) = self
            .0
            .split_first_chunk::<N>()
            .ok_or(Malformed::Truncated)?;
        self.0 = rest;
        Ok(*head)
    }

    /// A big-endian `i64`.
    pub(crate) fn i64(&mut self) -> Result<i64, Malformed> {
        self.take().map(i64::from_be_bytes)
    }

    /// A presence byte: 0 or 1.
    pub(crate) fn flag(&mut self) -> Result<bool, Malformed> {
        match self.take::<1>()? {
            [0] => Ok(false),
            [1] => Ok(true),
            _ => Err(Malformed::Flag),
        }
    }

    /// A byte string behind its length.
    pub(crate) fn bytes(&mut self) -> Result<&'a [u8], Malformed> {
        let len = u32::from_be_bytes(self.take()?) as usize;
        if self.0.len() < len {
            return Err(Malformed::Truncated);
        }
        let (head, rest) = self.0.split_at(len);
        self.0 = rest;
        Ok(head)
    }

    /// A UTF-8 string behind its length.
    pub(crate) fn string(&mut self) -> Result<String, Malformed> {
        String::from_utf8(self.bytes()?.to_vec()).map_err(|_| Malformed::NotUtf8)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_read_back_as_written_and_every_cut_is_an_error() {
        let mut out = Vec::new();
        out.extend_from_slice(&(-7i64).to_be_bytes());
        out.push(1);
        put_bytes(&mut out, "grüß".as_bytes()).unwrap();
        put_bytes(&mut out, &[0, 255]).unwrap();
        let read = |b: &[u8]| -> Result<(i64, bool, String, Vec<u8>), Malformed> {
            let mut r = Reader(b);
            let v = (r.i64()?, r.flag()?, r.string()?, r.bytes()?.to_vec());
            assert!(r.is_empty());
            Ok(v)
        };
        assert_eq!(read(&out), Ok((-7, true, "grüß".into(), vec![0, 255])));
        for cut in 0..out.len() {
            assert_eq!(read(&out[..cut]), Err(Malformed::Truncated), "cut at {cut}");
        }
        let mut bad = out.clone();
        bad[8] = 2;
        assert_eq!(read(&bad), Err(Malformed::Flag));
        let mut bad = out.clone();
        bad[13] = 0xFF; // first byte of the string
        assert_eq!(read(&bad), Err(Malformed::NotUtf8));
    }
}
