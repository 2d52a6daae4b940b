//! Just enough of the TLS wire format to ask a server what it accepts: a ClientHello built by
//! hand for any version from SSL 3.0 to TLS 1.3 (rustls cannot speak the legacy ones), and a
//! reader of the server's first flight. No key is ever agreed: a probe ends at the
//! ServerHello (TLS 1.3) or the ServerHelloDone (up to TLS 1.2).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

pub const SSL3: u16 = 0x0300;
pub const TLS10: u16 = 0x0301;
pub const TLS11: u16 = 0x0302;
pub const TLS12: u16 = 0x0303;
pub const TLS13: u16 = 0x0304;

/// The name a version is known by.
pub fn version_name(version: u16) -> &'static str {
    match version {
        SSL3 => "SSLv3",
        TLS10 => "TLS 1.0",
        TLS11 => "TLS 1.1",
        TLS12 => "TLS 1.2",
        TLS13 => "TLS 1.3",
        _ => "unknown version",
    }
}

/// The ServerHello.random that marks a HelloRetryRequest (RFC 8446 §4.1.3): SHA-256 of
/// "HelloRetryRequest".
const RETRY_RANDOM: [u8; 32] = [
    0xcf, 0x21, 0xad, 0x74, 0xe5, 0x9a, 0x61, 0x11, 0xbe, 0x1d, 0x8c, 0x02, 0x1e, 0x65, 0xb8, 0x91,
    0xc2, 0xa2, 0x11, 0x16, 0x7a, 0xbb, 0x8c, 0x5e, 0x07, 0x9e, 0x09, 0xe2, 0xc8, 0xa8, 0x33, 0x9c,
];

/// Signature schemes offered: everything from ECDSA and RSA-PSS down to SHA-1, so the
/// server's choice of suite is never limited by them.
const SIGNATURE_SCHEMES: [u16; 13] = [
    0x0403, 0x0503, 0x0603, 0x0807, 0x0808, 0x0804, 0x0805, 0x0806, 0x0401, 0x0501, 0x0601, 0x0203,
    0x0201,
];

/// What a probe offers.
pub struct Hello<'a> {
    /// The highest version offered: `TLS13` adds supported_versions and an empty key_share,
    /// so a server that speaks TLS 1.3 answers with a HelloRetryRequest naming its group.
    pub version: u16,
    pub suites: &'a [u16],
    pub groups: &'a [u16],
    /// The SNI host name, if the target is named rather than addressed.
    pub server_name: Option<&'a str>,
}

impl Hello<'_> {
    /// The ClientHello as one record.
    pub fn encode(&self) -> Vec<u8> {
        let legacy = self.version.min(TLS12);
        let mut body = Vec::with_capacity(512);
        body.extend_from_slice(&legacy.to_be_bytes());
        let mut random = [0u8; 32];
        // Not secret: nothing is ever encrypted under it.
        let _ = aws_lc_rs::rand::fill(&mut random);
        body.extend_from_slice(&random);
        body.push(0); // no session id
        let mut suites: Vec<u16> = self.suites.to_vec();
        if self.version < TLS13 {
            suites.push(0x00ff); // TLS_EMPTY_RENEGOTIATION_INFO_SCSV
        }
        put_u16_list(&mut body, &suites);
        body.extend_from_slice(&[1, 0]); // compression: null only
        if self.version > SSL3 {
            let mut ext = Vec::new();
            if let Some(name) = self.server_name {
                let mut list = vec![0u8];
                put_bytes16(&mut list, name.as_bytes());
                let mut sni = Vec::new();
                put_bytes16(&mut sni, &list);
                extension(&mut ext, 0, &sni);
            }
            let mut groups = Vec::new();
            put_u16_list(&mut groups, self.groups);
            extension(&mut ext, 10, &groups);
            extension(&mut ext, 11, &[1, 0]); // ec_point_formats: uncompressed
            let mut schemes = Vec::new();
            put_u16_list(&mut schemes, &SIGNATURE_SCHEMES);
            extension(&mut ext, 13, &schemes);
            extension(&mut ext, 23, &[]); // extended_master_secret
            if self.version >= TLS13 {
                extension(&mut ext, 43, &[2, 0x03, 0x04]); // supported_versions: TLS 1.3
                extension(&mut ext, 45, &[1, 1]); // psk_key_exchange_modes: psk_dhe_ke
                extension(&mut ext, 51, &[0, 0]); // key_share: none yet
            }
            put_bytes16(&mut body, &ext);
        }
        let mut handshake = vec![1];
        put_u24(&mut handshake, body.len());
        handshake.extend_from_slice(&body);
        let mut record = vec![22];
        record.extend_from_slice(&legacy.clamp(SSL3, TLS10).to_be_bytes());
        put_bytes16(&mut record, &handshake);
        record
    }
}

