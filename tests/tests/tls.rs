//! The Local API over TLS (unprivileged): HTTPS with an API key; client certificates from the
//! configured CA authenticate by OU (a bouncer `<CN>@<ip>` without a key, an agent without a
//! login); a certificate from another CA is refused at the handshake, a wrong OU gets 403/401,
//! and plain HTTP gets nothing. Certificates are made here with `openssl`.
use std::{path::Path, sync::Arc};

use crowd_tests::lapi::{Api, issue, make_ca};
use serde_json::Value;

fn agent(dir: &Path, client: Option<&str>) -> ureq::Agent {
    use ureq::tls::{Certificate, ClientCert, PrivateKey, RootCerts, TlsConfig};
    let read = |f: &str| std::fs::read(dir.join(f)).unwrap();
    let ca = Certificate::from_pem(&read("ca.pem")).unwrap();
    let mut tls = TlsConfig::builder().root_certs(RootCerts::Specific(Arc::new(vec![ca])));
    if let Some(c) = client {
        let cert = Certificate::from_pem(&read(&format!("{c}.pem"))).unwrap();
        let key = PrivateKey::from_pem(&read(&format!("{c}.key"))).unwrap();
        tls = tls.client_cert(Some(ClientCert::new_with_certs(&[cert], key)));
    }
    ureq::Agent::config_builder().tls_config(tls.build()).http_status_as_error(false).build().into()
}

fn get(a: &ureq::Agent, url: &str, key: Option<&str>) -> Result<(u16, String), ureq::Error> {
    let mut r = a.get(url);
    if let Some(k) = key {
        r = r.header("X-Api-Key", k);
    }
    let mut resp = r.call()?;
    Ok((resp.status().as_u16(), resp.body_mut().read_to_string().unwrap_or_default()))
}

#[test]
fn https_keys_and_client_certificates() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    make_ca(d, "ca");
    make_ca(d, "rogue");
    issue(
        d,
        "ca",
        "server",
        "/CN=localhost",
        "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n",
    );
    issue(d, "ca", "fw", "/CN=fw1/OU=bouncer-ou", "extendedKeyUsage=clientAuth\n");
    issue(d, "ca", "agent", "/CN=agent1/OU=agent-ou", "extendedKeyUsage=clientAuth\n");
    issue(d, "ca", "other", "/CN=who/OU=somewhere", "extendedKeyUsage=clientAuth\n");
    issue(d, "rogue", "forged", "/CN=fw1/OU=bouncer-ou", "extendedKeyUsage=clientAuth\n");
    let p = |f: &str| d.join(f).to_str().unwrap().to_owned();
    let api = Api::start_with(&[
        "--tls-cert",
        &p("server.pem"),
        "--tls-key",
        &p("server.key"),
        "--tls-client-ca",
        &p("ca.pem"),
    ]);
    let key = api.bouncer("keyed");
    api.crowd(&["decisions", "add", "192.0.2.80", "--duration", "1h"]);
    let base = format!("https://localhost:{}", api.addr.port());

    // HTTPS with an API key, no client certificate (verified only when given).
    let (code, body) = get(&agent(d, None), &format!("{base}/v1/decisions?ip=192.0.2.80"), Some(&key)).unwrap();
    assert_eq!(code, 200, "{body}");
    assert!(body.contains("192.0.2.80"));
    // A bouncer certificate: no key needed; it becomes bouncer fw1@127.0.0.1 (auth tls).
    let (code, body) = get(&agent(d, Some("fw")), &format!("{base}/v1/decisions/stream?startup=true"), None).unwrap();
    assert_eq!(code, 200, "{body}");
    assert!(body.contains("192.0.2.80"));
    let list: Value = serde_json::from_str(&api.crowd(&["bouncers", "list", "-o", "json"])).unwrap();
    let tls_row = list.as_array().unwrap().iter().find(|b| b["name"] == "fw1@127.0.0.1").expect("the tls bouncer");
    assert_eq!(tls_row["auth_type"], "tls");
    // An agent certificate: alerts without a login.
    let (code, _) = get(&agent(d, Some("agent")), &format!("{base}/v1/alerts"), None).unwrap();
    assert_eq!(code, 200);
    // The right CA but neither OU: a bouncer route says 403, an agent route 401.
    let other = agent(d, Some("other"));
    assert_eq!(get(&other, &format!("{base}/v1/decisions"), None).unwrap().0, 403);
    assert_eq!(get(&other, &format!("{base}/v1/alerts"), None).unwrap().0, 401);
    // Another CA's certificate with the right OU: refused at the handshake.
    assert!(
        get(&agent(d, Some("forged")), &format!("{base}/v1/decisions"), None).is_err(),
        "a rogue CA's cert was accepted"
    );
    // Plain HTTP to the TLS port: no answer.
    let plain: ureq::Agent =
        ureq::Agent::config_builder().timeout_global(Some(std::time::Duration::from_secs(5))).build().into();
    assert!(plain.get(format!("http://127.0.0.1:{}/health", api.addr.port())).call().is_err());
    // And the server still serves.
    assert_eq!(get(&agent(d, None), &format!("{base}/health"), None).unwrap().0, 200);
}
