//! Node-key TLS for both transports: the self-signed certificate a node presents, the check
//! of a peer's certificate, the `quiche::Config`s for listening and dialling over QUIC, and
//! the TLS contexts for TLS 1.3 over TCP (the same certificates, checks and settings; ALPN
//! [`TCP_ALPN`]).
//!
//! Between nodes, QUIC/TLS 1.3 is mutually authenticated with the node keys (design §3). Each
//! node presents a self-signed Ed25519 X.509 certificate made from its node key; no certificate
//! authority is involved. A peer's certificate is accepted when its key is Ed25519, it is validly
//! self-signed and it is in date; its raw 32-byte key *is* the peer's [`NodeIdentity`]. TLS 1.3's
//! CertificateVerify proves that the peer holds the matching private key.
//!
//! * The dialler knows whom it dials: [`client_config`] captures the expected identity and fails
//!   the handshake with `bad_certificate` (QUIC error 0x12a) when the server's key differs.
//! * The listener learns whom it accepted: [`server_config`] requires a client certificate
//!   (`certificate_required`, 0x174, when none is sent) and checks it; the driver then reads the
//!   identity with [`peer_identity_from_cert`] on `conn.peer_cert()` once the connection is
//!   established, before it reads any stream or datagram data of that connection.
//!
//! There is no 0-RTT and no session resumption: a resumed session carries no certificate, so it
//! could not authenticate the peer. Ed25519 is the only signature algorithm accepted from a peer.
//!
//! Edges: this module builds configurations and checks certificates; it never touches a socket.
//! The certificate checks read the clock (`SystemTime::now()`) inside the TLS callbacks, which
//! run inside quiche calls, so they stay within the Transport's QUIC driver like every other
//! quiche call.

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use boring::asn1::Asn1Time;
use boring::error::ErrorStack;
use boring::pkey::{Id, PKey};
use boring::ssl::{
    AlpnError, SslAlert, SslContext, SslContextBuilder, SslMethod, SslMode, SslOptions,
    SslSessionCacheMode, SslSignatureAlgorithm, SslVerifyError, SslVerifyMode, SslVersion,
};
use boring::x509::{X509Ref, X509};
use rcgen::{
    CertificateParams, DistinguishedName, DnType, KeyPair as RcgenKeyPair, SerialNumber,
    PKCS_ED25519,
};

use crate::identity::{Keypair, NodeIdentity, KEY_LEN, PKCS8_ED25519_PREFIX};

pub use crate::transport::tcp_mux::TCP_ALPN;
pub use crate::transport::ALPN;

/// The common name in every node certificate. It carries no meaning: the key is the identity.
const CERT_COMMON_NAME: &str = "netmachine node";

/// QUIC transport settings shared by the listening and the dialling side.
///
/// Memory: a peer can make a connection buffer up to `initial_max_data_bytes` of received stream
/// data (quiche may widen the window as data is consumed, up to its 24 MiB connection-window cap)
/// and `dgram_recv_queue_len` received datagrams of at most `max_udp_payload_bytes` each. With the
/// defaults that is 16 MiB + 1024 × 1350 B ≈ 17.3 MiB per connection in the worst case.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct QuicParams {
    /// A connection with no traffic for this long is closed. Default 10 s (the Transport sets it from `TransportConfig::idle_timeout`).
    pub idle_timeout: Duration,
    /// The largest UDP payload sent, and advertised as the largest accepted. Default 1350 bytes,
    /// which fits the usual 1500-byte Ethernet MTU with IPv6 headers to spare.
    pub max_udp_payload_bytes: usize,
    /// Connection-level flow-control window: stream bytes the peer may send before we read them.
    /// Default 16 MiB.
    pub initial_max_data_bytes: u64,
    /// Per-stream window for bidirectional streams we open. Default 4 MiB.
    pub initial_max_stream_data_bidi_local_bytes: u64,
    /// Per-stream window for bidirectional streams the peer opens. Default 4 MiB.
    pub initial_max_stream_data_bidi_remote_bytes: u64,
    /// Per-stream window for unidirectional streams the peer opens. Default 4 MiB.
    pub initial_max_stream_data_uni_bytes: u64,
    /// Bidirectional streams the peer may open (quiche raises the limit as streams finish).
    /// Default 1024.
    pub initial_max_streams_bidi: u64,
    /// Unidirectional streams the peer may open (raised as streams finish). Default 1024.
    pub initial_max_streams_uni: u64,
    /// Whether the QUIC DATAGRAM extension (unreliable messages) is offered. Default true.
    pub dgram_enabled: bool,
    /// Received datagrams kept until the driver reads them; more are dropped. Default 1024.
    pub dgram_recv_queue_len: usize,
    /// Datagrams queued for sending; more are refused. Default 1024.
    pub dgram_send_queue_len: usize,
    /// The congestion controller. Default cubic.
    pub cc_algorithm: quiche::CongestionControlAlgorithm,
}

