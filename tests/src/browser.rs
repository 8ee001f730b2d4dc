//! A headless Chromium driven over WebDriver, for the web console's browser tests: `Browser`
//! starts Debian's `chromedriver` on a free loopback port, opens a session with a fresh profile,
//! and offers blocking calls (the tests are plain `#[test]` functions) run on its own
//! current-thread tokio runtime. Screenshots land in `target/console/` and must not be blank.
use std::{
    collections::HashMap,
    io::BufReader,
    net::TcpStream,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use fantoccini::{Client, ClientBuilder, Locator, cookies::Cookie, elements::Element};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::{Value, json};

use crate::{Killed, lapi::free_port, wait_for};

/// Debian's chromedriver (package `chromium-driver`).
pub const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
/// Debian's Chromium (package `chromium`).
pub const CHROMIUM: &str = "/usr/bin/chromium";
/// The window (and so screenshot) size.
pub const WINDOW: (u32, u32) = (1280, 900);
/// The share of sampled pixels that must differ from the most common colour for a screenshot
/// to count as not blank.
pub const MIN_OTHER_SHARE: f64 = 0.02;

/// How long chromedriver may take to listen.
const DRIVER_START: Duration = Duration::from_secs(20);
/// How often the `wait_for_*` calls poll.
const POLL: Duration = Duration::from_millis(50);

/// A headless Chromium session; the browser and its chromedriver are stopped on drop.
pub struct Browser {
    // Dropped in this order: the session (which quits Chromium) before the runtime that runs
    // it, then chromedriver, then the profile directory.
    client: Option<Client>,
    rt: tokio::runtime::Runtime,
    _driver: Killed,
    profile: tempfile::TempDir,
    started_in: Duration,
}

impl Browser {
    /// Starts chromedriver and a headless Chromium with a fresh profile, or fails the test with
    /// a message saying what is missing.
    pub fn start() -> Browser {
        for (bin, package) in [(CHROMEDRIVER, "chromium-driver"), (CHROMIUM, "chromium")] {
            assert!(
                Path::new(bin).exists(),
                "{bin} is missing: browser tests need Debian's `{package}` (run `cargo xtask setup` \
                 through `cargo xtask test`, or `apt-get install chromium chromium-driver`)"
            );
        }
        let t = Instant::now();
        let profile = tempfile::Builder::new().prefix("crowd-browser-").tempdir().expect("tempdir");
        let log = profile.path().join("chromedriver.log");
        let port = free_port();
        let driver = Killed(
            Command::new(CHROMEDRIVER)
                .arg(format!("--port={port}"))
                .arg(format!("--log-path={}", log.display()))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap_or_else(|e| panic!("starting {CHROMEDRIVER}: {e}")),
        );
        wait_for("chromedriver to listen", DRIVER_START, POLL, || TcpStream::connect(("127.0.0.1", port)).is_ok());

        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("tokio runtime");
        let user_data = profile.path().join("profile");
        let caps = json!({
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": CHROMIUM,
                "args": [
                    "--headless=new",
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-dev-shm-usage",
                    format!("--window-size={},{}", WINDOW.0, WINDOW.1),
                    format!("--user-data-dir={}", user_data.display()),
                ],
            },
        });
        let Value::Object(caps) = caps else { unreachable!("a JSON object") };
        let url = format!("http://127.0.0.1:{port}");
        let client = rt
            .block_on(ClientBuilder::new(HttpConnector::new()).capabilities(caps).connect(&url))
            .unwrap_or_else(|e| {
                let log = std::fs::read_to_string(&log).unwrap_or_default();
                let tail: Vec<&str> = log.lines().rev().take(20).collect();
                let tail: Vec<&str> = tail.into_iter().rev().collect();
                panic!("starting headless {CHROMIUM} through chromedriver: {e}\nchromedriver log:\n{}", tail.join("\n"))
            });
        Browser { client: Some(client), rt, _driver: driver, profile, started_in: t.elapsed() }
    }

    /// How long `start` took (chromedriver and Chromium up, session open).
    pub fn started_in(&self) -> Duration {
        self.started_in
    }

    /// The temporary directory holding the browser profile and chromedriver's log.
    pub fn profile_dir(&self) -> &Path {
        self.profile.path()
    }

    /// The WebDriver client, for calls without a helper here (run them with `block_on`).
    pub fn client(&self) -> &Client {
        self.client.as_ref().expect("browser session open")
    }

    /// Runs a future on the browser's runtime.
    pub fn block_on<F: Future>(&self, fut: F) -> F::Output {
        self.rt.block_on(fut)
    }

    /// Navigates to `url` and waits for the page to load.
    pub fn goto(&self, url: &str) {
        self.block_on(self.client().goto(url)).unwrap_or_else(|e| panic!("goto {url}: {e}"));
    }

    /// The URL of the current page.
    pub fn current_url(&self) -> String {
        self.block_on(self.client().current_url()).expect("current url").to_string()
    }

    /// The current DOM serialised as HTML.
    pub fn source(&self) -> String {
        self.block_on(self.client().source()).expect("page source")
    }

    /// The first element matching `css`; fails the test if there is none.
    pub fn find(&self, css: &str) -> Element {
        self.block_on(self.client().find(Locator::Css(css)))
            .unwrap_or_else(|e| panic!("no element `{css}` on {}: {e}", self.current_url()))
    }

    /// Every element matching `css`.
    pub fn find_all(&self, css: &str) -> Vec<Element> {
        self.block_on(self.client().find_all(Locator::Css(css)))
            .unwrap_or_else(|e| panic!("finding `{css}` on {}: {e}", self.current_url()))
    }

    /// Whether an element matches `css`.
    pub fn exists(&self, css: &str) -> bool {
        !self.find_all(css).is_empty()
    }

    /// Clicks the first element matching `css`.
    pub fn click(&self, css: &str) {
        self.read(css, "clicking", |el| async move { el.click().await });
    }

    /// Clears the first input matching `css` and types `text` into it.
    pub fn fill(&self, css: &str, text: &str) {
        let el = self.find(css);
        self.block_on(el.clear()).unwrap_or_else(|e| panic!("clearing `{css}`: {e}"));
        self.block_on(el.send_keys(text)).unwrap_or_else(|e| panic!("typing into `{css}`: {e}"));
    }

    /// Runs `read` on the first element matching `css`, finding it again when the page replaced
    /// it in between (htmx swaps live parts: the element found may be gone when read).
    fn read<T, F>(&self, css: &str, what: &str, read: impl Fn(Element) -> F) -> T
    where
        F: std::future::Future<Output = Result<T, fantoccini::error::CmdError>>,
    {
        let mut tries = 0;
        loop {
            match self.block_on(read(self.find(css))) {
                Ok(v) => return v,
                Err(e) if tries < 20 && e.to_string().contains("stale element") => {
                    tries += 1;
                    std::thread::sleep(POLL);
                }
                Err(e) => panic!("{what} of `{css}`: {e}"),
            }
        }
    }

    /// The rendered text of the first element matching `css`.
    pub fn text(&self, css: &str) -> String {
        self.read(css, "text", |el| async move { el.text().await })
    }

    /// The value of attribute `name` of the first element matching `css`.
    pub fn attr(&self, css: &str, name: &str) -> Option<String> {
        self.read(css, &format!("attribute `{name}`"), |el| async move { el.attr(name).await })
    }

    /// Polls until an element matches `css`, failing the test after `limit`; returns how long it
    /// took.
    pub fn wait_for_css(&self, css: &str, limit: Duration) -> Duration {
        let t = Instant::now();
        while !self.exists(css) {
            assert!(t.elapsed() < limit, "timed out after {limit:?} waiting for `{css}` on {}", self.current_url());
            std::thread::sleep(POLL);
        }
        t.elapsed()
    }

    /// Polls until the text of the first element matching `css` contains `needle`, failing the
    /// test (with the last text seen) after `limit`; returns how long it took.
    pub fn wait_for_text(&self, css: &str, needle: &str, limit: Duration) -> Duration {
        let t = Instant::now();
        loop {
            let seen = match self.find_all(css).first() {
                Some(el) => self.block_on(el.text()).ok(),
                None => None,
            };
            if seen.as_deref().is_some_and(|s| s.contains(needle)) {
                return t.elapsed();
            }
            assert!(
                t.elapsed() < limit,
                "timed out after {limit:?} waiting for `{needle}` in `{css}` on {}; last text: {seen:?}",
                self.current_url()
            );
            std::thread::sleep(POLL);
        }
    }

    /// Resizes the window.
    pub fn set_window_size(&self, width: u32, height: u32) {
        self.block_on(self.client().set_window_size(width, height))
            .unwrap_or_else(|e| panic!("resizing to {width}x{height}: {e}"));
    }

    /// Runs `js` as the body of a function called with `args`; returns what it returns.
    pub fn execute(&self, js: &str, args: Vec<Value>) -> Value {
        self.block_on(self.client().execute(js, args)).unwrap_or_else(|e| panic!("executing `{js}`: {e}"))
    }

    /// The cookies visible to the current page.
    pub fn cookies(&self) -> Vec<Cookie<'static>> {
        self.block_on(self.client().get_all_cookies()).expect("cookies")
    }

    /// Saves a screenshot of the window to `<workspace>/target/console/<name>.png` and fails the
    /// test if it is blank (see `not_blank`); returns the path.
    pub fn screenshot(&self, name: &str) -> PathBuf {
        let png = self.block_on(self.client().screenshot()).unwrap_or_else(|e| panic!("screenshot `{name}`: {e}"));
        let dir = screenshot_dir();
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("creating {}: {e}", dir.display()));
        let path = dir.join(format!("{name}.png"));
        std::fs::write(&path, png).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
        if let Err(e) = not_blank(&path) {
            panic!("screenshot {} of {}: {e}", path.display(), self.current_url());
        }
        path
    }

    /// Ends the session (Chromium quits); chromedriver stops when the value is dropped.
    pub fn close(mut self) {
        if let Some(client) = self.client.take() {
            self.block_on(client.close()).expect("closing the browser session");
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // Quit Chromium through its driver: killing chromedriver alone would orphan it.
        if let Some(client) = self.client.take() {
            // Nothing here may panic: this also runs while a failed test unwinds.
            let _ = self.rt.block_on(async { tokio::time::timeout(Duration::from_secs(10), client.close()).await });
        }
    }
}

