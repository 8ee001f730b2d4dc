//! CrowdSec's XML helpers, `XMLGetNodeValue(xml, path)` and `XMLGetAttributeValue(xml, path,
//! name)` (Windows event logs): the document read as leniently as Go's etree (text outside the
//! root, as `- <Event>` copies from the event viewer carry, is ignored; end tags are not
//! checked), and etree's paths: `/Event/System[1]/Provider`, `Data[@Name='IpAddress']`,
//! `Data[2]`, `*`, `//Data`. A document that does not read, or a path that finds nothing, gives
//! "" (as CrowdSec's helpers).
use std::{cell::RefCell, rc::Rc};

use quick_xml::events::{BytesStart, Event};

/// One element: its local name, attributes, the text right after its start tag, children.
#[derive(Debug, Default)]
struct Element {
    name: String,
    attrs: Vec<(String, String)>,
    text: String,
    children: Vec<usize>,
}

/// A document: element 0 is the document itself (its children are the top-level elements).
#[derive(Debug)]
struct Doc {
    elems: Vec<Element>,
}

fn local(name: &[u8]) -> String {
    let n = String::from_utf8_lossy(name);
    n.rsplit(':').next().unwrap_or_default().to_owned()
}

fn element(e: &BytesStart<'_>) -> Element {
    let attrs = e
        .attributes()
        .flatten()
        .map(|a| {
            let v = a.unescape_value().map(|v| v.into_owned()).unwrap_or_default();
            (local(a.key.as_ref()), v)
        })
        .collect();
    Element { name: local(e.name().as_ref()), attrs, ..Element::default() }
}

fn parse(xml: &str) -> Option<Doc> {
    let mut reader = quick_xml::Reader::from_str(xml);
    reader.config_mut().check_end_names = false;
    let mut elems = vec![Element::default()];
    let mut stack = vec![0usize];
    loop {
        match reader.read_event().ok()? {
            Event::Start(e) => {
                let id = elems.len();
                elems.push(element(&e));
                let parent = *stack.last().expect("the document");
                elems[parent].children.push(id);
                stack.push(id);
            }
            Event::Empty(e) => {
                let id = elems.len();
                elems.push(element(&e));
                let parent = *stack.last().expect("the document");
                elems[parent].children.push(id);
            }
            Event::End(_) if stack.len() > 1 => {
                stack.pop();
            }
            Event::Text(t) => {
                let top = *stack.last().expect("the document");
                // etree's Text(): the characters right after the start tag, before any child.
                if top != 0 && elems[top].children.is_empty() {
                    elems[top].text.push_str(&t.decode().unwrap_or_default());
                }
            }
            Event::GeneralRef(r) => {
                let top = *stack.last().expect("the document");
                if top != 0 && elems[top].children.is_empty() {
                    let name = r.decode().unwrap_or_default();
                    match r.resolve_char_ref() {
                        Ok(Some(c)) => elems[top].text.push(c),
                        _ => match quick_xml::escape::resolve_predefined_entity(&name) {
                            Some(v) => elems[top].text.push_str(v),
                            None => elems[top].text.push_str(&format!("&{name};")),
                        },
                    }
                }
            }
            Event::CData(t) => {
                let top = *stack.last().expect("the document");
                if top != 0 && elems[top].children.is_empty() {
                    elems[top].text.push_str(&String::from_utf8_lossy(&t));
                }
            }
            Event::Eof => break,
            _ => {}
        }
    }
    (elems.len() > 1).then_some(Doc { elems })
}

/// One filter of a path step.
#[derive(Debug, PartialEq)]
enum Filter {
    /// `[3]`: the third of the step's elements under one parent (1-based; `[-1]` the last).
    Position(i64),
    /// `[@name]` or `[@name='value']`.
    Attr(String, Option<String>),
    /// `[child]` or `[child='text']`.
    Child(String, Option<String>),
}

#[derive(Debug, PartialEq)]
struct Step {
    /// Any depth below the context (`//`).
    descendants: bool,
    /// A local name or `*`.
    tag: String,
    filters: Vec<Filter>,
}

fn unquote(s: &str) -> Option<String> {
    let s = s.trim();
    let q = s.chars().next()?;
    (matches!(q, '\'' | '"') && s.len() >= 2 && s.ends_with(q)).then(|| s[1..s.len() - 1].to_owned())
}

fn compile(path: &str) -> Option<Vec<Step>> {
    let mut steps = Vec::new();
    // Relative paths start at the document too.
    let mut rest = path.trim();
    rest = rest.strip_prefix('/').unwrap_or(rest);
    loop {
        let descendants = match rest.strip_prefix('/') {
            Some(r) => {
                rest = r;
                true
            }
            None => false,
        };
        // A step ends at the next `/` outside brackets.
        let mut depth = 0;
        let end = rest
            .char_indices()
            .find(|(_, c)| {
                match c {
                    '[' => depth += 1,
                    ']' => depth -= 1,
                    _ => {}
                }
                *c == '/' && depth == 0
            })
            .map_or(rest.len(), |(i, _)| i);
        let text = &rest[..end];
        let tag_end = text.find('[').unwrap_or(text.len());
        let tag = text[..tag_end].trim();
        if tag.is_empty() {
            return None;
        }
        let mut filters = Vec::new();
        let mut f = &text[tag_end..];
        while let Some(body) = f.strip_prefix('[') {
            let close = body.find(']')?;
            let inner = body[..close].trim();
            let (lhs, rhs) = match inner.split_once('=') {
                Some((l, r)) => (l.trim(), Some(unquote(r)?)),
                None => (inner, None),
            };
            filters.push(if let Some(a) = lhs.strip_prefix('@') {
                Filter::Attr(a.to_owned(), rhs)
            } else if let (Ok(n), None) = (lhs.parse::<i64>(), &rhs) {
                Filter::Position(n)
            } else {
                Filter::Child(lhs.to_owned(), rhs)
            });
            f = &body[close + 1..];
        }
        steps.push(Step { descendants, tag: tag.to_owned(), filters });
        if end == rest.len() {
            return Some(steps);
        }
        rest = &rest[end + 1..];
    }
}

