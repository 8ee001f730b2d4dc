//! GeoIP and ASN enrichment from MaxMind databases (`GeoLite2-City.mmdb`, `GeoLite2-ASN.mmdb`),
//! read with the `maxminddb` crate: what CrowdSec's `GeoIpCity`, `GeoIpASN` and `IpToRange`
//! methods put in `evt.Enriched`. Without a database these methods add what CrowdSec adds for
//! an unknown address (`IsInEU: false`, `SourceRange` from the address's /24 or /64).
use std::{net::IpAddr, path::Path};

use super::event::Fields;
use maxminddb::{Reader, geoip2};

/// The databases found, if any.
#[derive(Default)]
pub struct GeoIp {
    city: Option<Reader<Vec<u8>>>,
    asn: Option<Reader<Vec<u8>>>,
}

impl std::fmt::Debug for GeoIp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GeoIp").field("city", &self.city.is_some()).field("asn", &self.asn.is_some()).finish()
    }
}

/// File names looked for, as the hub's `geoip-enrich` parser names them.
pub const CITY_DB: &str = "GeoLite2-City.mmdb";
/// The ASN database.
pub const ASN_DB: &str = "GeoLite2-ASN.mmdb";

impl GeoIp {
    /// Opens the databases of `dir` that exist. A database that exists but does not open is an
    /// error naming it.
    ///
    /// # Errors
    /// A corrupt or unreadable database.
    pub fn open_dir(dir: &Path) -> Result<GeoIp, String> {
        let open = |name: &str| -> Result<Option<Reader<Vec<u8>>>, String> {
            let p = dir.join(name);
            if !p.exists() {
                return Ok(None);
            }
            Reader::open_readfile(&p).map(Some).map_err(|e| format!("{}: {e}", p.display()))
        };
        Ok(GeoIp { city: open(CITY_DB)?, asn: open(ASN_DB)? })
    }

    /// Whether any database is loaded.
    #[must_use]
    pub fn is_loaded(&self) -> bool {
        self.city.is_some() || self.asn.is_some()
    }

    /// `GeoIpCity`: `IsoCode`, `IsInEU`, `GeoCoords`, `Latitude`, `Longitude`.
    pub fn city(&self, ip: &str, out: &mut Fields) {
        let Ok(ip) = ip.parse::<IpAddr>() else { return };
        let rec: Option<geoip2::City<'_>> =
            self.city.as_ref().and_then(|r| r.lookup(ip).ok()).and_then(|l| l.decode().ok().flatten());
        let Some(c) = rec else {
            out.insert("IsInEU".into(), "false".into());
            return;
        };
        // As CrowdSec: the country, else the represented, else the registered one.
        let iso = c.country.iso_code.or(c.represented_country.iso_code).or(c.registered_country.iso_code);
        let eu = c.country.is_in_european_union.or(c.registered_country.is_in_european_union).unwrap_or(false);
        out.insert("IsoCode".into(), iso.unwrap_or_default().into());
        out.insert("IsInEU".into(), if eu { "true" } else { "false" }.into());
        if let (Some(lat), Some(lon)) = (c.location.latitude, c.location.longitude) {
            out.insert("Latitude".into(), compact_str::format_compact!("{lat}"));
            out.insert("Longitude".into(), compact_str::format_compact!("{lon}"));
            out.insert("GeoCoords".into(), compact_str::format_compact!("{lat},{lon}"));
        }
    }

    /// `GeoIpASN`: `ASNNumber`, `ASNumber`, `ASNOrg`.
    pub fn asn(&self, ip: &str, out: &mut Fields) {
        let Ok(ip) = ip.parse::<IpAddr>() else { return };
        let rec: Option<geoip2::Asn<'_>> =
            self.asn.as_ref().and_then(|r| r.lookup(ip).ok()).and_then(|l| l.decode().ok().flatten());
        let Some(a) = rec else { return };
        let num = a.autonomous_system_number.map(|n| n.to_string()).unwrap_or_default();
        out.insert("ASNNumber".into(), num.as_str().into());
        out.insert("ASNumber".into(), num.into());
        out.insert("ASNOrg".into(), a.autonomous_system_organization.unwrap_or_default().into());
    }

    /// `IpToRange`: the network the ASN database holds the address in, else its /24 or /64.
    #[must_use]
    pub fn range(&self, ip: &str) -> Option<String> {
        let ip = ip.parse::<IpAddr>().ok()?;
        if let Some(net) =
            self.asn.as_ref().and_then(|r| r.lookup(ip).ok()).filter(|l| l.has_data()).and_then(|l| l.network().ok())
        {
            return Some(net.to_string());
        }
        Some(
            match ip {
                IpAddr::V4(a) => ipnet::IpNet::V4(ipnet::Ipv4Net::new(a, 24).ok()?.trunc()),
                IpAddr::V6(a) => ipnet::IpNet::V6(ipnet::Ipv6Net::new(a, 64).ok()?.trunc()),
            }
            .to_string(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_databases_like_crowdsec_for_unknown_addresses() {
        let g = GeoIp::default();
        let mut m = Fields::default();
        g.city("192.0.2.1", &mut m);
        g.asn("192.0.2.1", &mut m);
        assert_eq!(m.get("IsInEU").map(crate::engine::event::Str::as_str), Some("false"));
        assert!(!m.contains_key("ASNOrg"));
        assert_eq!(g.range("192.0.2.77").as_deref(), Some("192.0.2.0/24"));
        assert_eq!(g.range("2001:db8::1").as_deref(), Some("2001:db8::/64"));
        assert!(!g.is_loaded());
    }
}
