//! [`HttpCache`]: the blocking client of one HTTP remote-cache server, with its options, failure handling and
//! counters ([`RemoteStats`]).

use std::ffi::OsString;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::thread;
use std::time::Duration;

use ureq::http::{Response, StatusCode, Uri};
use ureq::{Agent, Body};

use super::proto::{ActionResult, Message};
use super::Digest;

/// The environment variable [`HttpCache::from_env`] reads the server's base URL from.
pub const ENV_URL: &str = "PIE_REMOTE_CACHE";
/// The environment variable [`HttpCache::from_env`] reads the value of the `Authorization` header from.
pub const ENV_AUTH: &str = "PIE_REMOTE_CACHE_AUTH";

const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
const DEFAULT_RETRIES: u32 = 2;
const DEFAULT_MAX_BODY_BYTES: u64 = 1 << 30;
/// The wait before the first retry; it doubles for each further one, up to `MAX_BACKOFF`.
const FIRST_BACKOFF: Duration = Duration::from_millis(50);
const MAX_BACKOFF: Duration = Duration::from_secs(1);
const MAX_IDLE_CONNECTIONS: usize = 32;

/// What can go wrong with a remote cache.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RemoteError {
    /// The base URL given to [`HttpCache::new`] (or in [`ENV_URL`]) cannot be used.
    #[error("remote cache URL `{url}` is not usable: {reason}")]
    InvalidUrl {
        /// The URL as given, with a user name and password in it replaced by `***`.
        url: String,
        /// Why it cannot be used.
        reason: String,
    },
    /// The server failed a request (it could not be reached, timed out, refused, or answered with an error status)
    /// and the client stopped using it; see [`HttpCache::unavailable`].
    #[error("remote cache at {url} unavailable ({reason})")]
    Unavailable {
        /// The base URL of the server, with a user name and password in it replaced by `***`.
        url: String,
        /// What failed, e.g. `GET /ac/…: 401 Unauthorized` or `PUT /cas/…: timed out (…)`.
        reason: String,
    },
}

/// A snapshot of what an [`HttpCache`] did, from [`HttpCache::stats`].
///
/// Lookups are [`HttpCache::get_action`] and [`HttpCache::get_blob`]; each one that reached the server counts as
/// exactly one of a hit, a miss or an error. Operations skipped because the cache is read-only or unavailable
/// count nowhere.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RemoteStats {
    /// Lookups that returned a value.
    pub hits: u64,
    /// Lookups that found nothing (404) or something unusable (see `rejected`).
    pub misses: u64,
    /// Values that came back but were refused: an undecodable or malformed action result, a blob whose hash or size
    /// differs from its digest, a body over the size limit. Each is also a miss.
    pub rejected: u64,
    /// Operations (lookups, uploads, existence checks) that failed; the first one made the cache unavailable.
    pub errors: u64,
    /// HTTP requests sent, retries included.
    pub requests: u64,
    /// Bytes of request bodies the server accepted.
    pub bytes_up: u64,
    /// Bytes of action results and blobs received, rejected ones included.
    pub bytes_down: u64,
}

/// The counters behind [`RemoteStats`], shared by the threads that use one client.
#[derive(Default)]
struct Counters {
    hits: AtomicU64,
    misses: AtomicU64,
    rejected: AtomicU64,
    errors: AtomicU64,
    requests: AtomicU64,
    bytes_up: AtomicU64,
    bytes_down: AtomicU64,
}

fn bump(counter: &AtomicU64, by: u64) {
    // Counters are statistics: no other memory is published through them.
    counter.fetch_add(by, Ordering::Relaxed);
}

/// Which of the server's two stores a request addresses.
#[derive(Clone, Copy)]
enum Store {
    /// The action cache, `{base}/ac/{hex}`: action results, keyed by the digest of what was done.
    Action,
    /// The content store, `{base}/cas/{hex}`: blobs, keyed by the digest of their contents.
    Content,
}

impl Store {
    fn prefix(self) -> &'static str {
        match self {
            Store::Action => "ac",
            Store::Content => "cas",
        }
    }
}

/// The outcome of a download that did not fail.
enum Fetched {
    Found(Vec<u8>),
    Missing,
    /// The body was larger than allowed.
    TooLarge,
}

