//! TLS and mutual TLS on the listener, with certificates the test makes itself (rcgen): a CA,
//! the server's certificate, a valid client, a client from another CA and an expired client.
//! The client side is rustls over a real TCP connection to the gateway binary.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rcgen::{
    BasicConstraints, Certificate, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};

use crate::common::{config_file, Daemon, BIN};

struct Ca {
    cert: Certificate,
    key: KeyPair,
}

impl Ca {
    fn new(name: &str) -> Ca {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        Ca {
            cert: params.self_signed(&key).unwrap(),
            key,
        }
    }

    /// A certificate and key signed by this CA, as PEM; `expired` puts its validity in 2020.
    fn issue(
        &self,
        names: &[&str],
        usage: ExtendedKeyUsagePurpose,
        expired: bool,
    ) -> (String, String) {
        let key = KeyPair::generate().unwrap();
        let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
        let mut params = CertificateParams::new(names).unwrap();
        params
            .distinguished_name
            .push(DnType::CommonName, "mcp-edge test");
        params.extended_key_usages = vec![usage];
        if expired {
            params.not_before = rcgen::date_time_ymd(2020, 1, 1);
            params.not_after = rcgen::date_time_ymd(2020, 12, 31);
        }
        let cert = params.signed_by(&key, &self.cert, &self.key).unwrap();
        (cert.pem(), key.serialize_pem())
    }
}

/// Writes the server's files and returns the `[security]` section naming them.
fn server_files(dir: &Path, ca: &Ca, client_ca: Option<&Ca>) -> String {
    let (cert, key) = ca.issue(
        &["localhost", "127.0.0.1"],
        ExtendedKeyUsagePurpose::ServerAuth,
        false,
    );
    std::fs::write(dir.join("server.pem"), cert).unwrap();
    std::fs::write(dir.join("server.key"), key).unwrap();
    let mut section = format!(
        "[security]\ntls_cert = \"{}\"\ntls_key = \"{}\"\n",
        dir.join("server.pem").display(),
        dir.join("server.key").display()
    );
    if let Some(client_ca) = client_ca {
        std::fs::write(dir.join("clients.pem"), client_ca.cert.pem()).unwrap();
        section.push_str(&format!(
            "tls_client_ca = \"{}\"\n",
            dir.join("clients.pem").display()
        ));
    }
    section
}

/// What one HTTPS request got: the status, or the error that ended it, and the server's
/// certificate.
struct Outcome {
    status: Result<u16, String>,
    server_cert: Option<Vec<u8>>,
}

/// `GET /health` over TLS, trusting `ca`, presenting `client` (PEM certificate and key) if any.
fn https_get(addr: SocketAddr, ca: &Ca, client: Option<&(String, String)>) -> Outcome {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.cert.der().clone()).unwrap();
    let builder = rustls::ClientConfig::builder().with_root_certificates(roots);
    let config = match client {
        Some((cert, key)) => builder
            .with_client_auth_cert(
                CertificateDer::pem_slice_iter(cert.as_bytes())
                    .collect::<Result<Vec<_>, _>>()
                    .unwrap(),
                PrivateKeyDer::from_pem_slice(key.as_bytes()).unwrap(),
            )
            .unwrap(),
        None => builder.with_no_client_auth(),
    };
    let mut connection =
        rustls::ClientConnection::new(Arc::new(config), ServerName::try_from("localhost").unwrap())
            .unwrap();
    let mut socket = TcpStream::connect(addr).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut tls = rustls::Stream::new(&mut connection, &mut socket);
    let request = "GET /health HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";
    let mut answer = String::new();
    let status = tls
        .write_all(request.as_bytes())
        .and_then(|()| tls.read_to_string(&mut answer))
        .map_err(|e| e.to_string())
        .and_then(|_| {
            answer
                .split_whitespace()
                .nth(1)
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| format!("no HTTP answer: {answer:?}"))
        });
    Outcome {
        status,
        server_cert: connection
            .peer_certificates()
            .and_then(|c| c.first())
            .map(|c| c.to_vec()),
    }
}

