//! A small W3C WebDriver client for the page tests: one `chromedriver`
//! process, any number of headless Chromium windows (each with its own
//! profile, so each is a separate person), and the few commands the tests
//! use. Waits poll a JavaScript condition; a failed wait panics with what it
//! waited for and the page's visible text, and saves a screenshot.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::{Value, json};
use tempfile::TempDir;

/// The key WebDriver uses for element references.
const ELEMENT_KEY: &str = "element-6066-11e4-a52e-4f735466cecf";

/// How long a wait lasts before the test fails.
pub const WAIT: Duration = Duration::from_secs(15);

/// The Enter key, for `type_text`.
pub const ENTER: &str = "\u{E007}";

/// Holds Alt down for the keys after it, until [`RELEASE`].
pub const ALT: &str = "\u{E00A}";

/// Releases held modifier keys.
pub const RELEASE: &str = "\u{E000}";

/// A running chromedriver.
pub struct Driver {
    child: Child,
    url: String,
    http: reqwest::Client,
}

/// Finds `name` on PATH or in /usr/bin, or fails naming the Debian package.
fn program(name: &str, package: &str) -> PathBuf {
    let found = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|path| std::env::split_paths(&path).collect::<Vec<_>>())
        .chain([PathBuf::from("/usr/bin")])
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file());
    found.unwrap_or_else(|| {
        panic!("`{name}` is missing: install the Debian package `{package}` (scripts/test does it as root)")
    })
}