/// A client of a remote cache that speaks Bazel's HTTP remote-cache protocol: `GET`, `PUT` and `HEAD` of
/// `{base}/ac/{hex}` (action results) and `{base}/cas/{hex}` (blobs by the SHA-256 of their contents), as served by
/// nginx with WebDAV, bazel-remote and most cache services.
///
/// **A remote cache can only make a build faster, never fail it.** Every operation returns a plain value: a lookup
/// that finds nothing usable is `None`, an upload that fails does nothing. Nothing the server sends is trusted: a
/// blob is returned only when its SHA-256 and size match the digest asked for, an action result only when it
/// decodes and every digest in it is well-formed, a body is read only up to [`HttpCache::max_body_bytes`]. A server
/// that fails a request (unreachable, timed out, 401, 403, 413, 5xx after the retries) makes the client print one
/// warning to stderr, `pie: remote cache at URL unavailable (REASON); building locally`, and stop sending requests
/// for the rest of its life, so that a dead server costs one timeout and not one per task. A read-only client
/// never sends a `PUT`.
///
/// The client is `Send + Sync`: threads share one (behind a reference or an `Arc`), and with it one pool of
/// keep-alive connections and one set of counters ([`HttpCache::stats`]).
///
/// ```no_run
/// use pie::remote::proto::{ActionResult, OutputFile};
/// use pie::remote::{Digest, HttpCache};
///
/// let cache = HttpCache::new("http://127.0.0.1:8080/cache")?.auth_header(Some("Bearer secret".into()));
/// let contents = b"fn main() {}";
/// let blob = cache.put_blob(contents);
/// let key = Digest::of(b"the task and everything it depends on");
/// let result = ActionResult { output_files: vec![OutputFile::new("main.rs", &blob, false)], exit_code: 0 };
/// cache.put_action(&key, &result);
///
/// if let Some(result) = cache.get_action(&key) {
///     for file in &result.output_files {
///         let digest = file.content_digest().expect("`get_action` checks every digest");
///         let bytes = cache.get_blob(&digest);
///         assert_eq!(bytes.as_deref(), Some(&contents[..]));
///     }
/// }
/// println!("{:?}", cache.stats());
/// # Ok::<(), pie::remote::RemoteError>(())
/// ```
pub struct HttpCache {
    /// The base URL without a trailing `/`.
    base: String,
    /// `base` with any user name and password replaced by `***`, for messages.
    shown: String,
    agent: Agent,
    auth: Option<String>,
    read_only: bool,
    connect_timeout: Duration,
    request_timeout: Duration,
    retries: u32,
    max_body_bytes: u64,
    counters: Counters,
    /// Set once, by the first failed request; from then on no request is sent.
    failure: OnceLock<RemoteError>,
}

impl HttpCache {
    /// A read-write client of the server at `base_url` (`http://` or `https://`, with a host, and no query), with
    /// no `Authorization` header, a connect timeout of 2 s, a timeout of 30 s for a whole request, 2 retries and a
    /// limit of 1 GiB on a downloaded body. Nothing is sent until the first operation.
    pub fn new(base_url: &str) -> Result<Self, RemoteError> {
        let base = check_url(base_url)?;
        Ok(Self {
            shown: redact(&base),
            base,
            agent: agent(DEFAULT_CONNECT_TIMEOUT, DEFAULT_REQUEST_TIMEOUT),
            auth: None,
            read_only: false,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            retries: DEFAULT_RETRIES,
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            counters: Counters::default(),
            failure: OnceLock::new(),
        })
    }

    /// The client configured by the environment: `Ok(None)` when [`ENV_URL`] (`PIE_REMOTE_CACHE`) is unset or
    /// empty; otherwise a client of that URL whose `Authorization` header is [`ENV_AUTH`]
    /// (`PIE_REMOTE_CACHE_AUTH`) when that is set and not empty. An unusable URL is an error.
    pub fn from_env() -> Result<Option<Self>, RemoteError> {
        from_vars(std::env::var_os(ENV_URL), std::env::var_os(ENV_AUTH))
    }

    /// With `true`, the client only reads: uploads do nothing (the cache is filled elsewhere, say by CI).
    pub fn read_only(mut self, read_only: bool) -> Self {
        self.read_only = read_only;
        self
    }

    /// The value of the `Authorization` header sent with every request (e.g. `Bearer TOKEN` or `Basic …`), or none.
    pub fn auth_header(mut self, value: Option<String>) -> Self {
        self.auth = value;
        self
    }