impl Default for QuicParams {
    fn default() -> Self {
        const MIB: u64 = 1024 * 1024;
        QuicParams {
            idle_timeout: Duration::from_secs(10),
            max_udp_payload_bytes: 1350,
            initial_max_data_bytes: 16 * MIB,
            initial_max_stream_data_bidi_local_bytes: 4 * MIB,
            initial_max_stream_data_bidi_remote_bytes: 4 * MIB,
            initial_max_stream_data_uni_bytes: 4 * MIB,
            initial_max_streams_bidi: 1024,
            initial_max_streams_uni: 1024,
            dgram_enabled: true,
            dgram_recv_queue_len: 1024,
            dgram_send_queue_len: 1024,
            cc_algorithm: quiche::CongestionControlAlgorithm::CUBIC,
        }
    }
}

/// A node's TLS credentials, built once per node from its key: the self-signed certificate and
/// the private key, both in DER.
pub(crate) struct TlsIdentity {
    node: NodeIdentity,
    cert_der: Vec<u8>,
    key_pkcs8_der: Vec<u8>,
}

impl fmt::Debug for TlsIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsIdentity")
            .field("node", &self.node)
            .field("cert_der", &format_args!("{} bytes", self.cert_der.len()))
            .finish_non_exhaustive()
    }
}

impl TlsIdentity {
    /// Makes the node's certificate from its key.
    pub(crate) fn new(key: &Keypair) -> Result<TlsIdentity, TlsError> {
        Ok(TlsIdentity {
            node: key.node_identity(),
            cert_der: certificate_der(key)?,
            key_pkcs8_der: key.to_pkcs8_der(),
        })
    }

    /// The node this identity belongs to.
    #[cfg(test)]
    pub(crate) fn node_identity(&self) -> NodeIdentity {
        self.node
    }

    /// The node's self-signed certificate, DER.
    #[cfg(test)]
    pub(crate) fn cert_der(&self) -> &[u8] {
        &self.cert_der
    }
}

/// Why a certificate or a TLS configuration was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum TlsError {
    /// rcgen could not make the node certificate.
    CertBuild(String),
    /// BoringSSL refused a call while building a TLS context or reading a certificate.
    Boring(String),
    /// quiche refused the configuration.
    Quiche(quiche::Error),
    /// The certificate's key is not Ed25519.
    NotEd25519,
    /// The certificate's signature does not verify with its own key.
    NotSelfSigned,
    /// The certificate's validity ended before now.
    Expired,
    /// The certificate's validity starts after now.
    NotYetValid,
    /// The bytes are not a DER X.509 certificate.
    BadDer(String),
}

impl fmt::Display for TlsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TlsError::CertBuild(m) => write!(f, "cannot make the node certificate: {m}"),
            TlsError::Boring(m) => write!(f, "BoringSSL error: {m}"),
            TlsError::Quiche(e) => write!(f, "quiche error: {e}"),
            TlsError::NotEd25519 => f.write_str("the certificate key is not Ed25519"),
            TlsError::NotSelfSigned => f.write_str("the certificate is not validly self-signed"),
            TlsError::Expired => f.write_str("the certificate has expired"),
            TlsError::NotYetValid => f.write_str("the certificate is not valid yet"),
            TlsError::BadDer(m) => write!(f, "not a DER X.509 certificate: {m}"),
        }
    }
}