impl Driver {
    /// Starts chromedriver on a free loopback port.
    pub async fn start() -> Driver {
        let chromedriver = program("chromedriver", "chromium-driver");
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new(chromedriver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("failed to start chromedriver");
        let driver = Driver {
            child,
            url: format!("http://127.0.0.1:{port}"),
            http: reqwest::Client::new(),
        };
        let started = Instant::now();
        loop {
            let ready = driver
                .http
                .get(format!("{}/status", driver.url))
                .send()
                .await
                .ok()
                .and_then(|response| response.status().is_success().then_some(()));
            if ready.is_some() {
                return driver;
            }
            assert!(
                started.elapsed() < WAIT,
                "chromedriver did not answer on port {port}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// A new headless Chromium window preferring `language` (`zh-CN`, `en-US`).
    pub async fn browser(&self, language: &str, width: u32, height: u32) -> Browser {
        self.browser_with(language, width, height, &[]).await
    }

    /// As [`Driver::browser`], with more Chromium switches (`extra`).
    pub async fn browser_with(
        &self,
        language: &str,
        width: u32,
        height: u32,
        extra: &[&str],
    ) -> Browser {
        let chromium = program("chromium", "chromium");
        let profile = TempDir::new().unwrap();
        let mut args: Vec<String> = [
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-extensions",
            "--hide-scrollbars",
            "--force-device-scale-factor=1",
        ]
        .into_iter()
        .chain(extra.iter().copied())
        .map(String::from)
        .collect();
        args.push(format!("--window-size={width},{height}"));
        args.push(format!("--lang={language}"));
        args.push(format!("--user-data-dir={}", profile.path().display()));
        let capabilities = json!({
            "capabilities": {"alwaysMatch": {
                "browserName": "chrome",
                "goog:chromeOptions": {
                    "binary": chromium,
                    "args": args,
                    "prefs": {"intl.accept_languages": language},
                },
            }},
        });
        let answer = post(&self.http, &format!("{}/session", self.url), &capabilities).await;
        let id = answer["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("chromedriver did not open a window: {answer}"))
            .to_string();
        Browser {
            http: self.http.clone(),
            base: format!("{}/session/{id}", self.url),
            _profile: profile,
        }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        // Already gone is fine: the test is over either way.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn post(http: &reqwest::Client, url: &str, body: &Value) -> Value {
    match try_post(http, url, body).await {
        Ok(value) => value,
        Err(failure) => panic!("{failure}"),
    }
}

/// The command's value, or why it failed (with the WebDriver error name).
async fn try_post(http: &reqwest::Client, url: &str, body: &Value) -> Result<Value, String> {
    let response = http
        .post(url)
        .json(body)
        .send()
        .await
        .unwrap_or_else(|err| panic!("webdriver {url}: {err}"));
    let status = response.status();
    let answer: Value = response.json().await.unwrap();
    match status.is_success() {
        true => Ok(answer["value"].clone()),
        false => Err(format!("webdriver {url} {body}: {status} {answer}")),
    }
}

/// How often an action on an element is tried again when the page put a
/// new element in its place between finding and acting (a list refreshed).
const STALE_RETRIES: usize = 5;

/// One browser window.
pub struct Browser {
    http: reqwest::Client,
    base: String,
    /// Removed with the window.
    _profile: TempDir,
}

impl Browser {
    async fn command(&self, path: &str, body: Value) -> Value {
        post(&self.http, &format!("{}/{path}", self.base), &body).await
    }

    /// Opens `url` and waits for the page to load.
    pub async fn goto(&self, url: &str) {
        self.command("url", json!({"url": url})).await;
    }

    /// Reloads the page.
    pub async fn reload(&self) {
        self.command("refresh", json!({})).await;
    }

    /// Runs `script` (a function body; `arguments` holds `args`) and returns its value.
    pub async fn exec(&self, script: &str, args: Value) -> Value {
        self.command("execute/sync", json!({"script": script, "args": args}))
            .await
    }

    /// Polls `script` (a function body) until it returns a truthy value, and
    /// returns that value.
    pub async fn wait(&self, what: &str, script: &str, args: Value) -> Value {
        let started = Instant::now();
        loop {
            let value = self.exec(script, args.clone()).await;
            let truthy = match &value {
                Value::Null => false,
                Value::Bool(b) => *b,
                Value::Number(n) => n.as_f64() != Some(0.0),
                Value::String(s) => !s.is_empty(),
                _ => true,
            };
            if truthy {
                return value;
            }
            if started.elapsed() > WAIT {
                let shot = std::env::temp_dir().join("switchboard-failed-wait.png");
                self.screenshot(&shot).await;
                let text = self.exec("return document.body.innerText", json!([])).await;
                panic!(
                    "waited {WAIT:?} for {what}; screenshot {}; page text:\n{}",
                    shot.display(),
                    text.as_str().unwrap_or_default()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits for an element matching `css` to exist and be displayed.
    pub async fn wait_visible(&self, css: &str) {
        self.wait(
            &format!("`{css}` to be visible"),
            "const el = document.querySelector(arguments[0]); return !!el && el.offsetParent !== null;",
            json!([css]),
        )
        .await;
    }

    /// Waits until `css` holds `text` in its visible text.
    pub async fn wait_text(&self, css: &str, text: &str) {
        self.wait(
            &format!("`{css}` to show {text:?}"),
            "return [...document.querySelectorAll(arguments[0])].some(el => el.innerText.includes(arguments[1]));",
            json!([css, text]),
        )
        .await;
    }

    async fn element(&self, css: &str) -> String {
        self.wait_visible(css).await;
        self.find(css).await
    }

    async fn find(&self, css: &str) -> String {
        let found = self
            .command("element", json!({"using": "css selector", "value": css}))
            .await;
        found[ELEMENT_KEY]
            .as_str()
            .unwrap_or_else(|| panic!("no element `{css}`: {found}"))
            .to_string()
    }

    /// Does `action` (`click`, `value`) with `body` on the element `css`
    /// matches (waiting for it to be visible unless `any`), found anew if
    /// the page replaced it meanwhile.
    async fn act(&self, css: &str, any: bool, action: &str, body: Value) {
        for attempt in 1..=STALE_RETRIES {
            let id = match any {
                true => self.find(css).await,
                false => self.element(css).await,
            };
            let url = format!("{}/element/{id}/{action}", self.base);
            match try_post(&self.http, &url, &body).await {
                Ok(_) => return,
                Err(failure)
                    if failure.contains("stale element reference") && attempt < STALE_RETRIES => {}
                Err(failure) => panic!("{failure}"),
            }
        }
    }

    /// Clicks the first element matching `css` (waiting for it).
    pub async fn click(&self, css: &str) {
        self.act(css, false, "click", json!({})).await;
    }

    /// Picks `value` in the `<select>` matching `css`, as a click on the option does.
    pub async fn choose(&self, css: &str, value: &str) {
        // (An option is never "visible" itself: its select is.)
        self.wait_visible(css).await;
        let option = format!("{css} option[value='{value}']");
        self.act(&option, true, "click", json!({})).await;
    }

    /// Types `text` into the element (keys like [`ENTER`] included).
    pub async fn type_text(&self, css: &str, text: &str) {
        self.act(css, false, "value", json!({"text": text})).await;
    }

    /// Resizes the window.
    pub async fn resize(&self, width: u32, height: u32) {
        self.command("window/rect", json!({"width": width, "height": height}))
            .await;
    }

    /// Makes the window as tall as the page, so a screenshot shows all of it.
    pub async fn fit_height(&self) {
        let height = self
            .exec(
                "return Math.min(3000, document.documentElement.scrollHeight + (window.outerHeight - window.innerHeight))",
                json!([]),
            )
            .await;
        let width = self.exec("return window.outerWidth", json!([])).await;
        self.command("window/rect", json!({"width": width, "height": height}))
            .await;
    }

    /// Writes a PNG of the window to `path`.
    pub async fn screenshot(&self, path: &Path) {
        let response = self
            .http
            .get(format!("{}/screenshot", self.base))
            .send()
            .await
            .unwrap();
        let answer: Value = response.json().await.unwrap();
        let png = base64::engine::general_purpose::STANDARD
            .decode(answer["value"].as_str().unwrap_or_default())
            .unwrap();
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).unwrap();
        }
        std::fs::write(path, png).unwrap();
    }

    /// Closes the window.
    pub async fn quit(self) {
        // Closing is best effort: chromedriver ends with the test anyway.
        let _ = self.http.delete(&self.base).send().await;
    }
}