    /// The longest wait for a connection to the server (default 2 s).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self.agent = agent(self.connect_timeout, self.request_timeout);
        self
    }

    /// The longest a whole request may take, from connecting to the last byte of the response (default 30 s).
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self.agent = agent(self.connect_timeout, self.request_timeout);
        self
    }

    /// How often a request is repeated after a connection error or a 5xx status (default 2), waiting 50 ms before
    /// the first retry and twice as long before each further one. Timeouts and other statuses are not retried.
    pub fn retries(mut self, retries: u32) -> Self {
        self.retries = retries;
        self
    }

    /// The largest response body read (default 1 GiB), so that a hostile or broken server cannot exhaust memory. A
    /// larger action result is refused; a blob whose digest says it is larger is not requested.
    pub fn max_body_bytes(mut self, limit: u64) -> Self {
        self.max_body_bytes = limit;
        self
    }

    /// The server's base URL, without a trailing `/`. A user name and password in it are sent as HTTP basic
    /// authentication, and replaced by `***` in warnings, errors and `Debug`.
    pub fn base_url(&self) -> &str {
        &self.base
    }

    /// Whether uploads are skipped.
    pub fn is_read_only(&self) -> bool {
        self.read_only
    }

    /// The failure that made the client stop using the server (an [`RemoteError::Unavailable`]), or `None` while
    /// it still uses it.
    pub fn unavailable(&self) -> Option<&RemoteError> {
        self.failure.get()
    }

    /// What the client has done so far.
    pub fn stats(&self) -> RemoteStats {
        let c = &self.counters;
        let get = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        RemoteStats {
            hits: get(&c.hits),
            misses: get(&c.misses),
            rejected: get(&c.rejected),
            errors: get(&c.errors),
            requests: get(&c.requests),
            bytes_up: get(&c.bytes_up),
            bytes_down: get(&c.bytes_down),
        }
    }

    /// The action result stored under `key`, or `None` when there is none, it is unusable (it does not decode, an
    /// output file lacks a well-formed digest, it is larger than [`HttpCache::max_body_bytes`]), or the server
    /// fails.
    pub fn get_action(&self, key: &Digest) -> Option<ActionResult> {
        let body = self.lookup(Store::Action, key, self.max_body_bytes)?;
        let result = ActionResult::decode(body.as_slice())
            .ok()
            .filter(|result| result.output_files.iter().all(|file| file.content_digest().is_some()));
        self.count_lookup(result)
    }

    /// Stores `result` under `key` (replacing what was there). Does nothing when read-only or unavailable; a failure
    /// makes the cache unavailable.
    pub fn put_action(&self, key: &Digest, result: &ActionResult) {
        self.upload(Store::Action, key, &result.encode_to_vec());
    }

    /// The blob with digest `digest`, or `None` when the server has none, what it sends has another SHA-256 or size
    /// (a corrupt or tampered entry), the digest's size is larger than [`HttpCache::max_body_bytes`], or the server
    /// fails.
    pub fn get_blob(&self, digest: &Digest) -> Option<Vec<u8>> {
        if digest.size_bytes() > self.max_body_bytes {
            if self.usable() {
                bump(&self.counters.misses, 1);
            }
            return None;
        }
        let body = self.lookup(Store::Content, digest, digest.size_bytes())?;
        self.count_lookup(Some(body).filter(|body| Digest::of(body) == *digest))
    }

    /// Stores `contents` in the content store and returns their digest, under which [`HttpCache::get_blob`] finds
    /// them. When read-only or unavailable, or when the upload fails, only the digest is computed.
    pub fn put_blob(&self, contents: &[u8]) -> Digest {
        let digest = Digest::of(contents);
        self.upload(Store::Content, &digest, contents);
        digest
    }

    /// Whether the server has a blob with digest `digest` (a `HEAD` request); `false` when it has none or fails.
    /// Counts as neither a hit nor a miss.
    pub fn has_blob(&self, digest: &Digest) -> bool {
        if !self.usable() {
            return false;
        }
        let path = path(Store::Content, digest);
        let response = self.send("HEAD", &path, || self.request(self.agent.head(self.url(&path))).call());
        match response {
            Ok(response) if response.status().is_success() => true,
            Ok(response) if response.status() == StatusCode::NOT_FOUND => false,
            Ok(response) => {
                self.fail(format!("HEAD {path}: {}", response.status()));
                false
            }
            Err(reason) => {
                self.fail(reason);
                false
            }
        }
    }

    fn usable(&self) -> bool {
        self.failure.get().is_none()
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Adds the headers every request carries.
    fn request<B>(&self, request: ureq::RequestBuilder<B>) -> ureq::RequestBuilder<B> {
        match &self.auth {
            Some(value) => request.header("Authorization", value),
            None => request,
        }
    }

    /// Counts a lookup whose response arrived: a hit when `value` is there, else a rejected value and a miss.
    fn count_lookup<V>(&self, value: Option<V>) -> Option<V> {
        match &value {
            Some(_) => bump(&self.counters.hits, 1),
            None => {
                bump(&self.counters.rejected, 1);
                bump(&self.counters.misses, 1);
            }
        }
        value
    }

    /// `GET`s the entry of `key` in `store`, reading at most `limit` bytes of body. `None` (counted) when the
    /// server has no such entry, the body is too large, or the request fails; otherwise the body, for the caller to
    /// check and count.
    fn lookup(&self, store: Store, key: &Digest, limit: u64) -> Option<Vec<u8>> {
        if !self.usable() {
            return None;
        }
        let path = path(store, key);
        match self.fetch(&path, limit) {
            Ok(Fetched::Found(body)) => Some(body),
            Ok(Fetched::Missing) => {
                bump(&self.counters.misses, 1);
                None
            }
            Ok(Fetched::TooLarge) => self.count_lookup(None),
            Err(reason) => {
                self.fail(reason);
                None
            }
        }
    }

    fn fetch(&self, path: &str, limit: u64) -> Result<Fetched, String> {
        let mut response = self.send("GET", path, || self.request(self.agent.get(self.url(path))).call())?;
        match response.status() {
            StatusCode::OK => {}
            StatusCode::NOT_FOUND => {
                discard(&mut response);
                return Ok(Fetched::Missing);
            }
            status => return Err(format!("GET {path}: {status}")),
        }
        if response.body().content_length().is_some_and(|length| length > limit) {
            return Ok(Fetched::TooLarge);
        }
        // One byte more than allowed is read, so that a body over the limit is told apart from one at it.
        match response
            .body_mut()
            .with_config()
            .limit(limit.saturating_add(1))
            .read_to_vec()
        {
            Ok(body) => {
                bump(&self.counters.bytes_down, body.len() as u64);
                if body.len() as u64 > limit {
                    Ok(Fetched::TooLarge)
                } else {
                    Ok(Fetched::Found(body))
                }
            }
            Err(ureq::Error::BodyExceedsLimit(_)) => Ok(Fetched::TooLarge),
            Err(error) => Err(format!("GET {path}: {}", describe(&error))),
        }
    }

    /// `PUT`s `body` as the entry of `key` in `store`, unless read-only or unavailable.
    fn upload(&self, store: Store, key: &Digest, body: &[u8]) {
        if self.read_only || !self.usable() {
            return;
        }
        let path = path(store, key);
        match self.send("PUT", &path, || {
            self.request(self.agent.put(self.url(&path))).send(body)
        }) {
            Ok(mut response) if response.status().is_success() => {
                discard(&mut response);
                bump(&self.counters.bytes_up, body.len() as u64);
            }
            Ok(response) => self.fail(format!("PUT {path}: {}", response.status())),
            Err(reason) => self.fail(reason),
        }
    }

    /// Sends a request (made anew by `attempt` each time), repeating it after a connection error or a 5xx status up
    /// to the configured number of retries. Returns the last response, whatever its status, or why none came.
    fn send(
        &self,
        method: &str,
        path: &str,
        attempt: impl Fn() -> Result<Response<Body>, ureq::Error>,
    ) -> Result<Response<Body>, String> {
        let mut backoff = FIRST_BACKOFF;
        let mut retries_left = self.retries;
        loop {
            bump(&self.counters.requests, 1);
            match attempt() {
                Ok(response) if !(response.status().is_server_error() && retries_left > 0) => return Ok(response),
                Ok(mut response) => discard(&mut response),
                Err(error) if !(is_transient(&error) && retries_left > 0) => {
                    return Err(format!("{method} {path}: {}", describe(&error)))
                }
                Err(_) => {}
            }
            // Another thread may have given up on the server meanwhile: then waiting longer is pointless.
            if !self.usable() {
                return Err(format!("{method} {path}: abandoned after another request failed"));
            }
            thread::sleep(backoff);
            backoff = (backoff * 2).min(MAX_BACKOFF);
            retries_left -= 1;
        }
    }

    /// Records a failed operation; the first one makes the client unavailable and prints the warning.
    fn fail(&self, reason: String) {
        bump(&self.counters.errors, 1);
        let error = RemoteError::Unavailable {
            url: self.shown.clone(),
            reason,
        };
        if self.failure.set(error).is_ok() {
            if let Some(error) = self.failure.get() {
                eprintln!("pie: {error}; building locally");
            }
        }
    }
}

