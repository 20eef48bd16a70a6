//! The page of `mxprobe serve` (`GET /`) in a real headless Chromium, driven through ChromeDriver
//! with the W3C WebDriver protocol over HTTP (ureq), against the real binary and a simulated
//! world.
//!
//! What a person does with it: a refused upload shows the server's message; an upload is
//! watched to "100 %", and the CSV the page saves is the CSV `verify --format csv` writes for
//! the same file; text from the server and from the list stays text, never HTML; a service
//! without tokens needs none from the page.
//!
//! `.ci/run` installs Debian's `chromium` and `chromium-driver`. Where they are missing the test
//! fails under CI (`CI` set: a green CI must mean the browser ran) and is skipped with a note
//! elsewhere, as tests/interop/ does with its servers.

#![allow(
    clippy::disallowed_methods,
    reason = "this test drives a browser and the service in real time"
)]
#![allow(clippy::print_stderr, reason = "a skipped test says so on stderr")]

use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

#[path = "support/serve.rs"]
mod support;

use support::*;

const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const CHROMIUM: &str = "/usr/bin/chromium";

/// ChromeDriver's log, in this test's temporary directory, kept for a failure to be read.
const DRIVER_LOG: &str = "chromedriver.log";

/// How often a wait looks at the page again.
const POLL: Duration = Duration::from_millis(100);

/// The key of an element reference in WebDriver's JSON (W3C WebDriver, "Elements").
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// What the page must show as text: as HTML it would load an image and run its handler.
const INJECTION: &str = "<img src=x onerror=alert(1)>";

/// A list as people have them: known and unknown mailboxes, catch-all domains (one address
/// each, so that no domain's catch-all answer depends on the order of its probes), a repeat,
/// a blank line, a comment, and an address that is HTML.
const LIST: &str = "# newsletter, March\n\
alice@shop.test\n\
bob@shop.test\n\
nobody@shop.test\n\
\n\
user1@d1.slow.test\n\
user2@d2.slow.test\n\
carol@shop.test\n\
<img src=x onerror=alert(1)>@shop.test\n\
user3@d3.slow.test\n\
user4@d4.slow.test\n\
alice@shop.test\n";

#[test]
fn the_page_uploads_watches_and_saves_the_csv_verify_writes() {
    if !chromium_installed() {
        return;
    }
    let world = world(Duration::from_millis(1));
    let store = temp("page.db");
    let server = Server::start(&world, &store, &[]);
    let list = temp("page-list.txt");
    std::fs::write(&list, LIST).expect("list");
    let browser = Browser::start();
    browser.open(&server.url("/"));

    // A wrong token: the upload is refused, with the server's own words.
    browser.type_into("#token", "not-a-token");
    browser.type_into("#file", &list.display().to_string());
    browser.click("#upload");
    browser.wait_for_text("#status", |text| {
        text == "Upload refused: that token is not one of this service's"
    });

    // The right one: upload, and watch the job to its end.
    browser.clear("#token");
    browser.type_into("#token", TOKEN_A);
    browser.click("#upload");
    browser.wait_for("the job to finish on the page", || {
        let shown = (browser.text("#percent"), browser.text("#state"));
        (shown.0 == "100 %" && shown.1 == "finished").then_some(())
    });
    let jobs = get(&server, "/v1/jobs", TOKEN_A).json();
    let job = &jobs["jobs"][0];
    let id = job["id"].as_str().expect("the page's job");
    assert_eq!(jobs["jobs"].as_array().map(Vec::len), Some(1), "{jobs}");
    assert_eq!(browser.property("#progress", "value"), json!(100));
    let counts = browser
        .script("return [...document.querySelectorAll('#counts li')].map(li => li.textContent)");
    let expected: Vec<String> = ["deliverable", "undeliverable", "risky", "unknown"]
        .iter()
        .map(|verdict| format!("{} {verdict}", job["verdicts"][verdict]))
        .collect();
    assert_eq!(counts, json!(expected));

    // Download: the page fetches the CSV with the token and saves it from a blob.
    browser.click("#download");
    browser.wait_for("the CSV to be fetched", || {
        let href = browser.property("#download", "href");
        href.as_str()
            .is_some_and(|href| href.starts_with("blob:"))
            .then_some(())
    });
    assert_eq!(
        browser.property("#download", "download"),
        json!(format!("mxprobe-{id}.csv"))
    );
    // The page's Content-Security-Policy (`default-src 'self'`) keeps scripts from fetching
    // `blob:` URLs, this test's included; the file Chromium saved is read instead, which is
    // what the person gets anyway.
    let saved = browser.downloads().join(format!("mxprobe-{id}.csv"));
    browser.wait_for("the CSV to be saved", || saved.is_file().then_some(()));
    let csv = std::fs::read_to_string(&saved).expect("the saved CSV");
    let output = world
        .verify()
        .args(["--format", "csv", "--input"])
        .arg(&list)
        .output()
        .expect("verify");
    let expected = String::from_utf8(output.stdout).expect("utf-8");
    let mut theirs = without_elapsed(&expected);
    // verify writes in completion order, the service in input order.
    theirs[1..].sort_by_key(|row| row.split(',').next().and_then(|n| n.parse::<u64>().ok()));
    assert_eq!(without_elapsed(&csv), theirs);
    assert!(csv.contains(INJECTION), "{csv}");

    // The job in the list of the caller's jobs.
    browser.wait_for("the finished job in the list", || {
        let rows = browser.script(
            "return [...document.querySelectorAll('#jobs tbody tr')].map(tr => tr.textContent)",
        );
        let finished = rows.as_array().is_some_and(|rows| {
            rows.len() == 1 && rows[0].as_str().is_some_and(|row| row.contains("finished"))
        });
        finished.then_some(())
    });

    // Text from the list and from the server is shown as text. A CSV whose header is HTML, by
    // a column it lacks: the server's refusal quotes the header.
    browser.script("window.alert = () => { window.alerted = true; }; return null");
    let csv_list = temp("page-list.csv");
    std::fs::write(
        &csv_list,
        format!("name,{INJECTION}\nAlice,alice@shop.test\n"),
    )
    .expect("csv");
    browser.type_into("#column", "email");
    browser.type_into("#file", &csv_list.display().to_string());
    browser.click("#upload");
    browser.wait_for_text("#status", |text| {
        text.starts_with("Upload refused: ") && text.contains(INJECTION)
    });
    let address = format!("{INJECTION}@shop.test");
    browser.type_into("#address", &address);
    browser.click("#check");
    browser.wait_for_text("#verdict", |text| {
        text.starts_with(&format!("{address}: undeliverable (invalid syntax)"))
    });
    assert_eq!(
        browser.script("return [document.images.length, window.alerted === undefined]"),
        json!([0, true]),
        "server text was parsed as HTML"
    );

    // The token is remembered.
    browser.open(&server.url("/"));
    assert_eq!(browser.property("#token", "value"), json!(TOKEN_A));

    // A service without tokens (another origin, so no token kept): the page needs none.
    let open = Server::start(&world, &temp("page-open.db"), &["--no-auth"]);
    browser.open(&open.url("/"));
    assert_eq!(browser.property("#token", "value"), json!(""));
    browser.wait_for_text("#jobs-note", |text| text == "No jobs yet.");
    browser.type_into("#address", "alice@shop.test");
    browser.click("#check");
    browser.wait_for_text("#verdict", |text| {
        text.starts_with("alice@shop.test: deliverable (accepted)")
    });
}