#[test]
fn mutual_tls_admits_a_valid_client_and_refuses_strangers() {
    let ca = Ca::new("mcp-edge test CA");
    let stranger_ca = Ca::new("someone else's CA");
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(&server_files(dir.path(), &ca, Some(&ca)));
    assert!(
        daemon
            .logs()
            .iter()
            .any(|l| l.contains("client certificates required")),
        "the listener says what it requires"
    );

    let valid = ca.issue(
        &["device-fleet-client"],
        ExtendedKeyUsagePurpose::ClientAuth,
        false,
    );
    assert_eq!(https_get(daemon.addr, &ca, Some(&valid)).status, Ok(200));

    let refusals = [
        ("no certificate", https_get(daemon.addr, &ca, None)),
        (
            "another CA",
            https_get(
                daemon.addr,
                &ca,
                Some(&stranger_ca.issue(&["intruder"], ExtendedKeyUsagePurpose::ClientAuth, false)),
            ),
        ),
        (
            "expired",
            https_get(
                daemon.addr,
                &ca,
                Some(&ca.issue(&["old-client"], ExtendedKeyUsagePurpose::ClientAuth, true)),
            ),
        ),
    ];
    for (what, outcome) in refusals {
        eprintln!("client with {what}: {:?}", outcome.status);
        assert!(
            outcome.status.is_err(),
            "a client with {what} got an answer: {:?}",
            outcome.status
        );
    }

    // Plain HTTP to the TLS port gets no HTTP answer.
    let mut plain = TcpStream::connect(daemon.addr).unwrap();
    plain
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    plain
        .write_all(b"GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .unwrap();
    let mut answer = Vec::new();
    let _ = plain.read_to_end(&mut answer);
    assert!(
        !String::from_utf8_lossy(&answer).contains("200 OK"),
        "plain HTTP was answered"
    );
    // The gateway still serves the valid client after all that.
    assert_eq!(https_get(daemon.addr, &ca, Some(&valid)).status, Ok(200));
}

#[test]
fn a_rotated_certificate_is_served_after_sighup_and_a_broken_one_is_not() {
    let ca = Ca::new("mcp-edge test CA");
    let dir = tempfile::tempdir().unwrap();
    let mut daemon = Daemon::start(&server_files(dir.path(), &ca, None));
    let first = https_get(daemon.addr, &ca, None);
    assert_eq!(first.status, Ok(200));

    // The operator's renewal writes new files at the same paths.
    server_files(dir.path(), &ca, None);
    daemon.signal(nix::sys::signal::Signal::SIGHUP);
    daemon.wait_for_log(
        "TLS certificate, key and client CA re-read",
        Duration::from_secs(10),
    );
    let second = https_get(daemon.addr, &ca, None);
    assert_eq!(second.status, Ok(200));
    assert_ne!(
        first.server_cert, second.server_cert,
        "the new certificate is served"
    );

    std::fs::write(dir.path().join("server.pem"), "not a certificate").unwrap();
    daemon.signal(nix::sys::signal::Signal::SIGHUP);
    let line = daemon.wait_for_log("TLS reload refused", Duration::from_secs(10));
    assert!(line.contains("security.tls_cert"), "{line}");
    let third = https_get(daemon.addr, &ca, None);
    assert_eq!(third.status, Ok(200));
    assert_eq!(
        third.server_cert, second.server_cert,
        "the running certificate is kept"
    );
}

#[test]
fn an_unusable_tls_file_stops_start_up_with_its_key_and_path() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("cert.pem"), "-----BEGIN NOTHING-----\n").unwrap();
    std::fs::write(dir.path().join("key.pem"), "").unwrap();
    let (_config_dir, path) = config_file(&format!(
        "[security]\ntls_cert = \"{0}/cert.pem\"\ntls_key = \"{0}/key.pem\"\n",
        dir.path().display()
    ));
    let output = std::process::Command::new(BIN)
        .args(["serve", "--config"])
        .arg(&path)
        .env("STATE_DIRECTORY", dir.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(78), "{stderr}");
    assert!(stderr.contains("security.tls_cert"), "{stderr}");
    assert!(stderr.contains("cert.pem"), "{stderr}");
}

/// Polls `front`'s `/health` until its `mcp` line contains `wanted`, for up to 20 s.
fn await_health(front: &Daemon, wanted: &str) -> String {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let detail = crate::common::mcp_health(front);
        if detail.contains(wanted) {
            return detail;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "never \"{wanted}\": {detail}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// An upstream behind mutual TLS (a second gateway with `tls_client_ca`). A front with
/// `tls_client_cert`/`tls_client_key` issued by that CA federates it; a front whose certificate
/// another CA issued is refused by the upstream and keeps reconnecting. The fronts trust the
/// test CA through SSL_CERT_FILE, which the system trust store honours.
#[test]
fn an_upstream_behind_mutual_tls_takes_the_configured_client_certificate() {
    let ca = Ca::new("mcp-edge fleet CA");
    let stranger_ca = Ca::new("someone else's CA");
    let dir = tempfile::tempdir().unwrap();
    let back = Daemon::start(&format!(
        "{}{}",
        server_files(dir.path(), &ca, Some(&ca)),
        crate::common::fixture_device_section()
    ));
    std::fs::write(dir.path().join("trust.pem"), ca.cert.pem()).unwrap();
    let front = |name: &str, issuer: &Ca| {
        let (cert, key) = issuer.issue(&[name], ExtendedKeyUsagePurpose::ClientAuth, false);
        let (cert_path, key_path) = (
            dir.path().join(format!("{name}.pem")),
            dir.path().join(format!("{name}.key")),
        );
        std::fs::write(&cert_path, cert).unwrap();
        std::fs::write(&key_path, key).unwrap();
        Daemon::start_with(
            &format!(
                "[[upstreams]]\nname = \"back\"\nprefix = \"back\"\n\
                 url = \"https://localhost:{}/mcp\"\ntls_client_cert = \"{}\"\ntls_client_key = \"{}\"\n",
                back.addr.port(),
                cert_path.display(),
                key_path.display()
            ),
            |command| {
                command.env("SSL_CERT_FILE", dir.path().join("trust.pem"));
            },
        )
    };
    let fleet = front("fleet-device", &ca);
    let mut stranger = front("stranger-device", &stranger_ca);

    // The MCP handshake and the listing went over mutual TLS: the upstream's tools joined.
    let joined = await_health(&fleet, "back ready");
    stranger.wait_for_log("upstream connection failed", Duration::from_secs(20));
    let alone = await_health(&stranger, "back reconnecting");
    let tools = |detail: &str| -> usize {
        detail
            .split(' ')
            .next()
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    };
    assert!(tools(&joined) > tools(&alone), "{joined} / {alone}");
}