impl fmt::Debug for HttpCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpCache")
            .field("base", &self.shown)
            // The header is a credential: say whether there is one, never what it is.
            .field("auth", &self.auth.as_ref().map(|_| "<redacted>"))
            .field("read_only", &self.read_only)
            .field("connect_timeout", &self.connect_timeout)
            .field("request_timeout", &self.request_timeout)
            .field("retries", &self.retries)
            .field("max_body_bytes", &self.max_body_bytes)
            .field("stats", &self.stats())
            .field("unavailable", &self.failure.get())
            .finish()
    }
}

/// Reads and drops the (small) body of a response whose body is not wanted, such as the page of a 404: a
/// connection goes back to the pool for the next request only once its response was read to the end. A body larger
/// than 64 KiB is left, and its connection closed.
fn discard(response: &mut Response<Body>) {
    let _ = response.body_mut().with_config().limit(64 * 1024).read_to_vec();
}

fn path(store: Store, key: &Digest) -> String {
    format!("/{}/{}", store.prefix(), key.hex())
}

fn agent(connect_timeout: Duration, request_timeout: Duration) -> Agent {
    Agent::config_builder()
        // Statuses are judged here (404 is a miss, 5xx is retried), not turned into errors.
        .http_status_as_error(false)
        .timeout_connect(Some(connect_timeout))
        .timeout_global(Some(request_timeout))
        .user_agent(concat!("pie/", env!("CARGO_PKG_VERSION")))
        // Parallel builds look up from as many threads as there are cores, all at one server: keep a connection
        // alive for each (ureq keeps 3 per host by default, so the others would reconnect for every request).
        .max_idle_connections(MAX_IDLE_CONNECTIONS)
        .max_idle_connections_per_host(MAX_IDLE_CONNECTIONS)
        .build()
        .into()
}