/// Whether ChromeDriver and Chromium are installed; if not, fails under CI and says why the test
/// is skipped elsewhere.
fn chromium_installed() -> bool {
    if Path::new(CHROMEDRIVER).is_file() && Path::new(CHROMIUM).is_file() {
        return true;
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "{CHROMEDRIVER} or {CHROMIUM} is missing; under CI it must be there: .ci/run must \
         install the Debian packages chromium and chromium-driver"
    );
    eprintln!(
        "SKIPPED: the page test needs Chromium and ChromeDriver \
         (apt-get install chromium chromium-driver)"
    );
    false
}

/// A headless Chromium under ChromeDriver, in a WebDriver session. Dropping it ends the
/// session, then ChromeDriver's whole process group (Chromium included), and removes the
/// browser's profile.
struct Browser {
    driver: Child,
    agent: ureq::Agent,
    /// `http://127.0.0.1:PORT/session/ID`, which every command's path starts with.
    session: String,
    profile: PathBuf,
}

impl Browser {
    fn start() -> Self {
        let profile = temp("chromium");
        std::fs::create_dir_all(&profile).expect("profile dir");
        let agent = agent();
        let (driver, base) = start_driver(&agent);
        let capabilities = json!({"capabilities": {"alwaysMatch": {"goog:chromeOptions": {
            "binary": CHROMIUM,
            "args": [
                "--headless=new",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                // Without these Chromium calls home, and this machine's closed network refuses.
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--disable-dev-shm-usage",
                "--window-size=1000,1300",
                format!("--user-data-dir={}", profile.join("user-data").display()),
            ],
            "prefs": {
                "download.default_directory": profile.join("downloads"),
                "download.prompt_for_download": false,
            },
        }}}});
        let mut browser = Self {
            driver,
            agent,
            session: String::new(),
            profile,
        };
        let created = browser
            .call("POST", &format!("{base}/session"), Some(&capabilities))
            .unwrap_or_else(|e| {
                panic!(
                    "ChromeDriver did not start Chromium: {e} (its log: {})",
                    temp(DRIVER_LOG).display()
                )
            });
        let id = created["sessionId"].as_str().expect("a session id");
        browser.session = format!("{base}/session/{id}");
        browser
    }

