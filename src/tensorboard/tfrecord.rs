//! The bytes of an event file: TFRecord framing and the protobuf wire format of the records.
//!
//! A TFRecord is the data's length as a little-endian `u64`, the masked CRC32C of those 8 bytes,
//! the data, and the masked CRC32C of the data (both checksums little-endian `u32`). The mask is
//! TensorFlow's, `((crc >> 15) | (crc << 17)) + 0xa282ead8`, computed by [`masked_crc32c`]
//! here (a table-driven CRC32C, 25 lines: a crate for it would bring in far more). Every record rlpg writes or reads goes through [`write_record`] and
//! [`Records`]; the events inside are decoded field by field with [`ProtoFields`] (never with
//! protobuf 2's parser, so a checksum-valid but hostile file cannot make it recurse).

use std::io::{self, Write};

/// CRC32C (Castagnoli, reflected polynomial `0x82F63B78`) byte table, built at compile time.
const CRC32C_TABLE: [u32; 256] = {
    let mut table = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut crc = i as u32;
        let mut bit = 0;
        while bit < 8 {
            crc = if crc & 1 == 1 { (crc >> 1) ^ 0x82F6_3B78 } else { crc >> 1 };
            bit += 1;
        }
        table[i] = crc;
        i += 1;
    }
    table
};

/// The CRC32C of `data`.
fn crc32c(data: &[u8]) -> u32 {
    !data
        .iter()
        .fold(!0u32, |crc, &b| (crc >> 8) ^ CRC32C_TABLE[((crc ^ u32::from(b)) & 0xff) as usize])
}

/// TensorFlow's masked CRC32C of `data`, as TFRecord framing stores it.
fn masked_crc32c(data: &[u8]) -> u32 {
    let crc = crc32c(data);
    crc.rotate_right(15).wrapping_add(0xa282_ead8)
}

/// Bytes of framing around each record's data: length (8), its checksum (4), data checksum (4).
const FRAMING: usize = 16;

/// Appends one record holding `data` to `out`.
pub(super) fn write_record(out: &mut impl Write, data: &[u8]) -> io::Result<()> {
    let len = (data.len() as u64).to_le_bytes();
    out.write_all(&len)?;
    out.write_all(&masked_crc32c(&len).to_le_bytes())?;
    out.write_all(data)?;
    out.write_all(&masked_crc32c(data).to_le_bytes())
}

/// One complete record whose two checksums match.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) struct Record<'a> {
    /// Byte offset of the record in the file.
    pub offset: usize,
    /// The record's data (one serialized `tensorflow.Event`).
    pub data: &'a [u8],
    /// The whole record, framing included, as it is in the file.
    pub frame: &'a [u8],
}

/// Why reading stopped before the end of the bytes.
#[derive(Clone, Debug, PartialEq)]
pub(super) enum Damage {
    /// The last record is cut short: a killed writer leaves a partial record, and a crash before
    /// the file system wrote the tail can leave it zero-filled.
    Incomplete {
        /// Byte offset of the incomplete record.
        offset: usize,
    },
    /// A complete record whose checksum does not match.
    Corrupt {
        /// Byte offset of the damaged record.
        offset: usize,
        /// Which checksum.
        what: &'static str,
    },
}

/// Reads the records of an event file's bytes in order, checking both checksums of each.
pub(super) struct Records<'a> {
    bytes: &'a [u8],
    offset: usize,
}

impl<'a> Records<'a> {
    /// Reads from the start of `bytes`.
    pub(super) fn new(bytes: &'a [u8]) -> Self {
        Self { bytes, offset: 0 }
    }

    /// The next record; `Ok(None)` at the end of the bytes, `Err` at the first record that is
    /// incomplete or damaged (reading should stop there: the framing after it cannot be trusted).
    pub(super) fn next_record(&mut self) -> Result<Option<Record<'a>>, Damage> {
        let offset = self.offset;
        let rest = &self.bytes[offset..];
        if rest.is_empty() {
            return Ok(None);
        }
        if rest.len() < FRAMING || rest.iter().all(|&b| b == 0) {
            return Err(Damage::Incomplete { offset });
        }
        let len_bytes: [u8; 8] = rest[..8].try_into().expect("slice of 8");
        let len_crc = u32::from_le_bytes(rest[8..12].try_into().expect("slice of 4"));
        if masked_crc32c(&len_bytes) != len_crc {
            return Err(Damage::Corrupt { offset, what: "length checksum mismatch" });
        }
        let len = u64::from_le_bytes(len_bytes);
        if len.saturating_add(FRAMING as u64) > rest.len() as u64 {
            return Err(Damage::Incomplete { offset });
        }
        // At most rest.len() - 16, so it fits a usize.
        let len = len as usize;
        let data = &rest[12..12 + len];
        let data_crc = u32::from_le_bytes(rest[12 + len..16 + len].try_into().expect("slice of 4"));
        if masked_crc32c(data) != data_crc {
            return Err(Damage::Corrupt { offset, what: "data checksum mismatch" });
        }
        self.offset += FRAMING + len;
        Ok(Some(Record { offset, data, frame: &rest[..FRAMING + len] }))
    }
}

/// A protobuf field value by wire type.
#[derive(Debug)]
pub(super) enum Wire<'a> {
    /// Wire type 0.
    Varint(u64),
    /// Wire type 1.
    Fixed64(u64),
    /// Wire type 2: a string, bytes or a nested message.
    Bytes(&'a [u8]),
    /// Wire type 5.
    Fixed32(u32),
}