/// The base URL without a trailing `/`, or why it cannot be used.
fn check_url(url: &str) -> Result<String, RemoteError> {
    let invalid = |reason: &str| RemoteError::InvalidUrl {
        url: redact(url),
        reason: reason.to_string(),
    };
    let base = url.trim_end_matches('/');
    let uri: Uri = base
        .parse()
        .map_err(|e: ureq::http::uri::InvalidUri| invalid(&e.to_string()))?;
    match uri.scheme_str() {
        Some("http" | "https") => {}
        Some(_) => return Err(invalid("the scheme is not http or https")),
        None => return Err(invalid("it is not an absolute URL (http://HOST/PATH)")),
    }
    if uri.host().is_none_or(str::is_empty) {
        return Err(invalid("it has no host"));
    }
    if uri.query().is_some() || base.contains('#') {
        return Err(invalid("a base URL has no query or fragment"));
    }
    Ok(base.to_string())
}

/// `url` with the user information of its authority (`user:password@`) replaced by `***@`, so that a credential in
/// the URL never reaches a message. Works on any string, so also on one that is not a valid URL.
fn redact(url: &str) -> String {
    let authority_start = url.find("://").map_or(0, |i| i + 3);
    let authority_end = url[authority_start..]
        .find(['/', '?', '#'])
        .map_or(url.len(), |i| authority_start + i);
    match url[authority_start..authority_end].rfind('@') {
        Some(at) => format!("{}***{}", &url[..authority_start], &url[authority_start + at..]),
        None => url.to_string(),
    }
}

fn from_vars(url: Option<OsString>, auth: Option<OsString>) -> Result<Option<HttpCache>, RemoteError> {
    let Some(url) = url.filter(|url| !url.is_empty()) else {
        return Ok(None);
    };
    let url = url.into_string().map_err(|url| RemoteError::InvalidUrl {
        url: redact(&url.to_string_lossy()),
        reason: format!("{ENV_URL} is not valid UTF-8"),
    })?;
    // A header that is not UTF-8 cannot be sent; it is dropped rather than sent mangled (the server then says 401).
    let auth = auth
        .and_then(|value| value.into_string().ok())
        .filter(|value| !value.is_empty());
    Ok(Some(HttpCache::new(&url)?.auth_header(auth)))
}