    /// A WebDriver command: its `value`, or the error WebDriver answered.
    fn call(&self, method: &str, url: &str, body: Option<&Value>) -> Result<Value, String> {
        let response = match method {
            "GET" => self.agent.get(url).call(),
            "DELETE" => self.agent.delete(url).call(),
            _ => self
                .agent
                .post(url)
                .content_type("application/json")
                .send(body.unwrap_or(&json!({})).to_string()),
        };
        let mut response = response.map_err(|e| format!("{method} {url}: {e}"))?;
        let status = response.status().as_u16();
        let body = response
            .body_mut()
            .read_to_string()
            .map_err(|e| format!("{method} {url}: {e}"))?;
        let value = serde_json::from_str::<Value>(&body)
            .map_err(|e| format!("{method} {url}: {e}: {body}"))?["value"]
            .take();
        if status == 200 {
            Ok(value)
        } else {
            Err(format!("{method} {url}: {status} {value}"))
        }
    }

    /// A command of this session, which must succeed.
    fn command(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let url = format!("{}{path}", self.session);
        self.call(method, &url, body.as_ref())
            .unwrap_or_else(|e| panic!("WebDriver {method} {path}: {e}"))
    }

    fn open(&self, url: &str) {
        self.command("POST", "/url", Some(json!({ "url": url })));
    }

    /// The reference of the first element `css` selects.
    fn find(&self, css: &str) -> String {
        let found = self.command(
            "POST",
            "/element",
            Some(json!({"using": "css selector", "value": css})),
        );
        found[ELEMENT].as_str().expect("an element").to_owned()
    }

    /// Types `text` into `css`; for a file input, `text` is the file's absolute path.
    fn type_into(&self, css: &str, text: &str) {
        let element = self.find(css);
        self.command(
            "POST",
            &format!("/element/{element}/value"),
            Some(json!({ "text": text })),
        );
    }

    fn clear(&self, css: &str) {
        let element = self.find(css);
        self.command("POST", &format!("/element/{element}/clear"), None);
    }

    fn click(&self, css: &str) {
        let element = self.find(css);
        self.command("POST", &format!("/element/{element}/click"), None);
    }

    /// The text of `css` as rendered (empty while hidden).
    fn text(&self, css: &str) -> String {
        let element = self.find(css);
        let text = self.command("GET", &format!("/element/{element}/text"), None);
        text.as_str().unwrap_or_default().to_owned()
    }

    fn property(&self, css: &str, name: &str) -> Value {
        let element = self.find(css);
        self.command("GET", &format!("/element/{element}/property/{name}"), None)
    }

    fn script(&self, script: &str) -> Value {
        self.command(
            "POST",
            "/execute/sync",
            Some(json!({"script": script, "args": []})),
        )
    }

    /// Where Chromium saves downloads.
    fn downloads(&self) -> PathBuf {
        self.profile.join("downloads")
    }

    /// Waits until `ready` gives a value; fails, showing the page's status line, after the hang
    /// guard.
    fn wait_for<T>(&self, what: &str, mut ready: impl FnMut() -> Option<T>) -> T {
        let deadline = Instant::now() + HANG_GUARD;
        loop {
            if let Some(value) = ready() {
                return value;
            }
            assert!(
                Instant::now() < deadline,
                "waited {HANG_GUARD:?} for {what}; the page says {:?}",
                self.text("#status")
            );
            std::thread::sleep(POLL);
        }
    }

    /// Waits until the text of `css` is `ready`; returns it.
    fn wait_for_text(&self, css: &str, ready: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + HANG_GUARD;
        loop {
            let text = self.text(css);
            if ready(&text) {
                return text;
            }
            assert!(
                Instant::now() < deadline,
                "waited {HANG_GUARD:?} for {css} to change; it reads {text:?}"
            );
            std::thread::sleep(POLL);
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if !self.session.is_empty() {
            let _ = self.call("DELETE", &self.session, None);
        }
        // ChromeDriver leads a process group of its own (see `start_driver`), Chromium in it.
        let group = format!("-{}", self.driver.id());
        let _ = Command::new("kill")
            .args(["-KILL", "--", &group])
            .stderr(Stdio::null())
            .status();
        let _ = self.driver.kill();
        let _ = self.driver.wait();
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

/// ChromeDriver on a free loopback port, ready for a session: the process and its base URL.
/// A port taken between choosing and binding it costs another try.
fn start_driver(agent: &ureq::Agent) -> (Child, String) {
    for _ in 0..5 {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .expect("a free port")
            .port();
        let mut driver = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .arg(format!("--log-path={}", temp(DRIVER_LOG).display()))
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let base = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + HANG_GUARD;
        let ready = loop {
            if driver.try_wait().expect("chromedriver").is_some() {
                break false;
            }
            let status = agent
                .get(format!("{base}/status"))
                .call()
                .ok()
                .and_then(|mut response| response.body_mut().read_to_string().ok())
                .and_then(|body| serde_json::from_str::<Value>(&body).ok());
            if status.is_some_and(|status| status["value"]["ready"] == true) {
                break true;
            }
            if Instant::now() > deadline {
                let _ = driver.kill();
                let _ = driver.wait();
                panic!(
                    "chromedriver never became ready (its log: {})",
                    temp(DRIVER_LOG).display()
                );
            }
            std::thread::sleep(POLL);
        };
        if ready {
            return (driver, base);
        }
        let _ = driver.wait();
    }
    panic!(
        "chromedriver did not start on a free port (its log: {})",
        temp(DRIVER_LOG).display()
    );
}