fn put_u16_list(out: &mut Vec<u8>, items: &[u16]) {
    let bytes: Vec<u8> = items.iter().flat_map(|i| i.to_be_bytes()).collect();
    put_bytes16(out, &bytes);
}

fn put_bytes16(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(&(bytes.len() as u16).to_be_bytes());
    out.extend_from_slice(bytes);
}

fn put_u24(out: &mut Vec<u8>, n: usize) {
    out.extend_from_slice(&(n as u32).to_be_bytes()[1..]);
}

fn extension(out: &mut Vec<u8>, kind: u16, data: &[u8]) {
    out.extend_from_slice(&kind.to_be_bytes());
    put_bytes16(out, data);
}

/// The server's key exchange parameters (TLS 1.2 and earlier).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyExchange {
    /// ECDHE over this named group.
    Ecdhe(u16),
    /// Finite-field DHE with a prime of this many bits.
    Dhe(usize),
}

/// The server's answer to a hello it accepted.
#[derive(Debug, Default)]
pub struct Accepted {
    /// The version negotiated (from supported_versions for TLS 1.3).
    pub version: u16,
    pub suite: u16,
    /// A HelloRetryRequest: the server speaks TLS 1.3 and wants a share of `group`.
    pub retry: bool,
    pub group: Option<u16>,
    /// The certificate chain as sent, leaf first (TLS 1.2 and earlier: in the clear).
    pub certificates: Vec<Vec<u8>>,
    pub key_exchange: Option<KeyExchange>,
}

/// How a probe ended.
#[derive(Debug)]
pub enum Answer {
    Accepted(Accepted),
    /// An alert, a closed connection or something that is not TLS: the offer was refused.
    Refused(String),
}

/// Sends `hello` to `addr` and reads the answer.
pub fn probe(addr: SocketAddr, hello: &Hello, timeout: Duration) -> std::io::Result<Answer> {
    let mut stream = TcpStream::connect_timeout(&addr, timeout)?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    stream.set_nodelay(true)?;
    stream.write_all(&hello.encode())?;
    let mut reader = Flight {
        stream,
        handshake: Vec::new(),
    };
    Ok(reader.read())
}

struct Flight {
    stream: TcpStream,
    handshake: Vec<u8>,
}

impl Flight {
    /// Reads records until the flight ends. A flight larger than 256 KiB is not a server's
    /// first flight.
    fn read(&mut self) -> Answer {
        let mut accepted: Option<Accepted> = None;
        loop {
            let mut header = [0u8; 5];
            if self.stream.read_exact(&mut header).is_err() {
                return Answer::Refused("the connection closed".into());
            }
            let len = u16::from_be_bytes([header[3], header[4]]) as usize;
            let mut fragment = vec![0u8; len];
            if self.stream.read_exact(&mut fragment).is_err() {
                return Answer::Refused("the connection closed mid-record".into());
            }
            match header[0] {
                21 => return Answer::Refused(alert(&fragment)),
                22 => self.handshake.extend_from_slice(&fragment),
                20 => continue, // a compatibility ChangeCipherSpec
                other => return Answer::Refused(format!("an unexpected record of type {other}")),
            }
            if self.handshake.len() > 256 * 1024 {
                return Answer::Refused("an oversized first flight".into());
            }
            while let Some((kind, body)) = self.next_message() {
                match (kind, accepted.as_mut()) {
                    (2, None) => {
                        let Some(hello) = server_hello(&body) else {
                            return Answer::Refused("a malformed ServerHello".into());
                        };
                        // TLS 1.3 encrypts the rest; a HelloRetryRequest ends the exchange.
                        if hello.retry || hello.version == TLS13 {
                            return Answer::Accepted(hello);
                        }
                        accepted = Some(hello);
                    }
                    (11, Some(a)) => a.certificates = certificate_list(&body),
                    (12, Some(a)) => a.key_exchange = key_exchange(&body),
                    (14, Some(_)) => {
                        return Answer::Accepted(accepted.take().unwrap_or_default());
                    }
                    (_, None) => return Answer::Refused(format!("handshake message {kind}")),
                    _ => {}
                }
            }
        }
    }

    /// Takes one complete handshake message off the buffer.
    fn next_message(&mut self) -> Option<(u8, Vec<u8>)> {
        if self.handshake.len() < 4 {
            return None;
        }
        let len = u32::from_be_bytes([0, self.handshake[1], self.handshake[2], self.handshake[3]])
            as usize;
        if self.handshake.len() < 4 + len {
            return None;
        }
        let kind = self.handshake[0];
        let body = self.handshake[4..4 + len].to_vec();
        self.handshake.drain(..4 + len);
        Some((kind, body))
    }
}