impl std::error::Error for TlsError {}

impl From<ErrorStack> for TlsError {
    fn from(e: ErrorStack) -> Self {
        TlsError::Boring(e.to_string())
    }
}

impl From<quiche::Error> for TlsError {
    fn from(e: quiche::Error) -> Self {
        TlsError::Quiche(e)
    }
}

/// Makes the node's self-signed X.509 certificate (DER) from its Ed25519 key.
///
/// The certificate has no subject alternative name and no extensions, a fixed common name, a
/// validity from 2024-01-01 to 4096-01-01 and a serial number derived from the key
/// ([`certificate_serial`]): only the key in it matters. Nothing in it depends on the clock or
/// on randomness and Ed25519 signatures are deterministic, so one key always gives the same bytes
/// (docs/wire.md §7.3 and its vector `node-cert-der`).
pub(crate) fn certificate_der(key: &Keypair) -> Result<Vec<u8>, TlsError> {
    let pkcs8 = key.to_pkcs8_der();
    debug_assert_eq!(pkcs8[..PKCS8_ED25519_PREFIX.len()], PKCS8_ED25519_PREFIX);
    let signer =
        RcgenKeyPair::from_pkcs8_der_and_sign_algo(&pkcs8.as_slice().into(), &PKCS_ED25519)
            .map_err(|e| TlsError::CertBuild(e.to_string()))?;
    let mut params = CertificateParams::default();
    let mut name = DistinguishedName::new();
    name.push(DnType::CommonName, CERT_COMMON_NAME);
    params.distinguished_name = name;
    params.not_before = rcgen::date_time_ymd(2024, 1, 1);
    params.not_after = rcgen::date_time_ymd(4096, 1, 1);
    params.serial_number = Some(certificate_serial(key));
    let cert = params
        .self_signed(&signer)
        .map_err(|e| TlsError::CertBuild(e.to_string()))?;
    Ok(cert.der().to_vec())
}

/// The serial number of the node certificate: the first 20 bytes of SHA-256 of the raw 32-byte
/// public key, with the top bit cleared so that it is a positive INTEGER of at most 20 bytes
/// (RFC 5280 §4.1.2.2). This is what rcgen would pick by itself; it is set explicitly so that
/// the certificate's bytes do not depend on a library default.
fn certificate_serial(key: &Keypair) -> SerialNumber {
    let digest = ring::digest::digest(&ring::digest::SHA256, &key.public());
    let mut serial = digest.as_ref()[..20].to_vec();
    serial[0] &= 0x7f;
    SerialNumber::from(serial)
}

/// Checks a peer's certificate (DER) and returns its node identity: the key must be Ed25519, the
/// certificate validly self-signed and in date at `now`.
pub(crate) fn peer_identity_from_cert(
    der: &[u8],
    now: SystemTime,
) -> Result<NodeIdentity, TlsError> {
    let cert = X509::from_der(der).map_err(|e| TlsError::BadDer(e.to_string()))?;
    check_certificate(&cert, now)
}

/// The `quiche::Config` for accepting connections: presents `id`, requires a client certificate
/// and accepts any valid self-signed Ed25519 one. The driver records the client's identity from
/// `conn.peer_cert()` once established.
pub(crate) fn server_config(
    id: &TlsIdentity,
    params: &QuicParams,
) -> Result<quiche::Config, TlsError> {
    let mut builder = tls_context(id)?;
    require_client_certificate(&mut builder);
    quic_config(builder, params)
}

/// The TLS context for accepting TLS-over-TCP connections: the checks of [`server_config`],
/// and the ALPN [`TCP_ALPN`] (a client offering no other is refused with `no_application_protocol`).
pub(crate) fn tcp_server_context(id: &TlsIdentity) -> Result<SslContext, TlsError> {
    let mut builder = tls_context(id)?;
    require_client_certificate(&mut builder);
    builder.set_alpn_select_callback(|_, client| {
        boring::ssl::select_next_proto(TCP_ALPN_WIRE, client).ok_or(AlpnError::ALERT_FATAL)
    });
    tcp_modes(&mut builder);
    Ok(builder.build())
}