impl Doc {
    fn below(&self, id: usize, deep: bool, out: &mut Vec<usize>) {
        for &c in &self.elems[id].children {
            out.push(c);
            if deep {
                self.below(c, true, out);
            }
        }
    }

    fn keep(&self, id: usize, f: &Filter) -> bool {
        let e = &self.elems[id];
        match f {
            Filter::Position(_) => true,
            Filter::Attr(name, want) => e.attrs.iter().any(|(k, v)| k == name && want.as_ref().is_none_or(|w| w == v)),
            Filter::Child(name, want) => e.children.iter().any(|c| {
                let c = &self.elems[*c];
                c.name == *name && want.as_ref().is_none_or(|w| *w == c.text)
            }),
        }
    }

    /// The first element `steps` select.
    fn find(&self, steps: &[Step]) -> Option<usize> {
        let mut context = vec![0usize];
        for step in steps {
            let mut next = Vec::new();
            for &ctx in &context {
                let mut found = Vec::new();
                self.below(ctx, step.descendants, &mut found);
                found.retain(|c| step.tag == "*" || self.elems[*c].name == step.tag);
                for f in &step.filters {
                    match f {
                        Filter::Position(n) => {
                            let at = if *n > 0 {
                                usize::try_from(*n - 1).ok()
                            } else {
                                found.len().checked_sub(n.unsigned_abs() as usize)
                            };
                            found = at.and_then(|i| found.get(i).copied()).into_iter().collect();
                        }
                        f => found.retain(|c| self.keep(*c, f)),
                    }
                }
                next.extend(found);
            }
            context = next;
        }
        context.first().copied()
    }
}

/// The document of `xml`, read once for the several helpers a parser calls on one line.
fn doc(xml: &str) -> Option<Rc<Doc>> {
    thread_local! {
        static LAST: RefCell<Option<(String, Option<Rc<Doc>>)>> = const { RefCell::new(None) };
    }
    LAST.with(|last| {
        let mut last = last.borrow_mut();
        if let Some((text, d)) = last.as_ref()
            && text == xml
        {
            return d.clone();
        }
        let d = parse(xml).map(Rc::new);
        *last = Some((xml.to_owned(), d.clone()));
        d
    })
}

/// `XMLGetNodeValue`: the text of the first element `path` selects.
#[must_use]
pub fn node_value(xml: &str, path: &str) -> String {
    let (Some(d), Some(steps)) = (doc(xml), compile(path)) else { return String::new() };
    d.find(&steps).map(|i| d.elems[i].text.clone()).unwrap_or_default()
}

/// `XMLGetAttributeValue`: attribute `name` of the first element `path` selects.
#[must_use]
pub fn attribute_value(xml: &str, path: &str, name: &str) -> String {
    let (Some(d), Some(steps)) = (doc(xml), compile(path)) else { return String::new() };
    d.find(&steps)
        .and_then(|i| d.elems[i].attrs.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone()))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    const EVENT: &str = r#"- <Event xmlns="http://schemas.microsoft.com/win/2004/08/events/event">- <System>  <Provider Name="Microsoft-Windows-Security-Auditing" Guid="{5484}" />   <EventID>4625</EventID>  <TimeCreated SystemTime="2022-04-28T16:09:28.9443547Z" />   <Channel>Security</Channel>   <Computer>exchange-1.mydomain.test</Computer>   <Security />   </System>- <EventData>  <Data Name="TargetUserName">admin &amp; co</Data>  <Data Name="IpAddress">192.0.2.7</Data>  </EventData>  </Event>"#;

    #[test]
    fn windows_event_fields_as_crowdsec_reads_them() {
        assert_eq!(node_value(EVENT, "/Event/System[1]/EventID"), "4625");
        assert_eq!(node_value(EVENT, "/Event/System[1]/Channel"), "Security");
        assert_eq!(attribute_value(EVENT, "/Event/System[1]/Provider", "Name"), "Microsoft-Windows-Security-Auditing");
        assert_eq!(
            attribute_value(EVENT, "/Event/System[1]/TimeCreated", "SystemTime"),
            "2022-04-28T16:09:28.9443547Z"
        );
        assert_eq!(node_value(EVENT, "/Event/EventData[1]/Data[@Name='IpAddress']"), "192.0.2.7");
        assert_eq!(node_value(EVENT, "/Event/EventData[1]/Data[@Name='TargetUserName']"), "admin & co");
        assert_eq!(node_value(EVENT, "/Event/EventData[1]/Data[2]"), "192.0.2.7");
        assert_eq!(node_value(EVENT, "//Data[@Name=\"IpAddress\"]"), "192.0.2.7");
        assert_eq!(attribute_value(EVENT, "/Event/System[1]/Security", "UserID"), "");
        assert_eq!(node_value(EVENT, "/Event/System[2]/EventID"), "");
        assert_eq!(node_value("not xml at all", "/Event"), "");
        assert_eq!(node_value(EVENT, "no leading slash"), "");
    }
}
