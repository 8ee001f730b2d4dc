//! What an admin may change from the console (POST, each with the session's CSRF token): ban
//! an address or range for a duration with a reason, unban, extend, edit this host's kernel
//! allowlist, validate a pending machine. Every change is recorded in the audit log (who, what,
//! when). Bans go to the store as manual decisions (origin `cscli`, as `cscli decisions add`):
//! this host's maps and every edge take them from the store's change feed, as any decision.
//! Allowlisted and own addresses are never banned (the profiles' allowlist and the kernel's).
use std::sync::Arc;

use axum::{
    body::Body,
    extract::{Path, State},
    http::{HeaderMap, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
};
use serde::Deserialize;

use super::{
    session::{User, may_change},
    view::{self, Page},
};
use crate::{
    addr::Target,
    lapi::{ApiState, decisions::now},
    store::NewDecision,
};

/// The longest ban the console gives (ten years); `permanent` is not offered.
const MAX_SECS: u64 = 10 * 365 * 86_400;

/// A Go duration (`4h`, `1h30m`) or a human one (`2d`, `1w`): seconds, with the reason it does
/// not read.
pub fn duration(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let secs = crate::clock::go_duration_secs(t)
        .map(|s| s as u64)
        .or_else(|| humantime::parse_duration(t).ok().map(|d| d.as_secs()))
        .ok_or_else(|| format!("duration `{t}`: expected e.g. 4h, 30m, 1h30m or 2d"))?;
    if secs == 0 {
        return Err(format!("duration `{t}` is zero"));
    }
    if secs > MAX_SECS {
        return Err(format!("duration `{t}` is longer than ten years"));
    }
    Ok(secs)
}

/// A change's answer: a message for the page, and an event the page refreshes its tables on.
fn done(text: &str) -> Response {
    let mut r = view::message(StatusCode::OK, true, text).into_response();
    r.headers_mut().insert("HX-Trigger", HeaderValue::from_static("console-changed"));
    r
}

async fn read<T: serde::de::DeserializeOwned>(body: Body) -> Result<T, Page> {
    view::form(&view::body(body).await?)
}

#[derive(Deserialize)]
pub struct BanForm {
    csrf: Option<String>,
    target: String,
    duration: String,
    #[serde(default)]
    reason: String,
}

/// `POST /console/decisions`: a ban.
pub async fn ban(
    State(st): State<Arc<ApiState>>,
    user: User,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, Page> {
    let f: BanForm = read(body).await?;
    may_change(&user, &headers, f.csrf.as_deref())?;
    let bad = |why: String| view::refused(StatusCode::BAD_REQUEST, &why);
    let parsed = Target::parse(&f.target).map_err(|e| bad(format!("target: {e}")))?;
    let secs = duration(&f.duration).map_err(bad)?;
    let reason = f.reason.trim();
    if reason.len() > 200 {
        return Err(bad("reason: at most 200 characters".into()));
    }
    let target = parsed.target;
    if let Ok(p) = st.profile.lock()
        && let Some(why) = p.protecting(&target)
    {
        return Err(view::refused(
            StatusCode::CONFLICT,
            &format!("{target} is not banned: it is allowlisted or one of this host's addresses ({why})"),
        ));
    }
    let kernel = {
        let st = st.clone();
        tokio::task::spawn_blocking(move || st.console.with_maps(|m| kernel_allowed(m, target)).flatten())
            .await
            .ok()
            .flatten()
    };
    if let Some(hit) = kernel {
        return Err(view::refused(
            StatusCode::CONFLICT,
            &format!("{target} is not banned: the kernel allowlist holds {hit}"),
        ));
    }
    let reason =
        if reason.is_empty() { format!("manual ban from the console by {}", user.name) } else { reason.to_owned() };
    let d = NewDecision {
        origin: "cscli".into(),
        scenario: reason.clone(),
        scope: if matches!(target, Target::Ip(_)) { "Ip".into() } else { "Range".into() },
        value: target.to_string(),
        kind: "ban".into(),
        duration_secs: secs,
        simulated: false,
        reason: reason.clone(),
        uuid: String::new(),
    };
    let (who, t) = (user.name.clone(), now());
    let detail = format!("{target} for {} ({reason})", crate::clock::go_duration(std::time::Duration::from_secs(secs)));
    let audit = detail.clone();
    let recorded = st
        .db
        .run(move |s| {
            if let Some(net) = crate::store::allowlist::holding(&s.allowlist_nets()?, &d.scope, &d.value) {
                return Ok(Err(net));
            }
            let id = s.record(None, std::slice::from_ref(&d), t)?.first().copied().unwrap_or_default();
            s.audit(t, &who, "ban", &format!("decision {id}: {audit}"))?;
            Ok(Ok(id))
        })
        .await
        .map_err(view::failed)?;
    let id = recorded.map_err(|net| {
        view::refused(StatusCode::CONFLICT, &format!("{target} is not banned: the allowlist holds {net}"))
    })?;
    let notes = if parsed.notes.is_empty() { String::new() } else { format!(" ({})", parsed.notes.join("; ")) };
    Ok(done(&format!("decision {id}: banned {detail}{notes}")))
}

/// The kernel allowlist entry that holds `target` or lies in it, if any (the store's allowlist
/// rule: a range holding an allowlisted address is refused whole).
fn kernel_allowed(m: &mut crate::enforce::maps::BanMaps, target: Target) -> Option<String> {
    let nets: Vec<ipnet::IpNet> = m.allowlist().ok()?.into_iter().map(|a| a.target.net()).collect();
    crate::store::allowlist::overlapping(&nets, target).map(|n| n.to_string())
}

#[derive(Deserialize)]
pub struct CsrfForm {
    csrf: Option<String>,
}

/// `POST /console/decisions/{id}/delete`: unban.
pub async fn unban(
    State(st): State<Arc<ApiState>>,
    user: User,
    headers: HeaderMap,
    Path(id): Path<i64>,
    body: Body,
) -> Result<Response, Page> {
    let f: CsrfForm = read(body).await?;
    may_change(&user, &headers, f.csrf.as_deref())?;
    let (who, t) = (user.name.clone(), now());
    let gone = st
        .db
        .run(move |s| {
            let gone = s.delete(None, Some(id), t)?;
            if let Some(d) = gone.first() {
                s.audit(t, &who, "unban", &format!("decision {id}: {} ({})", d.value, d.origin))?;
            }
            Ok(gone)
        })
        .await
        .map_err(view::failed)?;
    match gone.first() {
        Some(d) => Ok(done(&format!("decision {id} deleted: {} is no longer banned by it", d.value))),
        None => Err(view::refused(StatusCode::NOT_FOUND, &format!("decision {id} is not active"))),
    }
}

#[derive(Deserialize)]
pub struct ExtendForm {
    csrf: Option<String>,
    duration: String,
}

/// `POST /console/decisions/{id}/extend`: the decision ends `duration` from now.
pub async fn extend(
    State(st): State<Arc<ApiState>>,
    user: User,
    headers: HeaderMap,
    Path(id): Path<i64>,
    body: Body,
) -> Result<Response, Page> {
    let f: ExtendForm = read(body).await?;
    may_change(&user, &headers, f.csrf.as_deref())?;
    let secs = duration(&f.duration).map_err(|why| view::refused(StatusCode::BAD_REQUEST, &why))?;
    let (who, t) = (user.name.clone(), now());
    let until = t + i64::try_from(secs).unwrap_or(i64::MAX / 2);
    let got = st
        .db
        .run(move |s| {
            let d = s.extend_decision(id, until, t)?;
            if let Some(d) = &d {
                s.audit(
                    t,
                    &who,
                    "extend",
                    &format!("decision {id}: {} until {}", d.value, crate::clock::rfc3339(until)),
                )?;
            }
            Ok(d)
        })
        .await
        .map_err(view::failed)?;
    match got {
        Some(d) => Ok(done(&format!("decision {id}: {} now ends in {}", d.value, view::ago(until - t)))),
        None => Err(view::refused(StatusCode::NOT_FOUND, &format!("decision {id} is not active"))),
    }
}

#[derive(Deserialize)]
pub struct AllowForm {
    csrf: Option<String>,
    target: String,
    #[serde(default)]
    reason: String,
}

/// `POST /console/allowlist`: the allowlist every decision is checked against (store-wide: every
/// process and edge); the decisions it overlaps end now.
pub async fn allow(
    State(st): State<Arc<ApiState>>,
    user: User,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, Page> {
    let f: AllowForm = read(body).await?;
    may_change(&user, &headers, f.csrf.as_deref())?;
    let target = target_of(&f.target)?;
    let reason = f.reason.trim().chars().take(200).collect::<String>();
    let (who, t) = (user.name.clone(), now());
    let ended = st
        .db
        .run(move |s| {
            let ended = s.allow(target, &reason, &who, t)?;
            let why = if reason.is_empty() { String::new() } else { format!(" ({reason})") };
            s.audit(t, &who, "allow", &format!("{target}{why}; {} decisions ended", ended.len()))?;
            Ok(ended)
        })
        .await
        .map_err(view::failed)?;
    Ok(done(&format!("{target} allowlisted: never banned from now on; {} active decision(s) on it ended", ended.len())))
}

/// `POST /console/allowlist/delete`.
pub async fn disallow(
    State(st): State<Arc<ApiState>>,
    user: User,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, Page> {
    let f: AllowForm = read(body).await?;
    may_change(&user, &headers, f.csrf.as_deref())?;
    let target = target_of(&f.target)?;
    let (who, t) = (user.name.clone(), now());
    let existed = st
        .db
        .run(move |s| {
            let existed = s.disallow(target)?;
            if existed {
                s.audit(t, &who, "disallow", &target.to_string())?;
            }
            Ok(existed)
        })
        .await
        .map_err(view::failed)?;
    if existed {
        Ok(done(&format!("{target} removed from the allowlist")))
    } else {
        Err(view::refused(StatusCode::NOT_FOUND, &format!("{target} is not in the allowlist")))
    }
}

fn target_of(text: &str) -> Result<Target, Page> {
    Target::parse(text).map(|p| p.target).map_err(|e| view::refused(StatusCode::BAD_REQUEST, &format!("target: {e}")))
}

/// `POST /console/kernel-allowlist` and `/console/kernel-allowlist/delete`: this host's XDP
/// allowlist (it also passes what `crowd map add` banned by hand).
async fn kernel_allowlist(
    st: Arc<ApiState>,
    user: User,
    headers: HeaderMap,
    body: Body,
    add: bool,
) -> Result<Response, Page> {
    let f: AllowForm = read(body).await?;
    may_change(&user, &headers, f.csrf.as_deref())?;
    let target = target_of(&f.target)?;
    let on = st.clone();
    let changed = tokio::task::spawn_blocking(move || {
        on.console.with_maps(|m| if add { m.allow(target).map(|()| true) } else { m.disallow(target) })
    })
    .await
    .ok()
    .flatten()
    .ok_or_else(|| view::refused(StatusCode::CONFLICT, "this process does not enforce: no kernel allowlist here"))?
    .map_err(view::failed)?;
    let (who, t, action) = (user.name.clone(), now(), if add { "kernel allow" } else { "kernel disallow" });
    st.db.run(move |s| s.audit(t, &who, action, &target.to_string())).await.map_err(view::failed)?;
    Ok(done(&match (add, changed) {
        (true, _) => format!("{target} in this host's kernel allowlist: XDP passes it whatever the bans"),
        (false, true) => format!("{target} removed from this host's kernel allowlist"),
        (false, false) => format!("{target} was not in this host's kernel allowlist"),
    }))
}

/// `POST /console/kernel-allowlist`.
pub async fn kernel_allow(
    State(st): State<Arc<ApiState>>,
    user: User,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, Page> {
    kernel_allowlist(st, user, headers, body, true).await
}

/// `POST /console/kernel-allowlist/delete`.
pub async fn kernel_disallow(
    State(st): State<Arc<ApiState>>,
    user: User,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, Page> {
    kernel_allowlist(st, user, headers, body, false).await
}

#[derive(Deserialize)]
pub struct MachineForm {
    csrf: Option<String>,
    machine: String,
}

/// `POST /console/machines/validate` (the machine's id in the form: ids are the agents' own
/// choice, and a path would let one aim the button at another).
pub async fn validate(
    State(st): State<Arc<ApiState>>,
    user: User,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, Page> {
    let f: MachineForm = read(body).await?;
    may_change(&user, &headers, f.csrf.as_deref())?;
    let id = f.machine;
    let (who, t, m) = (user.name.clone(), now(), id.clone());
    let ok = st
        .db
        .run(move |s| {
            let ok = s.validate_machine(&m)?;
            if ok {
                s.audit(t, &who, "validate", &m)?;
            }
            Ok(ok)
        })
        .await
        .map_err(view::failed)?;
    if ok {
        Ok(done(&format!("machine {id} validated")))
    } else {
        Err(view::refused(StatusCode::NOT_FOUND, &format!("no machine {id}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_go_and_human_forms_and_refuse_the_rest() {
        assert_eq!(duration("4h"), Ok(14_400));
        assert_eq!(duration("1h30m"), Ok(5_400));
        assert_eq!(duration("2d"), Ok(172_800));
        assert!(duration("0s").unwrap_err().contains("zero"));
        assert!(duration("soon").unwrap_err().contains("expected"));
        assert!(duration("20000d").unwrap_err().contains("ten years"));
    }
}