/// Whether a request that failed this way may succeed when repeated at once: the connection failed or broke (a
/// server restarting, a keep-alive connection the server had closed). A timeout is not repeated, since it would
/// cost the whole timeout again.
fn is_transient(error: &ureq::Error) -> bool {
    match error {
        ureq::Error::Io(e) => !matches!(e.kind(), std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock),
        ureq::Error::ConnectionFailed | ureq::Error::Protocol(_) => true,
        _ => false,
    }
}

fn describe(error: &ureq::Error) -> String {
    match error {
        ureq::Error::Timeout(_) => format!("timed out ({error})"),
        _ => error.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_is_shared_by_threads() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<HttpCache>();
    }

    #[test]
    fn base_url_loses_its_trailing_slash() {
        assert_eq!(
            HttpCache::new("http://127.0.0.1:9/cache/").unwrap().base_url(),
            "http://127.0.0.1:9/cache"
        );
        assert_eq!(
            HttpCache::new("https://cache.example").unwrap().base_url(),
            "https://cache.example"
        );
    }

    #[test]
    fn unusable_urls_are_errors_that_name_them() {
        for url in [
            "",
            "cache.example/x",
            "ftp://cache.example",
            "http://",
            "http://h/x?y=1",
            "http://h/x#y",
            "h t",
        ] {
            let error = HttpCache::new(url).unwrap_err();
            assert!(
                matches!(&error, RemoteError::InvalidUrl { url: u, .. } if u == url),
                "{url}: {error}"
            );
            assert!(error.to_string().contains(&format!("`{url}`")), "{error}");
        }
    }

    #[test]
    fn credentials_in_the_url_are_never_shown() {
        let cache = HttpCache::new("http://user:secret@127.0.0.1:9/c").unwrap();
        assert_eq!(cache.base_url(), "http://user:secret@127.0.0.1:9/c");
        assert!(!format!("{cache:?}").contains("secret"));
        cache.fail("test".into());
        assert_eq!(
            cache.unavailable().unwrap().to_string(),
            "remote cache at http://***@127.0.0.1:9/c unavailable (test)"
        );
        assert!(!HttpCache::new("ftp://user:secret@h/")
            .unwrap_err()
            .to_string()
            .contains("secret"));
        assert_eq!(redact("https://h/a@b"), "https://h/a@b");
        assert_eq!(redact("u:p@h/x"), "***@h/x");
    }

    #[test]
    fn environment_without_url_means_no_cache() {
        assert!(from_vars(None, Some("Bearer x".into())).unwrap().is_none());
        assert!(from_vars(Some("".into()), None).unwrap().is_none());
    }

    #[test]
    fn environment_configures_url_and_auth() {
        let cache = from_vars(Some("http://127.0.0.1:9/c".into()), Some("Bearer x".into()))
            .unwrap()
            .unwrap();
        assert_eq!(cache.base_url(), "http://127.0.0.1:9/c");
        assert_eq!(cache.auth.as_deref(), Some("Bearer x"));
        let cache = from_vars(Some("http://127.0.0.1:9/c".into()), Some("".into()))
            .unwrap()
            .unwrap();
        assert_eq!(cache.auth, None);
        assert!(from_vars(Some("nonsense".into()), None).is_err());
    }

    #[test]
    fn debug_never_shows_the_auth_header() {
        let cache = HttpCache::new("http://127.0.0.1:9")
            .unwrap()
            .auth_header(Some("Bearer secret".into()));
        let debug = format!("{cache:?}");
        assert!(!debug.contains("secret") && debug.contains("<redacted>"), "{debug}");
    }

    #[test]
    fn read_only_client_sends_nothing_on_upload() {
        // Port 9 (discard) on loopback: nothing listens there, so a request would fail and count an error.
        let cache = HttpCache::new("http://127.0.0.1:9").unwrap().read_only(true);
        assert_eq!(cache.put_blob(b"x"), Digest::of(b"x"));
        cache.put_action(&Digest::of(b"k"), &ActionResult::default());
        assert_eq!(cache.stats(), RemoteStats::default());
        assert!(cache.unavailable().is_none());
    }

    #[test]
    fn blob_larger_than_the_limit_is_not_requested() {
        let cache = HttpCache::new("http://127.0.0.1:9").unwrap().max_body_bytes(4);
        assert_eq!(cache.get_blob(&Digest::of(b"hello")), None);
        assert_eq!(
            cache.stats(),
            RemoteStats {
                misses: 1,
                ..RemoteStats::default()
            }
        );
    }
}