/// The TLS context for dialling the node `expected` over TCP: the checks of [`client_config`]
/// (a mismatch also sets `mismatch`, which the connection reports), offering [`TCP_ALPN`].
/// Build one per dial.
pub(crate) fn tcp_client_context(
    id: &TlsIdentity,
    expected: NodeIdentity,
    mismatch: Arc<AtomicBool>,
) -> Result<SslContext, TlsError> {
    let mut builder = tls_context(id)?;
    expect_server(&mut builder, expected, Some(mismatch));
    builder.set_alpn_protos(TCP_ALPN_WIRE)?;
    tcp_modes(&mut builder);
    Ok(builder.build())
}

/// [`TCP_ALPN`] in ALPN wire format (a length byte, then the id).
const TCP_ALPN_WIRE: &[u8] = b"\x10netmachine-tcp/1";

/// Non-blocking writes from a buffer that may move between retries, one record at a time.
fn tcp_modes(builder: &mut SslContextBuilder) {
    builder.set_mode(SslMode::ACCEPT_MOVING_WRITE_BUFFER | SslMode::ENABLE_PARTIAL_WRITE);
}

/// Requires a valid self-signed Ed25519 client certificate (any node).
fn require_client_certificate(builder: &mut SslContextBuilder) {
    builder.set_custom_verify_callback(
        SslVerifyMode::PEER | SslVerifyMode::FAIL_IF_NO_PEER_CERT,
        |ssl| {
            let cert = ssl
                .peer_certificate()
                .ok_or(SslVerifyError::Invalid(SslAlert::CERTIFICATE_REQUIRED))?;
            match check_certificate(&cert, SystemTime::now()) {
                Ok(_) => Ok(()),
                Err(e) => {
                    log::debug!("refusing a client certificate: {e}");
                    Err(SslVerifyError::Invalid(alert_for(&e)))
                }
            }
        },
    );
}

/// The `quiche::Config` for dialling the node `expected`: presents `id` and fails the handshake
/// with `bad_certificate` unless the server's certificate is a valid self-signed Ed25519 one with
/// key `expected`. Build one per dial.
pub(crate) fn client_config(
    id: &TlsIdentity,
    expected: NodeIdentity,
    params: &QuicParams,
) -> Result<quiche::Config, TlsError> {
    let mut builder = tls_context(id)?;
    expect_server(&mut builder, expected, None);
    quic_config(builder, params)
}

/// Fails the handshake with `bad_certificate` unless the server's certificate is a valid
/// self-signed Ed25519 one with key `expected`; a refusal also sets `mismatch`, if given.
fn expect_server(
    builder: &mut SslContextBuilder,
    expected: NodeIdentity,
    mismatch: Option<Arc<AtomicBool>>,
) {
    builder.set_custom_verify_callback(SslVerifyMode::PEER, move |ssl| {
        let refuse = |alert| {
            if let Some(m) = &mismatch {
                m.store(true, Ordering::Relaxed);
            }
            Err(SslVerifyError::Invalid(alert))
        };
        let Some(cert) = ssl.peer_certificate() else {
            return refuse(SslAlert::BAD_CERTIFICATE);
        };
        match check_certificate(&cert, SystemTime::now()) {
            Ok(found) if found == expected => Ok(()),
            Ok(found) => {
                log::debug!(
                    "refusing server {}: expected node {}",
                    found.short(),
                    expected.short()
                );
                refuse(SslAlert::BAD_CERTIFICATE)
            }
            Err(e) => {
                log::debug!(
                    "refusing a server certificate (expected node {}): {e}",
                    expected.short()
                );
                refuse(alert_for(&e))
            }
        }
    });
}

// ---------------------------------------------------------------------------------------------
// Helpers.

