//! Reading lease rows straight from the pages of a damaged database file,
//! for when the B-tree above them is broken (a file cut short loses the
//! interior pages, and SQLite then reaches none of the leaves).
//!
//! The leases table is `WITHOUT ROWID`, so its rows live in the cells of
//! index leaf pages (page type 0x0a) as records of the table's nine columns
//! in order (`ip`, `mac`, `state`, `expires`, `hostname`, `vendor_class`,
//! `user_class`, `interface`, `updated`). Every such cell in the main file
//! (pages on the free list skipped) and in the write-ahead log (frames of
//! the log's current generation) is decoded; a cell that is not a whole,
//! well-formed nine-column record is passed over. No I/O here: the bytes
//! come in, the rows go out. The format is SQLite's documented file format
//! (sqlite.org/fileformat2.html).

/// One row as found on a page. `updated` (unix seconds of the write) tells
/// versions of one address apart: the newest wins.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageRow {
    pub ip: String,
    pub mac: String,
    pub state: String,
    pub expires: i64,
    pub hostname: Option<String>,
    pub vendor_class: Option<String>,
    pub user_class: Option<String>,
    pub interface: String,
    pub updated: i64,
}

const INDEX_LEAF: u8 = 0x0a;
const WAL_MAGIC: [u32; 2] = [0x377f_0682, 0x377f_0683];

/// Every lease row in the cells of the database file `db` and its
/// write-ahead log `wal` (empty when there is none).
pub fn rows(db: &[u8], wal: &[u8]) -> Vec<PageRow> {
    let mut out = Vec::new();
    let Some(header) = db.get(..100) else {
        return out;
    };
    let page_size = match u16::from_be_bytes([header[16], header[17]]) {
        1 => 65_536,
        n => usize::from(n),
    };
    let reserved = usize::from(header[20]);
    if !page_size.is_power_of_two() || !(512..=65_536).contains(&page_size) || reserved >= 480 {
        return out;
    }
    let usable = page_size - reserved;
    let free = free_pages(db, page_size);
    for (i, page) in db.chunks_exact(page_size).enumerate() {
        let number = i as u64 + 1;
        if !free.contains(&number) {
            leaf_rows(page, if number == 1 { 100 } else { 0 }, usable, &mut out);
        }
    }
    wal_rows(wal, usable, &mut out);
    out
}

/// Page numbers on the free list, as far as its trunk pages can be read.
fn free_pages(db: &[u8], page_size: usize) -> std::collections::HashSet<u64> {
    let mut free = std::collections::HashSet::new();
    let mut trunk = u64::from(be32(db, 32).unwrap_or(0));
    // Each trunk page is visited once: a loop in a damaged list ends here.
    while trunk != 0 && free.insert(trunk) {
        let Some(page) = usize::try_from(trunk - 1)
            .ok()
            .and_then(|i| i.checked_mul(page_size))
            .and_then(|at| db.get(at..at.checked_add(page_size)?))
        else {
            break;
        };
        let count = be32(page, 4).unwrap_or(0) as usize;
        for k in 0..count.min(page_size / 4 - 2) {
            if let Some(leaf) = be32(page, 8 + 4 * k) {
                free.insert(u64::from(leaf));
            }
        }
        trunk = u64::from(be32(page, 0).unwrap_or(0));
    }
    free
}

/// The frames of the log's current generation (their salts match the
/// header's), each holding one page.
fn wal_rows(wal: &[u8], usable: usize, out: &mut Vec<PageRow>) {
    let (Some(magic), Some(size), Some(salt1), Some(salt2)) =
        (be32(wal, 0), be32(wal, 8), be32(wal, 16), be32(wal, 20))
    else {
        return;
    };
    let size = size as usize;
    if !WAL_MAGIC.contains(&magic) || size < usable || !(512..=65_536).contains(&size) {
        return;
    }
    let Some(frames) = wal.get(32..) else {
        return;
    };
    for frame in frames.chunks_exact(24 + size) {
        if be32(frame, 8) == Some(salt1) && be32(frame, 12) == Some(salt2) {
            let page_number = be32(frame, 0).unwrap_or(0);
            leaf_rows(
                &frame[24..],
                if page_number == 1 { 100 } else { 0 },
                usable,
                out,
            );
        }
    }
}

/// The rows in the cells of one page, if it is an index leaf page.
/// `at` is where the page's B-tree header starts (100 on page 1).
fn leaf_rows(page: &[u8], at: usize, usable: usize, out: &mut Vec<PageRow>) {
    let page = &page[..usable.min(page.len())];
    if page.get(at) != Some(&INDEX_LEAF) {
        return;
    }
    let Some(cells) = be16(page, at + 3) else {
        return;
    };
    // The most payload an index page keeps on the page; more spills to
    // overflow pages, which a lease row never needs.
    let max_local = (usable - 12) * 64 / 255 - 23;
    for k in 0..usize::from(cells) {
        let Some(offset) = be16(page, at + 8 + 2 * k) else {
            return;
        };
        let Some(cell) = page.get(usize::from(offset)..) else {
            continue;
        };
        let Some((len, n)) = varint(cell) else {
            continue;
        };
        let Ok(len) = usize::try_from(len) else {
            continue;
        };
        if len > max_local {
            continue;
        }
        if let Some(row) = cell.get(n..n + len).and_then(record) {
            out.push(row);
        }
    }
}

