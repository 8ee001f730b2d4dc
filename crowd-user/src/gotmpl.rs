//! Go `text/template` formats of CrowdSec notification files (`format:`), rendered with `gtmpl`
//! over the alerts of one delivery as CrowdSec's plugins see them: a list of `models.Alert`, whose
//! fields templates name in Go (`.Source.IP`, `.Decisions`, `.Scenario`, `.Meta`), with
//! `toJson` (the JSON as CrowdSec writes it) and the sprig helpers CrowdSec's documented templates
//! use (`upper`, `lower`, `trim`, `join`, `default`, `quote`).
use gtmpl::{Context, Func, FuncError, Template};
use gtmpl_value::Value as G;
use serde_json::Value;

/// A compiled Go template.
pub struct GoTemplate {
    template: Template,
}

impl std::fmt::Debug for GoTemplate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("GoTemplate")
    }
}

/// A JSON key (`source`, `as_number`, `machine_id`) as the Go field name (`Source`, `AsNumber`,
/// `MachineID`): CrowdSec's models name their JSON keys after their fields.
fn go_name(key: &str) -> String {
    key.split('_')
        .map(|part| match part {
            "id" => "ID".to_owned(),
            "ip" => "IP".to_owned(),
            "uuid" => "UUID".to_owned(),
            p => {
                let mut c = p.chars();
                c.next().map_or_else(String::new, |f| f.to_uppercase().chain(c).collect())
            }
        })
        .collect()
}

/// The reverse of [`go_name`], for `toJson`.
fn json_name(field: &str) -> String {
    let mut out = String::new();
    let chars: Vec<char> = field.chars().collect();
    for (i, &c) in chars.iter().enumerate() {
        let prev_lower = i > 0 && chars[i - 1].is_lowercase();
        let next_lower = chars.get(i + 1).is_some_and(|n| n.is_lowercase());
        let after_upper = i > 0 && chars[i - 1].is_uppercase();
        if c.is_uppercase() && i > 0 && (prev_lower || (after_upper && next_lower)) {
            out.push('_');
        }
        out.extend(c.to_lowercase());
    }
    out
}

/// JSON as the template sees it: objects keyed by Go field names.
fn to_go(v: &Value) -> G {
    match v {
        Value::Null => G::Nil,
        Value::Bool(b) => G::Bool(*b),
        Value::Number(n) => n.as_i64().map_or_else(|| G::from(n.as_f64().unwrap_or(0.0)), G::from),
        Value::String(s) => G::String(s.clone()),
        Value::Array(a) => G::Array(a.iter().map(to_go).collect()),
        Value::Object(o) => G::Map(o.iter().map(|(k, v)| (go_name(k), to_go(v))).collect()),
    }
}

/// A template value back as CrowdSec's JSON (`toJson`).
fn to_json(v: &G) -> Value {
    match v {
        G::Nil | G::NoValue => Value::Null,
        G::Bool(b) => Value::Bool(*b),
        G::String(s) => Value::String(s.clone()),
        G::Number(n) => n
            .as_i64()
            .map(Value::from)
            .or_else(|| n.as_u64().map(Value::from))
            .or_else(|| n.as_f64().and_then(serde_json::Number::from_f64).map(Value::Number))
            .unwrap_or(Value::Null),
        G::Array(a) => Value::Array(a.iter().map(to_json).collect()),
        G::Map(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            Value::Object(keys.into_iter().map(|k| (json_name(k), to_json(&m[k]))).collect())
        }
        G::Object(m) => Value::Object(m.iter().map(|(k, v)| (json_name(k), to_json(v))).collect()),
        G::Function(_) => Value::Null,
    }
}

fn arg<'a>(args: &'a [G], i: usize, name: &str) -> Result<&'a G, FuncError> {
    args.get(i).ok_or_else(|| FuncError::Generic(format!("{name}: missing argument")))
}

fn text(v: &G) -> String {
    match v {
        G::String(s) => s.clone(),
        G::Nil | G::NoValue => String::new(),
        other => other.to_string(),
    }
}

fn f_to_json(args: &[G]) -> Result<G, FuncError> {
    serde_json::to_string(&to_json(arg(args, 0, "toJson")?))
        .map(G::String)
        .map_err(|e| FuncError::Generic(e.to_string()))
}

fn f_upper(args: &[G]) -> Result<G, FuncError> {
    Ok(G::String(text(arg(args, 0, "upper")?).to_uppercase()))
}

fn f_lower(args: &[G]) -> Result<G, FuncError> {
    Ok(G::String(text(arg(args, 0, "lower")?).to_lowercase()))
}

fn f_trim(args: &[G]) -> Result<G, FuncError> {
    Ok(G::String(text(arg(args, 0, "trim")?).trim().to_owned()))
}

