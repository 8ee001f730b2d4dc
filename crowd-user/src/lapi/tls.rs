//! TLS for the Local API (rustls, ring): a certificate and key, and optionally a CA whose client
//! certificates are verified when given (CrowdSec's default `VerifyClientCertIfGiven`) or
//! required. A verified client certificate authenticates by its OU, as CrowdSec's does: an OU in
//! the bouncers' list makes a bouncer `<CN>@<ip>` (no API key needed), one in the agents' list a
//! machine `<CN>@<ip>` (no login needed).
use std::{net::SocketAddr, path::PathBuf, sync::Arc};

use anyhow::{Context, Result};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject};

/// TLS settings.
#[derive(Clone, Debug, clap::Args)]
pub struct TlsArgs {
    /// Serve HTTPS with this certificate chain (PEM).
    #[arg(long, requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// Its private key (PEM).
    #[arg(long, requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Verify client certificates against this CA (PEM).
    #[arg(long, requires = "tls_cert")]
    pub tls_client_ca: Option<PathBuf>,
    /// Refuse clients without a certificate (default: verify it when one is given).
    #[arg(long, requires = "tls_client_ca")]
    pub tls_require_client_cert: bool,
    /// Certificate OUs that make a bouncer.
    #[arg(long, value_delimiter = ',', default_value = "bouncer-ou")]
    pub tls_bouncers_ou: Vec<String>,
    /// Certificate OUs that make an agent.
    #[arg(long, value_delimiter = ',', default_value = "agent-ou")]
    pub tls_agents_ou: Vec<String>,
}

/// Who a verified client certificate names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Peer {
    /// Common name.
    pub cn: String,
    /// Organisational units.
    pub ou: Vec<String>,
}

/// What a verified client certificate makes of its holder.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CertRole {
    /// A bouncer named `<CN>`.
    Bouncer(String),
    /// An agent named `<CN>`.
    Agent(String),
}

/// The OU lists.
#[derive(Clone, Debug, Default)]
pub struct Roles {
    /// Bouncers' OUs.
    pub bouncers: Vec<String>,
    /// Agents' OUs.
    pub agents: Vec<String>,
}

impl Roles {
    /// The role a peer's certificate gives, if any.
    #[must_use]
    pub fn of(&self, p: &Peer) -> Option<CertRole> {
        if p.ou.iter().any(|o| self.bouncers.contains(o)) {
            Some(CertRole::Bouncer(p.cn.clone()))
        } else if p.ou.iter().any(|o| self.agents.contains(o)) {
            Some(CertRole::Agent(p.cn.clone()))
        } else {
            None
        }
    }
}

/// A server configuration from the settings (`None` without `--tls-cert`).
///
/// # Errors
/// Unreadable or invalid PEM files, named.
pub fn server_config(a: &TlsArgs) -> Result<Option<Arc<rustls::ServerConfig>>> {
    let (Some(cert), Some(key)) = (&a.tls_cert, &a.tls_key) else { return Ok(None) };
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .with_context(|| format!("reading `{}`", cert.display()))?
        .collect::<Result<_, _>>()
        .with_context(|| format!("`{}`: not a PEM certificate chain", cert.display()))?;
    let key =
        PrivateKeyDer::from_pem_file(key).with_context(|| format!("`{}`: not a PEM private key", key.display()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?;
    let builder = match &a.tls_client_ca {
        None => builder.with_no_client_auth(),
        Some(ca) => {
            let mut roots = rustls::RootCertStore::empty();
            for c in CertificateDer::pem_file_iter(ca).with_context(|| format!("reading `{}`", ca.display()))? {
                roots.add(c.with_context(|| format!("`{}`: not a PEM certificate", ca.display()))?)?;
            }
            let v = rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
            let v = if a.tls_require_client_cert { v } else { v.allow_unauthenticated() };
            builder.with_client_cert_verifier(v.build().context("client certificate verifier")?)
        }
    };
    let mut cfg = builder.with_single_cert(chain, key).context("the certificate and key do not match")?;
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Some(Arc::new(cfg)))
}

/// The CN and OUs of a client's (already verified) leaf certificate.
#[must_use]
pub fn peer_of(certs: Option<&[CertificateDer<'_>]>) -> Option<Peer> {
    let leaf = certs?.first()?;
    let (_, c) = x509_parser::parse_x509_certificate(leaf.as_ref()).ok()?;
    let subject = c.subject();
    let cn = subject.iter_common_name().next()?.as_str().ok()?.to_owned();
    let ou = subject.iter_organizational_unit().filter_map(|o| o.as_str().ok().map(str::to_owned)).collect();
    Some(Peer { cn, ou })
}

/// Serves `app` over TLS on `listener` until `shutdown`: each connection's address and verified
/// client certificate are put in its requests' extensions.
pub async fn serve(
    listener: tokio::net::TcpListener,
    cfg: Arc<rustls::ServerConfig>,
    app: axum::Router,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) {
    let acceptor = tokio_rustls::TlsAcceptor::from(cfg);
    tokio::pin!(shutdown);
    loop {
        let (tcp, addr) = tokio::select! {
            r = listener.accept() => match r {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(error = %e, "local API: accept");
                    continue;
                }
            },
            () = &mut shutdown => return,
        };
        let (acceptor, app) = (acceptor.clone(), app.clone());
        tokio::spawn(async move {
            let tls = match tokio::time::timeout(std::time::Duration::from_secs(10), acceptor.accept(tcp)).await {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => {
                    tracing::debug!(%addr, error = %e, "TLS handshake refused");
                    return;
                }
                Err(_) => return,
            };
            let peer = peer_of(tls.get_ref().1.peer_certificates());
            let svc = tower::ServiceExt::map_request(app, move |req: hyper::Request<hyper::body::Incoming>| {
                let mut req = req.map(axum::body::Body::new);
                req.extensions_mut().insert(axum::extract::ConnectInfo::<SocketAddr>(addr));
                if let Some(p) = &peer {
                    req.extensions_mut().insert(p.clone());
                }
                req
            });
            let svc = hyper_util::service::TowerToHyperService::new(svc);
            let io = hyper_util::rt::TokioIo::new(tls);
            if let Err(e) = hyper::server::conn::http1::Builder::new().serve_connection(io, svc).await {
                tracing::debug!(%addr, error = %e, "local API connection");
            }
        });
    }
}