/// The TLS context both sides share: TLS 1.3 only, the node's certificate and key, Ed25519 as
/// the only accepted peer signature algorithm, no session tickets and no session cache.
fn tls_context(id: &TlsIdentity) -> Result<SslContextBuilder, TlsError> {
    let mut builder = SslContextBuilder::new(SslMethod::tls())?;
    builder.set_min_proto_version(Some(SslVersion::TLS1_3))?;
    builder.set_max_proto_version(Some(SslVersion::TLS1_3))?;
    let cert = X509::from_der(&id.cert_der)?;
    builder.set_certificate(&cert)?;
    let key = PKey::private_key_from_pkcs8(&id.key_pkcs8_der)?;
    builder.set_private_key(&key)?;
    builder.check_private_key()?;
    // Without this BoringSSL offers no Ed25519 for verification, and the handshake fails with
    // NO_COMMON_SIGNATURE_ALGORITHMS (or a peer silently sends no client certificate).
    builder.set_verify_algorithm_prefs(&[SslSignatureAlgorithm::ED25519])?;
    // No resumption: a resumed session presents no certificate. quiche turns the client-side
    // cache back on for its session callback, but nothing here ever offers a saved session, and
    // our servers issue no tickets. Early data stays off (quiche's default).
    builder.set_options(SslOptions::NO_TICKET);
    builder.set_session_cache_mode(SslSessionCacheMode::OFF);
    Ok(builder)
}

/// Wraps a TLS context into a quiche configuration with `params` and the ALPN.
///
/// The verify mode set on the context is final: calling `Config::verify_peer` afterwards would
/// reset it.
fn quic_config(
    builder: SslContextBuilder,
    params: &QuicParams,
) -> Result<quiche::Config, TlsError> {
    let mut config =
        quiche::Config::with_boring_ssl_ctx_builder(quiche::PROTOCOL_VERSION, builder)?;
    apply_params(&mut config, params);
    config.set_application_protos(&[ALPN])?;
    Ok(config)
}

/// Applies the transport settings to a quiche configuration.
fn apply_params(config: &mut quiche::Config, params: &QuicParams) {
    let idle_ms = u64::try_from(params.idle_timeout.as_millis()).unwrap_or(u64::MAX);
    config.set_max_idle_timeout(idle_ms);
    config.set_max_recv_udp_payload_size(params.max_udp_payload_bytes);
    config.set_max_send_udp_payload_size(params.max_udp_payload_bytes);
    config.set_initial_max_data(params.initial_max_data_bytes);
    config.set_initial_max_stream_data_bidi_local(params.initial_max_stream_data_bidi_local_bytes);
    config
        .set_initial_max_stream_data_bidi_remote(params.initial_max_stream_data_bidi_remote_bytes);
    config.set_initial_max_stream_data_uni(params.initial_max_stream_data_uni_bytes);
    config.set_initial_max_streams_bidi(params.initial_max_streams_bidi);
    config.set_initial_max_streams_uni(params.initial_max_streams_uni);
    config.enable_dgram(
        params.dgram_enabled,
        params.dgram_recv_queue_len,
        params.dgram_send_queue_len,
    );
    config.set_cc_algorithm(params.cc_algorithm);
}

/// The checks of [`peer_identity_from_cert`] on a parsed certificate.
fn check_certificate(cert: &X509Ref, now: SystemTime) -> Result<NodeIdentity, TlsError> {
    let key = cert.public_key().map_err(|_| TlsError::NotEd25519)?;
    if key.id() != Id::ED25519 {
        return Err(TlsError::NotEd25519);
    }
    let mut raw = [0u8; KEY_LEN];
    let raw_len = key
        .raw_public_key(&mut raw)
        .map_err(|_| TlsError::NotEd25519)?
        .len();
    if raw_len != KEY_LEN {
        return Err(TlsError::NotEd25519);
    }
    match cert.verify(&key) {
        Ok(true) => {}
        Ok(false) => {
            // X509_verify leaves its reason on the thread's error queue; drain it so it cannot
            // be mistaken for the cause of a later BoringSSL failure on this thread.
            let _ = ErrorStack::get();
            return Err(TlsError::NotSelfSigned);
        }
        Err(_) => return Err(TlsError::NotSelfSigned),
    }
    let now = asn1_time(now)?;
    if cert.not_before().compare(&now)?.is_gt() {
        return Err(TlsError::NotYetValid);
    }
    if cert.not_after().compare(&now)?.is_lt() {
        return Err(TlsError::Expired);
    }
    Ok(NodeIdentity(raw))
}

