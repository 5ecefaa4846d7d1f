//! `mb_u_int32`: WBXML's variable-length unsigned integer (WBX-02).
//!
//! Big-endian groups of 7 bits, the high bit set on every byte but the last
//! (`0x1201` is `A4 01`). At most five bytes, and the value must fit in 32 bits.

/// Appends `value` as an mb_u_int32.
pub fn write(out: &mut Vec<u8>, mut value: u32) {
    let mut buf = [0u8; 5];
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = (value & 0x7F) as u8;
        value >>= 7;
        if value == 0 {
            break;
        }
    }
    let last = buf.len() - 1;
    for b in &mut buf[i..last] {
        *b |= 0x80;
    }
    out.extend_from_slice(&buf[i..]);
}

/// The encoded length of `value` in bytes.
pub fn len(value: u32) -> usize {
    match value {
        0..=0x7F => 1,
        0x80..=0x3FFF => 2,
        0x4000..=0x1F_FFFF => 3,
        0x20_0000..=0x0FFF_FFFF => 4,
        _ => 5,
    }
}

/// Why an mb_u_int32 could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MbError {
    /// The input ended inside the number.
    Eof,
    /// More than five bytes, or a value above `u32::MAX`.
    Overflow,
}

/// Reads an mb_u_int32 from the front of `input`; returns the value and the number of
/// bytes used.
pub fn read(input: &[u8]) -> Result<(u32, usize), MbError> {
    let mut value: u64 = 0;
    for (i, &b) in input.iter().enumerate() {
        if i >= 5 {
            return Err(MbError::Overflow);
        }
        value = (value << 7) | u64::from(b & 0x7F);
        if b & 0x80 == 0 {
            return u32::try_from(value)
                .map(|v| (v, i + 1))
                .map_err(|_| MbError::Overflow);
        }
    }
    Err(MbError::Eof)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn public_id_0x1201_is_a4_01() {
        let mut v = Vec::new();
        write(&mut v, 0x1201);
        assert_eq!(v, [0xA4, 0x01]);
        assert_eq!(read(&v), Ok((0x1201, 2)));
    }

    #[test]
    fn public_id_0x0fd3_is_9f_53() {
        let mut v = Vec::new();
        write(&mut v, 0x0FD3);
        assert_eq!(v, [0x9F, 0x53]);
    }

    #[test]
    fn boundaries_round_trip() {
        for x in [
            0,
            1,
            0x7F,
            0x80,
            0x3FFF,
            0x4000,
            0x1F_FFFF,
            0x20_0000,
            u32::MAX,
        ] {
            let mut v = Vec::new();
            write(&mut v, x);
            assert_eq!(v.len(), len(x));
            assert_eq!(read(&v), Ok((x, v.len())));
        }
    }

    #[test]
    fn overlong_and_truncated_are_rejected() {
        assert_eq!(read(&[0x80]), Err(MbError::Eof));
        assert_eq!(read(&[0xFF; 6]), Err(MbError::Overflow));
        assert_eq!(
            read(&[0x90, 0x80, 0x80, 0x80, 0x00]),
            Err(MbError::Overflow)
        );
    }
}