fn f_quote(args: &[G]) -> Result<G, FuncError> {
    Ok(G::String(format!("{:?}", text(arg(args, 0, "quote")?))))
}

/// sprig's `join SEP LIST`.
fn f_join(args: &[G]) -> Result<G, FuncError> {
    let sep = text(arg(args, 0, "join")?);
    match arg(args, 1, "join")? {
        G::Array(a) => Ok(G::String(a.iter().map(text).collect::<Vec<_>>().join(&sep))),
        other => Ok(G::String(text(other))),
    }
}

/// sprig's `default DEFAULT VALUE`: the value, or the default when the value is empty.
fn f_default(args: &[G]) -> Result<G, FuncError> {
    let d = arg(args, 0, "default")?;
    match args.get(1) {
        None | Some(G::Nil | G::NoValue) => Ok(d.clone()),
        Some(G::String(s)) if s.is_empty() => Ok(d.clone()),
        Some(G::Bool(false)) => Ok(d.clone()),
        Some(G::Array(a)) if a.is_empty() => Ok(d.clone()),
        Some(v) => Ok(v.clone()),
    }
}

const FUNCS: [(&str, Func); 7] = [
    ("toJson", f_to_json),
    ("upper", f_upper),
    ("lower", f_lower),
    ("trim", f_trim),
    ("quote", f_quote),
    ("join", f_join),
    ("default", f_default),
];

impl GoTemplate {
    /// Compiles `src`.
    ///
    /// # Errors
    /// The template does not parse (gtmpl's message).
    pub fn new(src: &str) -> Result<GoTemplate, String> {
        let mut template = Template::default();
        template.add_funcs(&FUNCS);
        template.parse(src).map_err(|e| e.to_string())?;
        Ok(GoTemplate { template })
    }

    /// Renders the alerts of one delivery (`.` is their list).
    ///
    /// # Errors
    /// Rendering errors (a missing function, a type error), gtmpl's message.
    pub fn render(&self, alerts: &[Value]) -> Result<String, String> {
        let v = G::Array(alerts.iter().map(to_go).collect());
        self.template.render(&Context::from(v)).map_err(|e| e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn alerts() -> Vec<Value> {
        vec![json!({
            "scenario": "crowdsecurity/ssh-bf", "machine_id": "edge1", "events_count": 6,
            "source": {"scope": "Ip", "value": "192.0.2.7", "ip": "192.0.2.7", "cn": "FR", "as_name": "Example"},
            "decisions": [{"duration": "4h", "type": "ban", "value": "192.0.2.7", "origin": "crowdsec"}],
            "meta": [{"key": "service", "value": "ssh"}]
        })]
    }

    #[test]
    fn names_round_trip() {
        for k in ["source", "as_number", "machine_id", "events_count", "ip", "uuid", "scenario_hash", "start_at"] {
            assert_eq!(json_name(&go_name(k)), k);
        }
        assert_eq!(go_name("machine_id"), "MachineID");
        assert_eq!(go_name("as_name"), "AsName");
    }

    #[test]
    fn crowdsecs_documented_templates_render() {
        // CrowdSec's default http format.
        let t = GoTemplate::new("{{.|toJson}}").unwrap();
        let out: Value = serde_json::from_str(&t.render(&alerts()).unwrap()).unwrap();
        assert_eq!(out, Value::Array(alerts()));
        // Its slack plugin's default, in the shape CrowdSec ships.
        let slack = "{{range . -}}\n{{$alert := . -}}\n{{range .Decisions -}}\n{{if $alert.Source.Cn -}}\n\
                     :flag-{{$alert.Source.Cn | lower}}: <https://www.shodan.io/host/{{.Value}}|{{.Value}}> will get {{.Type}} for next {{.Duration}} for triggering {{.Scenario}} on machine '{{$alert.MachineID}}'.\n\
                     {{end}}\n{{end -}}\n{{end -}}\n";
        let t = GoTemplate::new(slack).unwrap();
        let out = t.render(&alerts()).unwrap();
        assert!(
            out.contains(":flag-fr: <https://www.shodan.io/host/192.0.2.7|192.0.2.7> will get ban for next 4h"),
            "{out}"
        );
        assert!(out.contains("on machine 'edge1'"), "{out}");
        let t = GoTemplate::new(
            "{{range .}}{{.Source.IP}} {{.EventsCount}} {{default \"??\" .Source.AsNumber}} {{range .Meta}}{{.Key}}={{.Value | upper}}{{end}}{{end}}",
        )
        .unwrap();
        assert_eq!(t.render(&alerts()).unwrap(), "192.0.2.7 6 ?? service=SSH");
    }

    #[test]
    fn a_bad_template_is_refused_with_gtmpls_message() {
        assert!(GoTemplate::new("{{range .}}").is_err());
        assert!(GoTemplate::new("{{nosuchfunc .}}").is_err());
    }
}