/// `now` as an ASN.1 time (times before 1970 count as 1970).
fn asn1_time(now: SystemTime) -> Result<Asn1Time, TlsError> {
    let secs = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let secs = libc::time_t::try_from(secs).unwrap_or(libc::time_t::MAX);
    Ok(Asn1Time::from_unix(secs)?)
}

/// The TLS alert that reports a certificate refused for `e`.
fn alert_for(e: &TlsError) -> SslAlert {
    match e {
        TlsError::Expired | TlsError::NotYetValid => SslAlert::CERTIFICATE_EXPIRED,
        TlsError::NotEd25519 => SslAlert::UNSUPPORTED_CERTIFICATE,
        _ => SslAlert::BAD_CERTIFICATE,
    }
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;

    use rcgen::{Issuer, PKCS_ECDSA_P256_SHA256};
    use ring::rand::{SecureRandom, SystemRandom};

    use super::*;

    /// QUIC error code of a TLS alert: 0x100 + the alert.
    const BAD_CERTIFICATE: u64 = 0x12a;
    const CERTIFICATE_REQUIRED: u64 = 0x174;

    fn client_addr() -> SocketAddr {
        "127.0.0.1:1".parse().unwrap()
    }

    fn server_addr() -> SocketAddr {
        "127.0.0.1:2".parse().unwrap()
    }

    fn random_cid() -> [u8; quiche::MAX_CONN_ID_LEN] {
        let mut cid = [0u8; quiche::MAX_CONN_ID_LEN];
        SystemRandom::new().fill(&mut cid).unwrap();
        cid
    }

    fn rcgen_key(key: &Keypair) -> RcgenKeyPair {
        RcgenKeyPair::from_pkcs8_der_and_sign_algo(
            &key.to_pkcs8_der().as_slice().into(),
            &PKCS_ED25519,
        )
        .unwrap()
    }

    /// A client and a server connection, not yet started.
    fn pair(
        client_config: &mut quiche::Config,
        server_config: &mut quiche::Config,
    ) -> (quiche::Connection, quiche::Connection) {
        let client_scid = random_cid();
        let server_scid = random_cid();
        let client = quiche::connect(
            None,
            &quiche::ConnectionId::from_ref(&client_scid),
            client_addr(),
            server_addr(),
            client_config,
        )
        .unwrap();
        let server = quiche::accept(
            &quiche::ConnectionId::from_ref(&server_scid),
            None,
            server_addr(),
            client_addr(),
            server_config,
        )
        .unwrap();
        (client, server)
    }

    /// Sends every packet `from` has into `to`; returns whether any packet moved.
    fn flush(from: &mut quiche::Connection, to: &mut quiche::Connection, buf: &mut [u8]) -> bool {
        let mut moved = false;
        loop {
            match from.send(buf) {
                Ok((n, info)) => {
                    moved = true;
                    let recv = quiche::RecvInfo {
                        from: info.from,
                        to: info.to,
                    };
                    // A refused handshake surfaces here as an error; the close frame that follows
                    // is what the test looks at.
                    let _ = to.recv(&mut buf[..n], recv);
                }
                Err(quiche::Error::Done) => return moved,
                Err(e) => panic!("send failed: {e}"),
            }
        }
    }

    /// Moves packets both ways until both sides are established or nothing moves.
    fn run_handshake(client: &mut quiche::Connection, server: &mut quiche::Connection) {
        let mut buf = vec![0u8; 65535];
        for _ in 0..64 {
            let a = flush(client, server, &mut buf);
            let b = flush(server, client, &mut buf);
            if (client.is_established() && server.is_established()) || !(a || b) {
                return;
            }
        }
    }

    fn error_code(e: Option<&quiche::ConnectionError>) -> Option<u64> {
        e.map(|e| e.error_code)
    }

    #[test]
    fn certificate_round_trip() {
        let k = Keypair::generate();
        let der = certificate_der(&k).unwrap();
        assert_eq!(
            peer_identity_from_cert(&der, SystemTime::now()).unwrap(),
            k.node_identity()
        );
        let id = TlsIdentity::new(&k).unwrap();
        assert_eq!(id.node_identity(), k.node_identity());
        assert_eq!(
            peer_identity_from_cert(id.cert_der(), SystemTime::now()).unwrap(),
            k.node_identity()
        );
    }

    #[test]
    fn certificate_dates_are_checked() {
        let der = certificate_der(&Keypair::generate()).unwrap();
        let before = UNIX_EPOCH + Duration::from_secs(1_600_000_000); // 2020
        assert_eq!(
            peer_identity_from_cert(&der, before).unwrap_err(),
            TlsError::NotYetValid
        );

        let k = Keypair::generate();
        let mut params = CertificateParams::default();
        params.not_before = rcgen::date_time_ymd(2000, 1, 1);
        params.not_after = rcgen::date_time_ymd(2001, 1, 1);
        let old = params.self_signed(&rcgen_key(&k)).unwrap();
        assert_eq!(
            peer_identity_from_cert(old.der(), SystemTime::now()).unwrap_err(),
            TlsError::Expired
        );
    }

    #[test]
    fn bad_certificates_are_refused() {
        let now = SystemTime::now();

        // The node's key, but signed by another key.
        let k = Keypair::generate();
        let other = Keypair::generate();
        let issuer = Issuer::new(CertificateParams::default(), rcgen_key(&other));
        let cross = CertificateParams::default()
            .signed_by(&rcgen_key(&k), &issuer)
            .unwrap();
        assert_eq!(
            peer_identity_from_cert(cross.der(), now).unwrap_err(),
            TlsError::NotSelfSigned
        );

        // A flipped bit in the signature.
        let mut der = certificate_der(&k).unwrap();
        let last = der.len() - 1;
        der[last] ^= 1;
        assert_eq!(
            peer_identity_from_cert(&der, now).unwrap_err(),
            TlsError::NotSelfSigned
        );

        // A valid self-signed certificate with an ECDSA key.
        let ecdsa = RcgenKeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
        let ec_cert = CertificateParams::default().self_signed(&ecdsa).unwrap();
        assert_eq!(
            peer_identity_from_cert(ec_cert.der(), now).unwrap_err(),
            TlsError::NotEd25519
        );

        // Not a certificate at all.
        for garbage in [&b""[..], b"\x30\x03\x02\x01\x00", &[0xff; 200]] {
            assert!(matches!(
                peer_identity_from_cert(garbage, now),
                Err(TlsError::BadDer(_))
            ));
        }
        let good = certificate_der(&k).unwrap();
        assert!(matches!(
            peer_identity_from_cert(&good[..good.len() / 2], now),
            Err(TlsError::BadDer(_))
        ));
    }

    #[test]
    fn handshake_authenticates_both_nodes() {
        let client_key = Keypair::generate();
        let server_key = Keypair::generate();
        let client_id = TlsIdentity::new(&client_key).unwrap();
        let server_id = TlsIdentity::new(&server_key).unwrap();
        let params = QuicParams::default();
        let mut cc = client_config(&client_id, server_key.node_identity(), &params).unwrap();
        let mut sc = server_config(&server_id, &params).unwrap();
        let (mut client, mut server) = pair(&mut cc, &mut sc);

        run_handshake(&mut client, &mut server);

        assert!(client.is_established() && server.is_established());
        assert_eq!(client.application_proto(), ALPN);
        let client_cert = server.peer_cert().expect("the client sent a certificate");
        assert_eq!(
            peer_identity_from_cert(client_cert, SystemTime::now()).unwrap(),
            client_key.node_identity()
        );
        let server_cert = client.peer_cert().expect("the server sent a certificate");
        assert_eq!(
            peer_identity_from_cert(server_cert, SystemTime::now()).unwrap(),
            server_key.node_identity()
        );
        assert!(client.dgram_max_writable_len().is_some());
    }

    #[test]
    fn handshake_fails_when_the_server_is_not_the_expected_node() {
        let client_id = TlsIdentity::new(&Keypair::generate()).unwrap();
        let server_id = TlsIdentity::new(&Keypair::generate()).unwrap();
        let someone_else = Keypair::generate().node_identity();
        let params = QuicParams::default();
        let mut cc = client_config(&client_id, someone_else, &params).unwrap();
        let mut sc = server_config(&server_id, &params).unwrap();
        let (mut client, mut server) = pair(&mut cc, &mut sc);

        run_handshake(&mut client, &mut server);

        assert!(!client.is_established());
        assert!(!server.is_established());
        assert_eq!(error_code(client.local_error()), Some(BAD_CERTIFICATE));
        assert_eq!(error_code(server.peer_error()), Some(BAD_CERTIFICATE));
    }

    #[test]
    fn server_refuses_a_client_certificate_that_is_not_self_signed() {
        let client_key = Keypair::generate();
        let server_key = Keypair::generate();
        let issuer = Issuer::new(
            CertificateParams::default(),
            rcgen_key(&Keypair::generate()),
        );
        let cross = CertificateParams::default()
            .signed_by(&rcgen_key(&client_key), &issuer)
            .unwrap();
        let client_id = TlsIdentity {
            node: client_key.node_identity(),
            cert_der: cross.der().to_vec(),
            key_pkcs8_der: client_key.to_pkcs8_der(),
        };
        let server_id = TlsIdentity::new(&server_key).unwrap();
        let params = QuicParams::default();
        let mut cc = client_config(&client_id, server_key.node_identity(), &params).unwrap();
        let mut sc = server_config(&server_id, &params).unwrap();
        let (mut client, mut server) = pair(&mut cc, &mut sc);

        run_handshake(&mut client, &mut server);

        assert!(!server.is_established());
        assert_eq!(error_code(server.local_error()), Some(BAD_CERTIFICATE));
        assert_eq!(error_code(client.peer_error()), Some(BAD_CERTIFICATE));
    }

    #[test]
    fn server_requires_a_client_certificate() {
        let server_key = Keypair::generate();
        let server_id = TlsIdentity::new(&server_key).unwrap();
        let params = QuicParams::default();
        // A client that presents no certificate and accepts any server.
        let mut builder = SslContextBuilder::new(SslMethod::tls()).unwrap();
        builder
            .set_verify_algorithm_prefs(&[SslSignatureAlgorithm::ED25519])
            .unwrap();
        builder.set_custom_verify_callback(SslVerifyMode::PEER, |_| Ok(()));
        let mut cc = quic_config(builder, &params).unwrap();
        let mut sc = server_config(&server_id, &params).unwrap();
        let (mut client, mut server) = pair(&mut cc, &mut sc);

        run_handshake(&mut client, &mut server);

        assert!(!server.is_established());
        assert_eq!(error_code(server.local_error()), Some(CERTIFICATE_REQUIRED));
        assert_eq!(error_code(client.peer_error()), Some(CERTIFICATE_REQUIRED));
    }

    #[test]
    fn default_params_are_the_documented_ones() {
        let p = QuicParams::default();
        assert_eq!(p.idle_timeout, Duration::from_secs(10));
        assert_eq!(p.max_udp_payload_bytes, 1350);
        assert_eq!(p.initial_max_data_bytes, 16 << 20);
        assert_eq!(p.initial_max_stream_data_uni_bytes, 4 << 20);
        assert_eq!(p.initial_max_streams_bidi, 1024);
        assert!(p.dgram_enabled);
        assert_eq!(p.cc_algorithm, quiche::CongestionControlAlgorithm::CUBIC);
    }
}