fn alert(fragment: &[u8]) -> String {
    let description = match fragment.get(1) {
        Some(40) => "handshake_failure",
        Some(47) => "illegal_parameter",
        Some(70) => "protocol_version",
        Some(71) => "insufficient_security",
        Some(80) => "internal_error",
        Some(86) => "inappropriate_fallback",
        Some(109) => "missing_extension",
        Some(112) => "unrecognized_name",
        Some(_) => "alert",
        None => "a truncated alert",
    };
    format!("{description} alert")
}

/// A cursor over a message body.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(head)
    }

    fn u8(&mut self) -> Option<u8> {
        Some(self.take(1)?[0])
    }

    fn u16(&mut self) -> Option<u16> {
        let b = self.take(2)?;
        Some(u16::from_be_bytes([b[0], b[1]]))
    }

    fn u24(&mut self) -> Option<usize> {
        let b = self.take(3)?;
        Some(u32::from_be_bytes([0, b[0], b[1], b[2]]) as usize)
    }

    fn vec16(&mut self) -> Option<&'a [u8]> {
        let n = self.u16()? as usize;
        self.take(n)
    }
}

fn server_hello(body: &[u8]) -> Option<Accepted> {
    let mut r = Reader(body);
    let legacy = r.u16()?;
    let random = r.take(32)?;
    let session = r.u8()? as usize;
    r.take(session)?;
    let suite = r.u16()?;
    r.u8()?; // compression
    let mut hello = Accepted {
        version: legacy,
        suite,
        retry: random == RETRY_RANDOM,
        ..Accepted::default()
    };
    if let Some(extensions) = r.vec16() {
        let mut e = Reader(extensions);
        while let (Some(kind), Some(data)) = (e.u16(), e.vec16()) {
            let mut d = Reader(data);
            match kind {
                43 => hello.version = d.u16()?,
                51 => hello.group = d.u16(),
                _ => {}
            }
        }
    }
    Some(hello)
}

fn certificate_list(body: &[u8]) -> Vec<Vec<u8>> {
    let mut r = Reader(body);
    let Some(total) = r.u24() else {
        return Vec::new();
    };
    let Some(list) = r.take(total) else {
        return Vec::new();
    };
    let mut certs = Reader(list);
    let mut out = Vec::new();
    while let Some(der) = certs.u24().and_then(|n| certs.take(n)) {
        out.push(der.to_vec());
    }
    out
}

fn key_exchange(body: &[u8]) -> Option<KeyExchange> {
    let mut r = Reader(body);
    if body.first() == Some(&3) {
        r.u8()?;
        return Some(KeyExchange::Ecdhe(r.u16()?));
    }
    // ServerDHParams: dh_p, dh_g, dh_Ys, each with a 16-bit length.
    let p = r.vec16()?;
    let leading = p.iter().take_while(|&&b| b == 0).count();
    let bits = p[leading..]
        .first()
        .map_or(0, |b| (p.len() - leading) * 8 - b.leading_zeros() as usize);
    Some(KeyExchange::Dhe(bits))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hello_is_one_well_formed_record() {
        let hello = Hello {
            version: TLS13,
            suites: &[0x1301],
            groups: &[0x001d],
            server_name: Some("example.test"),
        }
        .encode();
        assert_eq!(hello[0], 22);
        assert_eq!(&hello[1..3], &[3, 1]);
        assert_eq!(
            u16::from_be_bytes([hello[3], hello[4]]) as usize,
            hello.len() - 5
        );
        assert_eq!(hello[5], 1, "a ClientHello");
        assert!(hello.windows(12).any(|w| w == b"example.test"));
        let ssl3 = Hello {
            version: SSL3,
            suites: &[0x000a],
            groups: &[],
            server_name: None,
        }
        .encode();
        assert_eq!(&ssl3[1..3], &[3, 0]);
        assert_eq!(&ssl3[9..11], &[3, 0], "client_version");
    }

    #[test]
    fn server_hellos_and_retries_are_told_apart() {
        let mut body = vec![3, 3];
        body.extend_from_slice(&RETRY_RANDOM);
        body.extend_from_slice(&[0, 0x13, 0x01, 0]);
        body.extend_from_slice(&[0, 12, 0, 43, 0, 2, 3, 4, 0, 51, 0, 2, 0x11, 0xec]);
        let hello = server_hello(&body).unwrap();
        assert!(hello.retry);
        assert_eq!((hello.version, hello.suite), (TLS13, 0x1301));
        assert_eq!(hello.group, Some(0x11ec));
    }

    #[test]
    fn dh_prime_size_is_counted_in_bits() {
        let mut body = vec![0, 3, 0x01, 0xff, 0xff];
        body.extend_from_slice(&[0, 1, 2, 0, 1, 5]);
        assert_eq!(key_exchange(&body), Some(KeyExchange::Dhe(17)));
        assert_eq!(
            key_exchange(&[3, 0, 0x17, 65]),
            Some(KeyExchange::Ecdhe(0x17))
        );
    }
}