/// A value of a record.
enum Value<'a> {
    Null,
    Int(i64),
    Text(&'a [u8]),
    Other,
}

/// Decodes a nine-column lease record; `None` for anything else.
fn record(payload: &[u8]) -> Option<PageRow> {
    let (header_len, mut at) = varint(payload)?;
    let header_len = usize::try_from(header_len).ok()?;
    let header = payload.get(..header_len)?;
    let mut body = header_len;
    let mut values = Vec::with_capacity(9);
    while at < header_len {
        let (serial, n) = varint(header.get(at..)?)?;
        at += n;
        let (len, kind) = match serial {
            0 => (0, 0),
            1..=4 => (serial as usize, 1),
            5 => (6, 1),
            6 => (8, 1),
            7 => (8, 2),
            8 | 9 => (0, 1),
            10 | 11 => return None,
            s if s % 2 == 0 => (usize::try_from((s - 12) / 2).ok()?, 2),
            s => (usize::try_from((s - 13) / 2).ok()?, 3),
        };
        let bytes = payload.get(body..body.checked_add(len)?)?;
        body += len;
        values.push(match (kind, serial) {
            (0, _) => Value::Null,
            (1, 8) => Value::Int(0),
            (1, 9) => Value::Int(1),
            (1, _) => Value::Int(int(bytes)),
            (3, _) => Value::Text(bytes),
            _ => Value::Other,
        });
    }
    if values.len() != 9 || body != payload.len() {
        return None;
    }
    let text = |v: &Value| match v {
        Value::Text(t) => std::str::from_utf8(t).ok().map(str::to_string),
        _ => None,
    };
    let opt_text = |v: &Value| match v {
        Value::Null => Some(None),
        Value::Text(t) => std::str::from_utf8(t).ok().map(|s| Some(s.to_string())),
        _ => None,
    };
    let integer = |v: &Value| match v {
        Value::Int(i) => Some(*i),
        _ => None,
    };
    Some(PageRow {
        ip: text(&values[0])?,
        mac: text(&values[1])?,
        state: text(&values[2])?,
        expires: integer(&values[3])?,
        hostname: opt_text(&values[4])?,
        vendor_class: opt_text(&values[5])?,
        user_class: opt_text(&values[6])?,
        interface: text(&values[7])?,
        updated: integer(&values[8])?,
    })
}

/// A big-endian two's complement integer of 1 to 8 bytes.
fn int(b: &[u8]) -> i64 {
    let mut v: i64 = if b.first().is_some_and(|x| x & 0x80 != 0) {
        -1
    } else {
        0
    };
    for &x in b {
        v = (v << 8) | i64::from(x);
    }
    v
}

/// SQLite's variable-length integer: the value and its length in bytes.
fn varint(b: &[u8]) -> Option<(u64, usize)> {
    let mut v: u64 = 0;
    for i in 0..9 {
        let x = *b.get(i)?;
        if i == 8 {
            return Some(((v << 8) | u64::from(x), 9));
        }
        v = (v << 7) | u64::from(x & 0x7f);
        if x & 0x80 == 0 {
            return Some((v, i + 1));
        }
    }
    None
}

fn be16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn be32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_and_integers_decode_as_sqlite_writes_them() {
        assert_eq!(varint(&[0x05]), Some((5, 1)));
        assert_eq!(varint(&[0x81, 0x00]), Some((128, 2)));
        assert_eq!(varint(&[0xff; 9]), Some((u64::MAX, 9)));
        assert_eq!(varint(&[0x81]), None);
        assert_eq!(int(&[0xff]), -1);
        assert_eq!(int(&[0x01, 0x00]), 256);
        assert_eq!(int(&[0x80, 0, 0, 0, 0, 0, 0, 0]), i64::MIN);
    }

    #[test]
    fn garbage_and_short_input_yield_nothing_and_never_panic() {
        assert!(rows(&[], &[]).is_empty());
        assert!(rows(&[0u8; 99], &[1, 2, 3]).is_empty());
        let mut junk = vec![0u8; 8192];
        for (i, b) in junk.iter_mut().enumerate() {
            *b = (i.wrapping_mul(2_654_435_761) >> 7) as u8;
        }
        // A header that claims 4096-byte pages, then noise with index leaf
        // marks and huge cell counts.
        junk[16] = 0x10;
        junk[17] = 0;
        junk[20] = 0;
        junk[4096] = INDEX_LEAF;
        junk[4099] = 0xff;
        junk[4100] = 0xff;
        let _ = rows(&junk, &junk);
        assert!(record(&[0x0a, 0x01]).is_none());
        assert!(record(&[0x02, 0x0a]).is_none());
    }
}