/// Iterates over the fields of one serialized protobuf message.
pub(super) struct ProtoFields<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> ProtoFields<'a> {
    /// Reads the fields of the message `data`.
    pub(super) fn new(data: &'a [u8]) -> Self {
        Self { data, pos: 0 }
    }

    fn varint(&mut self) -> Result<u64, String> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let byte = *self.data.get(self.pos).ok_or("protobuf varint runs past the end")?;
            self.pos += 1;
            value |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err("protobuf varint longer than 10 bytes".to_owned())
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        let end = self.pos.checked_add(n).filter(|&end| end <= self.data.len());
        let end = end.ok_or("protobuf field runs past the end")?;
        let bytes = &self.data[self.pos..end];
        self.pos = end;
        Ok(bytes)
    }

    /// The next `(field number, value)`; `Ok(None)` at the end of the message, `Err` if the
    /// bytes are not a well-formed message (a field running past the end, groups, wire types
    /// 6 and 7).
    pub(super) fn next_field(&mut self) -> Result<Option<(u64, Wire<'a>)>, String> {
        if self.pos >= self.data.len() {
            return Ok(None);
        }
        let key = self.varint()?;
        let value = match key & 7 {
            0 => Wire::Varint(self.varint()?),
            1 => Wire::Fixed64(u64::from_le_bytes(self.take(8)?.try_into().expect("8 bytes"))),
            2 => {
                let len = usize::try_from(self.varint()?).map_err(|_| "length overflow")?;
                Wire::Bytes(self.take(len)?)
            }
            5 => Wire::Fixed32(u32::from_le_bytes(self.take(4)?.try_into().expect("4 bytes"))),
            wire => return Err(format!("unsupported protobuf wire type {wire}")),
        };
        Ok(Some((key >> 3, value)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masked_crc32c_matches_the_standard_check_value() {
        // CRC-32C of "123456789" is 0xE3069283 (RFC 3720, appendix B.4); TFRecord masks it as
        // ((crc >> 15) | (crc << 17)) + 0xa282ead8.
        let crc: u32 = 0xE306_9283;
        let masked = crc.rotate_right(15).wrapping_add(0xa282_ead8);
        assert_eq!(masked_crc32c(b"123456789"), masked);
    }

    #[test]
    fn written_records_read_back_and_damage_is_located() {
        let mut bytes = Vec::new();
        write_record(&mut bytes, b"first").expect("write to a Vec");
        write_record(&mut bytes, b"").expect("write to a Vec");
        write_record(&mut bytes, b"third").expect("write to a Vec");
        assert_eq!(bytes.len(), 3 * FRAMING + 10);
        let mut records = Records::new(&bytes);
        let first = records.next_record().expect("valid").expect("a record");
        assert_eq!((first.offset, first.data, first.frame.len()), (0, &b"first"[..], 21));
        let second = records.next_record().expect("valid").expect("a record");
        assert_eq!((second.offset, second.data), (21, &b""[..]));
        let third = records.next_record().expect("valid").expect("a record");
        assert_eq!((third.offset, third.data), (37, &b"third"[..]));
        assert_eq!(records.next_record(), Ok(None));

        let cut = &bytes[..bytes.len() - 1];
        let mut records = Records::new(cut);
        records.next_record().expect("first");
        records.next_record().expect("second");
        assert_eq!(records.next_record(), Err(Damage::Incomplete { offset: 37 }));

        let mut flipped = bytes.clone();
        flipped[21 + 12 + 4 - 1] ^= 1; // the second record's data checksum
        let mut records = Records::new(&flipped);
        records.next_record().expect("first");
        assert_eq!(
            records.next_record(),
            Err(Damage::Corrupt { offset: 21, what: "data checksum mismatch" })
        );

        let mut zeros = bytes[..21].to_vec();
        zeros.extend_from_slice(&[0; 40]);
        let mut records = Records::new(&zeros);
        records.next_record().expect("first");
        assert_eq!(records.next_record(), Err(Damage::Incomplete { offset: 21 }));
    }

    #[test]
    fn protobuf_fields_decode_each_wire_type_and_reject_overruns() {
        // field 2 varint 300, field 1 fixed64, field 5 bytes "ab", field 2 fixed32
        let mut data = vec![0x10, 0xac, 0x02, 0x09];
        data.extend_from_slice(&1.5f64.to_le_bytes());
        data.extend_from_slice(&[0x2a, 2, b'a', b'b', 0x15]);
        data.extend_from_slice(&2.5f32.to_le_bytes());
        let mut fields = ProtoFields::new(&data);
        assert!(matches!(fields.next_field(), Ok(Some((2, Wire::Varint(300))))));
        assert!(
            matches!(fields.next_field(), Ok(Some((1, Wire::Fixed64(b)))) if f64::from_bits(b) == 1.5)
        );
        assert!(matches!(fields.next_field(), Ok(Some((5, Wire::Bytes(b"ab"))))));
        assert!(
            matches!(fields.next_field(), Ok(Some((2, Wire::Fixed32(b)))) if f32::from_bits(b) == 2.5)
        );
        assert!(matches!(fields.next_field(), Ok(None)));
        let overrun = [0x2a, 5, b'a'];
        assert!(ProtoFields::new(&overrun).next_field().is_err(), "length past the end must fail");
    }
}