/// `<workspace>/target/console`, where screenshots go.
pub fn screenshot_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("workspace root").join("target").join("console")
}

/// Checks that the PNG at `path` is not a single colour: at least `MIN_OTHER_SHARE` of the
/// pixels sampled on a grid must differ from the most common one.
pub fn not_blank(path: &Path) -> Result<(), String> {
    let file = std::fs::File::open(path).map_err(|e| format!("cannot open: {e}"))?;
    let mut decoder = png::Decoder::new(BufReader::new(file));
    decoder.set_transformations(png::Transformations::normalize_to_color8());
    let mut reader = decoder.read_info().map_err(|e| format!("not a PNG: {e}"))?;
    let mut buf = vec![0; reader.output_buffer_size().ok_or("PNG too large")?];
    let frame = reader.next_frame(&mut buf).map_err(|e| format!("cannot decode: {e}"))?;
    let channels = frame.color_type.samples();
    let (width, height) = (frame.width as usize, frame.height as usize);
    if width == 0 || height == 0 {
        return Err("empty image".into());
    }
    // About 100 000 samples whatever the size; a step of 1 for small images.
    let step = ((width * height / 100_000) as f64).sqrt().floor().max(1.0) as usize;
    let mut counts: HashMap<&[u8], usize> = HashMap::new();
    let mut total = 0usize;
    for y in (0..height).step_by(step) {
        let row = &buf[y * frame.line_size..][..width * channels];
        for px in row.chunks_exact(channels).step_by(step) {
            *counts.entry(px).or_default() += 1;
            total += 1;
        }
    }
    let (colour, most) = counts.iter().max_by_key(|(_, n)| **n).map(|(c, n)| (c.to_vec(), *n)).unwrap_or_default();
    let other = (total - most) as f64 / total as f64;
    if other < MIN_OTHER_SHARE {
        return Err(format!(
            "blank: {:.2}% of {total} sampled pixels differ from the most common colour {colour:?} \
             (at least {:.0}% needed)",
            other * 100.0,
            MIN_OTHER_SHARE * 100.0
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use base64::Engine as _;

    use super::*;

    const PAGE: &str = r#"<!doctype html><html><head><title>selftest</title><style>
        body { font: 18px sans-serif; margin: 0; }
        header { background: #1f3a5f; color: #fff; padding: 24px; }
        main { padding: 24px; }
        #out { margin-top: 16px; padding: 12px; background: #e8f0e8; border: 1px solid #6a6; }
    </style></head><body>
        <header><h1>crowd browser selftest</h1></header>
        <main><form onsubmit="document.getElementById('out').textContent = 'echo: ' +
                document.getElementById('what').value; return false;">
            <input id="what" name="what" value="placeholder">
            <button id="go" type="submit">Echo</button>
        </form><div id="out">nothing yet</div></main>
    </body></html>"#;

    #[test]
    fn drives_a_page_and_screenshots_it() {
        let b = Browser::start();
        eprintln!("browser: started in {:?}", b.started_in());
        let url = format!("data:text/html;base64,{}", base64::engine::general_purpose::STANDARD.encode(PAGE));
        b.goto(&url);
        assert_eq!(b.text("h1"), "crowd browser selftest");
        assert!(b.exists("#what") && !b.exists("#nowhere"));
        assert_eq!(b.text("#out"), "nothing yet");
        b.fill("#what", "hello from rust");
        b.click("#go");
        let took = b.wait_for_text("#out", "echo: hello from rust", Duration::from_secs(5));
        eprintln!("browser: echo after {took:?}");
        assert_eq!(b.execute("return document.title + arguments[0];", vec![json!("!")]), json!("selftest!"));
        assert!(b.cookies().is_empty());
        // The window is WINDOW; the page gets its full width and, below the (invisible) browser
        // frame, most of its height.
        let size = b.execute("return [window.innerWidth, window.innerHeight];", vec![]);
        eprintln!("browser: viewport {size}");
        assert_eq!(size[0], json!(WINDOW.0), "viewport {size}");
        assert!(size[1].as_u64().is_some_and(|h| h > 600 && h <= u64::from(WINDOW.1)), "viewport {size}");
        let path = b.screenshot("selftest");
        assert!(path.exists(), "{}", path.display());
        let bytes = std::fs::read(&path).expect("read screenshot");
        assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n");
        b.close();
    }

    #[test]
    fn a_single_colour_image_is_blank() {
        let dir = tempfile::tempdir().expect("tempdir");
        let write = |name: &str, pixel: &dyn Fn(u32, u32) -> [u8; 3]| {
            let path = dir.path().join(name);
            let (w, h) = (320u32, 200u32);
            let file = std::fs::File::create(&path).expect("create");
            let mut enc = png::Encoder::new(std::io::BufWriter::new(file), w, h);
            enc.set_color(png::ColorType::Rgb);
            enc.set_depth(png::BitDepth::Eight);
            let data: Vec<u8> = (0..h).flat_map(|y| (0..w).flat_map(move |x| pixel(x, y))).collect();
            enc.write_header().expect("header").write_image_data(&data).expect("data");
            path
        };
        let white = write("white.png", &|_, _| [255; 3]);
        let err = not_blank(&white).expect_err("all white is blank");
        assert!(err.contains("blank"), "{err}");
        // A top bar of a tenth of the height is enough content.
        let bar = write("bar.png", &|_, y| if y < 20 { [31, 58, 95] } else { [255; 3] });
        not_blank(&bar).expect("a page with a bar is not blank");
        // A few stray pixels are not.
        let specks = write("specks.png", &|x, y| if x % 100 == 0 && y % 100 == 0 { [0; 3] } else { [255; 3] });
        assert!(not_blank(&specks).is_err());
        assert!(not_blank(&dir.path().join("missing.png")).is_err());
    }
}
