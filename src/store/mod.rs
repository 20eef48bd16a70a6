//! [`Store`]: what a long-running mxprobe keeps on disk — bulk jobs with their input lines, the
//! result of every line, a cache of verdicts and facts of domains — in one SQLite file.
//!
//! This is the store the HTTP service (`mxprobe serve`) and `verify --store` are built on. It
//! owes its callers three things:
//!
//! - **Nothing acknowledged is lost.** A job's lines go in batch by batch
//!   ([`Store::begin_job`], [`Store::upload`], [`Store::commit_job`]) and the job exists for
//!   its owner only from the commit on: a caller answers `202` only after it, and an upload
//!   cut short leaves nothing visible — [`Store::abandon_job`] removes it, and a crash's
//!   half-uploaded jobs are removed when the store is next opened for writing. The batches
//!   are transactions of their own, so that the one writer can save results between them
//!   while a long upload comes in. The file is in WAL mode: every committed transaction
//!   survives `kill -9`, and what a caller acknowledges (a job's commit, a cancel) is synced to
//!   disk before the call returns, so it survives a power cut too. Results are not synced one
//!   batch at a time: a power cut may lose the last of them, whose lines are then asked again
//!   (nobody was told they were done).
//! - **Every line answered exactly once.** A result is stored under its job and line, and a
//!   second result for the same line is ignored ([`Store::save_results`]). After a restart
//!   [`Store::unanswered`] gives the lines still owed, in order, so a job finishes where it
//!   stopped.
//! - **The same list twice probes nothing twice.** Each verdict is cached for its reason's
//!   time to live ([`ttl`]): long when the answer is a fact about the mailbox, none when it
//!   says only that this attempt failed.
//!
//! - **What probes teach about a domain is kept** ([`Store::domain`]): its catch-all answer,
//!   given to the next engine for a day ([`Store::known_catch_all`]) so that the control is not
//!   asked again after a restart, when its servers were last seen greylisting, and the provider
//!   of the MX host that last answered for it.
//!
//! Jobs belong to an owner (the hash of the API token that made them); every read that names a
//! job also names its owner, and another owner's job is as good as absent.
//!
//! One [`Store`] is one connection: the service gives the writing one ([`Store::open`]) to one
//! writer thread, and reads on others ([`Store::open_reader`]); WAL lets them read while it
//! writes. Times are passed in (`now`), never read here, so that tests can move them.

use std::collections::HashMap;
use std::fmt;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rusqlite::{Connection, OptionalExtension, params};

use crate::engine::VerifyResult;
use crate::verdict::Reason;

#[cfg(test)]
mod tests;

/// The schema, applied to a new file; `user_version` says which one a file has.
const SCHEMA: &str = "
-- A job's rows elsewhere name it by `seq`, its number in this file: a small integer, not its
-- 32-character name, in the key of each of its lines, results and cache entries.
CREATE TABLE jobs (
    seq         INTEGER PRIMARY KEY,
    id          TEXT NOT NULL UNIQUE,
    owner       TEXT NOT NULL,
    state       TEXT NOT NULL CHECK (state IN ('uploading', 'running', 'finished', 'cancelled')),
    created_ms  INTEGER NOT NULL,
    finished_ms INTEGER,
    lines       INTEGER NOT NULL,
    answered    INTEGER NOT NULL DEFAULT 0,
    webhook     TEXT,
    webhook_state TEXT CHECK (webhook_state IN ('pending', 'delivered', 'failed'))
);
CREATE INDEX jobs_by_owner ON jobs (owner, created_ms);
CREATE TABLE lines (
    job     INTEGER NOT NULL,
    line    INTEGER NOT NULL,
    address TEXT NOT NULL,
    PRIMARY KEY (job, line)
) WITHOUT ROWID;
CREATE TABLE results (
    job    INTEGER NOT NULL,
    line   INTEGER NOT NULL,
    reason TEXT NOT NULL,
    record TEXT NOT NULL,
    PRIMARY KEY (job, line)
) WITHOUT ROWID;
CREATE TABLE counts (
    job    INTEGER NOT NULL,
    reason TEXT NOT NULL,
    count  INTEGER NOT NULL,
    PRIMARY KEY (job, reason)
) WITHOUT ROWID;
CREATE TABLE cache (
    mailbox    TEXT PRIMARY KEY,
    reason     TEXT NOT NULL,
    expires_ms INTEGER NOT NULL,
    -- The record itself, or where it is: a job's result (not written twice).
    record     TEXT,
    job        INTEGER,
    line       INTEGER,
    CHECK ((record IS NULL) != (job IS NULL))
) WITHOUT ROWID;
-- What probes taught about each domain: its catch-all answer and when it was had, when a
-- server of the domain was last seen greylisting, and the provider of the MX host that last
-- answered for it.
CREATE TABLE domains (
    domain        TEXT PRIMARY KEY,
    catch_all     INTEGER CHECK (catch_all IN (0, 1)),
    catch_all_ms  INTEGER,
    greylisted_ms INTEGER,
    provider      TEXT
) WITHOUT ROWID;
";

/// The schema version this code writes. Versions 1 to 3, of development builds before job
/// numbers and domain facts, are not read.
const SCHEMA_VERSION: i64 = 4;

/// How long a domain's catch-all answer is trusted: as long as an `accept_all` verdict.
pub const CATCH_ALL_TTL: Duration = Duration::from_secs(24 * 60 * 60);

/// What the store knows of a domain ([`Store::domain`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DomainFacts {
    /// The domain, lower-case (A-labels).
    pub domain: String,
    /// Its catch-all answer (`true`: it accepts any local part) and when it was had, if one
    /// was.
    pub catch_all: Option<(bool, SystemTime)>,
    /// When one of its servers last answered an address with greylisting, if one did.
    pub greylisted: Option<SystemTime>,
    /// The provider ([`crate::providers`]) of the MX host that last answered for it, if
    /// mxprobe knows it.
    pub provider: Option<String>,
}

/// How long a verdict of each reason is reused for another submission of its mailbox; `None`:
/// never.
///
/// | reasons | TTL | why |
/// |---|---|---|
/// | `invalid_syntax` | 365 days | the grammar does not change |
/// | `accepted`, `mailbox_not_found`, `mailbox_disabled` | 7 days | a fact about the mailbox, which people create and close |
/// | `domain_not_found`, `null_mx`, `no_mail_server`, `accept_all`, `mailbox_full`, `disposable`, `smtputf8_unsupported` | 1 day | facts about the domain or its servers, which change with DNS and configuration |
/// | every `unknown` but `smtputf8_unsupported` | none | they say this attempt failed, not what the mailbox is |
#[must_use]
pub fn ttl(reason: Reason) -> Option<Duration> {
    const DAY: u64 = 24 * 60 * 60;
    match reason {
        Reason::InvalidSyntax => Some(Duration::from_secs(365 * DAY)),
        Reason::Accepted | Reason::MailboxNotFound | Reason::MailboxDisabled => {
            Some(Duration::from_secs(7 * DAY))
        }
        Reason::DomainNotFound
        | Reason::NullMx
        | Reason::NoMailServer
        | Reason::AcceptAll
        | Reason::MailboxFull
        | Reason::Disposable
        | Reason::Smtputf8Unsupported => Some(Duration::from_secs(DAY)),
        Reason::Greylisted
        | Reason::TemporaryFailure
        | Reason::Blocked
        | Reason::SenderRejected
        | Reason::Timeout
        | Reason::ConnectionFailed
        | Reason::ProtocolError
        | Reason::DnsFailure => None,
    }
}

/// A job's name: 32 hexadecimal digits from the operating system's CSPRNG, so that names
/// cannot be guessed.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct JobId(String);

impl JobId {
    fn random() -> Result<Self, StoreError> {
        let mut bytes = [0u8; 16];
        getrandom::fill(&mut bytes).map_err(|e| StoreError::Random(e.to_string()))?;
        Ok(Self(bytes.iter().map(|b| format!("{b:02x}")).collect()))
    }

    /// The name as given by a client; `None` unless it is 32 lower-case hexadecimal digits.
    #[must_use]
    pub fn parse(text: &str) -> Option<Self> {
        (text.len() == 32 && text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')))
            .then(|| Self(text.to_owned()))
    }

    /// The name.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Where a job stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobState {
    /// Lines are still owed a result.
    Running,
    /// Every line has its result.
    Finished,
    /// Its owner cancelled it; the results so far stay.
    Cancelled,
}

impl JobState {
    /// The name stored and shown: `running`, `finished`, `cancelled`.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Running => "running",
            Self::Finished => "finished",
            Self::Cancelled => "cancelled",
        }
    }

    fn parse(text: &str) -> Result<Self, StoreError> {
        match text {
            "running" => Ok(Self::Running),
            "finished" => Ok(Self::Finished),
            "cancelled" => Ok(Self::Cancelled),
            other => Err(StoreError::Corrupt(format!("a job in state {other:?}"))),
        }
    }
}

/// What a job is and how far it has come.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobSummary {
    /// Its name.
    pub id: JobId,
    /// Where it stands.
    pub state: JobState,
    /// When it was committed.
    pub created: SystemTime,
    /// When its last line was answered, or it was cancelled.
    pub finished: Option<SystemTime>,
    /// Input lines.
    pub lines: u64,
    /// Lines with their result.
    pub answered: u64,
    /// Results so far per reason, in the order of [`Reason::ALL`]; reasons without results
    /// are left out.
    pub reasons: Vec<(Reason, u64)>,
}

/// Why the store could not do something. None of these is a verdict on a mailbox.
#[derive(Debug)]
pub enum StoreError {
    /// SQLite refused: the file cannot be opened or written, the disk is full...
    Sqlite(rusqlite::Error),
    /// The file holds something this code did not write.
    Corrupt(String),
    /// The file was written by a newer mxprobe.
    NewerSchema(i64),
    /// The file was written by a development build of mxprobe with an older schema.
    OlderSchema(i64),
    /// The operating system gave no randomness for a job's name.
    Random(String),
    /// An upload's line numbers went backwards: a bug in the caller.
    LineOrder {
        /// The line given.
        line: u64,
        /// The last line before it.
        after: u64,
    },
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Sqlite(e) => write!(f, "the store failed: {e}"),
            Self::Corrupt(what) => write!(f, "the store holds {what}, which mxprobe never writes"),
            Self::NewerSchema(version) => write!(
                f,
                "the store was written by a newer mxprobe (schema {version}, this one knows \
                 {SCHEMA_VERSION}); upgrade mxprobe or use another file"
            ),
            Self::OlderSchema(version) => write!(
                f,
                "the store was written by a development build of mxprobe (schema {version}, \
                 this one writes {SCHEMA_VERSION}) and cannot be read; move it aside and start \
                 with a new file"
            ),
            Self::Random(e) => write!(f, "no randomness for a job's name: {e}"),
            Self::LineOrder { line, after } => {
                write!(f, "an upload gave line {line} after line {after}")
            }
        }
    }
}

impl std::error::Error for StoreError {}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        Self::Sqlite(e)
    }
}

/// Cache entries of saved job results held back at most, before they are written in one
/// sorted pass ([`Store::flush_cache`]).
pub const CACHE_BATCH: usize = 32_768;

/// The store: one SQLite connection. See the module documentation.
#[derive(Debug)]
pub struct Store {
    conn: Connection,
    /// Cache entries of saved job results not yet written: see [`Store::save_results`].
    pending: Vec<Entry>,
    /// What those results taught about their domains, not yet written.
    lessons: HashMap<String, Lesson>,
}

/// What results taught about one domain, to be written ([`learn`]).
#[derive(Debug, Default, Clone, Copy)]
struct Lesson {
    /// The catch-all answer and when it was had.
    catch_all: Option<(bool, i64)>,
    /// When greylisting was last seen.
    greylisted_ms: Option<i64>,
    /// The provider of the MX host that answered.
    provider: Option<&'static str>,
}

impl Lesson {
    /// Takes what `result`, had at `at_ms`, says of its domain; false if nothing.
    fn take(&mut self, result: &VerifyResult, at_ms: i64) -> bool {
        let mut learned = false;
        if let Some(accepts_any) = result.catch_all {
            self.catch_all = Some((accepts_any, at_ms));
            learned = true;
        }
        if result.reason == Reason::Greylisted {
            self.greylisted_ms = Some(at_ms);
            learned = true;
        }
        if let Some(provider) = result.mx.as_deref().and_then(crate::providers::by_mx_host) {
            self.provider = Some(provider.id.as_str());
            learned = true;
        }
        learned
    }
}

/// A cache entry of a job's result, waiting to be written.
#[derive(Debug)]
struct Entry {
    mailbox: String,
    reason: Reason,
    expires_ms: i64,
    job: i64,
    line: u64,
}

impl Store {
    /// Opens the store at `path` for writing, making it if it does not exist, and removes
    /// the jobs a crash left half uploaded. One process writes a file at a time.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let store = Self::prepare(Connection::open(path)?)?;
        store.remove_uploads()?;
        Ok(store)
    }

    /// Opens the store at `path` to read, beside the writer: it must exist, and nothing is
    /// changed through this connection.
    pub fn open_reader(path: &Path) -> Result<Self, StoreError> {
        let conn = Connection::open_with_flags(
            path,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        conn.execute_batch("PRAGMA busy_timeout = 5000;")?;
        stable_plans(&conn)?;
        let version: i64 = conn.query_row("PRAGMA user_version", [], |row| row.get(0))?;
        match version {
            SCHEMA_VERSION => Ok(Self::new(conn)),
            0 => Err(StoreError::Corrupt("no mxprobe schema".into())),
            other => Err(schema_error(other)),
        }
    }

    /// A store in memory, gone when dropped: for tests.
    pub fn open_in_memory() -> Result<Self, StoreError> {
        Self::prepare(Connection::open_in_memory()?)
    }

    /// Deletes jobs still uploading, with their lines: at open, none is being uploaded.
    fn remove_uploads(&self) -> Result<usize, StoreError> {
        let tx = self.conn.unchecked_transaction()?;
        tx.execute(
            "DELETE FROM lines WHERE job IN (SELECT seq FROM jobs WHERE state = 'uploading')",
            [],
        )?;
        let removed = tx.execute("DELETE FROM jobs WHERE state = 'uploading'", [])?;
        tx.commit()?;
        Ok(removed)
    }

    fn prepare(conn: Connection) -> Result<Self, StoreError> {
        stable_plans(&conn)?;
        // Pages of 16 KiB (for a new file; an existing one keeps its own): a result's record
        // is about 400 bytes, and a batch of them fills fewer, larger pages, with fewer splits
        // (`benches/store.rs`: 13.8 against 15.6 ms a batch of 2,000, medians, at 600,000
        // results).
        conn.execute_batch("PRAGMA page_size = 16384")?;
        // WAL lets readers read while the writer writes; FULL syncs the WAL at every commit,
        // so that what was acknowledged survives a power cut too.
        let _mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0))?;
        // Results are saved with NORMAL: in WAL mode a commit then survives the process's
        // crash and `kill -9`, and is synced at the next checkpoint; what a caller acknowledges
        // (a job's commit, a cancel) is synced at once (`Store::durably`). A larger WAL
        // between checkpoints (2,000 pages: 32 MiB) copies pages back less often under a
        // stream of results.
        conn.execute_batch(
            "PRAGMA synchronous = NORMAL; PRAGMA busy_timeout = 5000; \
             PRAGMA wal_autocheckpoint = 2000;",
        )?;
        let version: i64 = conn.query_row("PRAGMA user_version", [], |row| row.get(0))?;
        match version {
            0 => {
                conn.execute_batch(&format!(
                    "BEGIN; {SCHEMA} PRAGMA user_version = {SCHEMA_VERSION}; COMMIT;"
                ))?;
            }
            SCHEMA_VERSION => {}
            other => return Err(schema_error(other)),
        }
        Ok(Self::new(conn))
    }

    fn new(conn: Connection) -> Self {
        Self {
            conn,
            pending: Vec::new(),
            lessons: HashMap::new(),
        }
    }

    /// Starts a job for `owner`: add its lines with [`upload`](Self::upload), then
    /// [`commit_job`](Self::commit_job) it, or [`abandon_job`](Self::abandon_job). Until the
    /// commit nobody sees it.
    pub fn begin_job(&mut self, owner: &str, now: SystemTime) -> Result<Upload, StoreError> {
        let id = JobId::random()?;
        self.conn.execute(
            "INSERT INTO jobs (id, owner, state, created_ms, lines) \
             VALUES (?1, ?2, 'uploading', ?3, 0)",
            params![id.as_str(), owner, millis(now)],
        )?;
        Ok(Upload {
            id,
            seq: self.conn.last_insert_rowid(),
            lines: 0,
            last_line: 0,
            webhook: None,
        })
    }

    /// Adds a batch of lines to `upload`, in one transaction: each with its line number (from
    /// 1, increasing: numbers may be skipped, as blank lines and comments are) and its text as
    /// the client sent it. A number not above the last one is refused and nothing of the batch
    /// is added.
    pub fn upload(&mut self, upload: &mut Upload, lines: &[(u64, &str)]) -> Result<(), StoreError> {
        let tx = self.conn.transaction()?;
        let mut last = upload.last_line;
        {
            let mut insert =
                tx.prepare_cached("INSERT INTO lines (job, line, address) VALUES (?1, ?2, ?3)")?;
            for &(line, text) in lines {
                if line <= last {
                    return Err(StoreError::LineOrder { line, after: last });
                }
                last = line;
                insert.execute(params![upload.seq, signed(line), text])?;
            }
        }
        tx.commit()?;
        upload.last_line = last;
        upload.lines += lines.len() as u64;
        Ok(())
    }

    /// Makes the job of `upload` and all its lines visible to its owner and to the work: from
    /// here on it is acknowledged. A job of no lines is finished at once. Returns its name.
    pub fn commit_job(&mut self, upload: Upload) -> Result<JobId, StoreError> {
        self.durably(|conn| {
            conn.execute(
                "UPDATE jobs SET lines = ?2, \
             state = CASE WHEN ?2 = 0 THEN 'finished' ELSE 'running' END, \
             finished_ms = CASE WHEN ?2 = 0 THEN created_ms ELSE NULL END, \
             webhook = ?3, webhook_state = CASE WHEN ?3 IS NULL THEN NULL ELSE 'pending' END \
             WHERE seq = ?1 AND state = 'uploading'",
                params![upload.seq, signed(upload.lines), upload.webhook],
            )
        })?;
        Ok(upload.id)
    }

    /// Runs `change` synced to disk before it returns (`synchronous = FULL`), for what a caller
    /// acknowledges: with the WAL synced up to it, everything committed before is on disk too.
    fn durably<T>(
        &mut self,
        change: impl FnOnce(&Connection) -> rusqlite::Result<T>,
    ) -> Result<T, StoreError> {
        self.conn.execute_batch("PRAGMA synchronous = FULL")?;
        let outcome = change(&self.conn);
        self.conn.execute_batch("PRAGMA synchronous = NORMAL")?;
        Ok(outcome?)
    }

    /// Removes the job of `upload` and its lines: the upload failed.
    pub fn abandon_job(&mut self, upload: Upload) -> Result<(), StoreError> {
        let tx = self.conn.transaction()?;
        tx.execute("DELETE FROM lines WHERE job = ?1", params![upload.seq])?;
        tx.execute(
            "DELETE FROM jobs WHERE seq = ?1 AND state = 'uploading'",
            params![upload.seq],
        )?;
        tx.commit()?;
        Ok(())
    }

    /// The job `id` if `owner` made it.
    pub fn job(&self, owner: &str, id: &JobId) -> Result<Option<JobSummary>, StoreError> {
        let row = self
            .conn
            .prepare_cached(
                "SELECT state, created_ms, finished_ms, lines, answered, seq FROM jobs \
                 WHERE id = ?1 AND owner = ?2 AND state != 'uploading'",
            )?
            .query_row(params![id.as_str(), owner], |row| {
                Ok((
                    row.get::<_, String>(0)?,
                    row.get::<_, i64>(1)?,
                    row.get::<_, Option<i64>>(2)?,
                    row.get::<_, i64>(3)?,
                    row.get::<_, i64>(4)?,
                    row.get::<_, i64>(5)?,
                ))
            })
            .optional()?;
        let Some((state, created, finished, lines, answered, seq)) = row else {
            return Ok(None);
        };
        // Counted as results are saved: reading them costs the same at any job size.
        let mut counts = self
            .conn
            .prepare_cached("SELECT reason, count FROM counts WHERE job = ?1")?;
        let mut by_reason: Vec<(Reason, u64)> = Vec::new();
        for row in counts.query_map(params![seq], |row| {
            Ok((row.get::<_, String>(0)?, row.get::<_, i64>(1)?))
        })? {
            let (reason, count) = row?;
            by_reason.push((parse_reason(&reason)?, count_of(count)));
        }
        by_reason.sort_by_key(|(reason, _)| Reason::ALL.iter().position(|r| r == reason));
        Ok(Some(JobSummary {
            id: id.clone(),
            state: JobState::parse(&state)?,
            created: time(created),
            finished: finished.map(time),
            lines: count_of(lines),
            answered: count_of(answered),
            reasons: by_reason,
        }))
    }

    /// The jobs `owner` made, oldest first.
    pub fn jobs(&self, owner: &str) -> Result<Vec<JobSummary>, StoreError> {
        self.jobs_after(owner, None, usize::MAX)
    }

    /// Up to `limit` of the jobs `owner` made, oldest first, starting after job `after` (a
    /// page: pass the last job of one page to get the next). A job `after` that is not the
    /// owner's starts from the first.
    pub fn jobs_after(
        &self,
        owner: &str,
        after: Option<&JobId>,
        limit: usize,
    ) -> Result<Vec<JobSummary>, StoreError> {
        let mut ids = self.conn.prepare_cached(
            "SELECT id FROM jobs WHERE owner = ?1 AND state != 'uploading' \
             AND (created_ms, id) > (SELECT coalesce(max(created_ms), -1), coalesce(max(id), '') \
                 FROM jobs WHERE id = ?2 AND owner = ?1) \
             ORDER BY created_ms, id LIMIT ?3",
        )?;
        let ids: Vec<String> = ids
            .query_map(
                params![owner, after.map(JobId::as_str), signed(limit as u64)],
                |row| row.get(0),
            )?
            .collect::<Result<_, _>>()?;
        let mut jobs = Vec::with_capacity(ids.len());
        for id in ids {
            if let Some(job) = self.job(owner, &JobId(id))? {
                jobs.push(job);
            }
        }
        Ok(jobs)
    }

    /// How many of `owner`'s jobs are running.
    pub fn running_count(&self, owner: &str) -> Result<u64, StoreError> {
        let count: i64 = self
            .conn
            .prepare_cached("SELECT count(*) FROM jobs WHERE owner = ?1 AND state = 'running'")?
            .query_row(params![owner], |row| row.get(0))?;
        Ok(count_of(count))
    }

    /// Jobs still running, of every owner, oldest first: what a restarted service resumes.
    pub fn running_jobs(&self) -> Result<Vec<JobId>, StoreError> {
        let mut ids = self.conn.prepare_cached(
            "SELECT id FROM jobs WHERE state = 'running' ORDER BY created_ms, id",
        )?;
        let ids = ids
            .query_map([], |row| row.get::<_, String>(0).map(JobId))?
            .collect::<Result<_, _>>()?;
        Ok(ids)
    }

    /// Up to `limit` lines of job `id` after line `after` that have no result yet, in order,
    /// with their text.
    pub fn unanswered(
        &self,
        id: &JobId,
        after: u64,
        limit: usize,
    ) -> Result<Vec<(u64, String)>, StoreError> {
        let mut lines = self.conn.prepare_cached(
            "SELECT l.line, l.address FROM lines l \
             WHERE l.job = (SELECT seq FROM jobs WHERE id = ?1) AND l.line > ?2 \
             AND NOT EXISTS (SELECT 1 FROM results r WHERE r.job = l.job AND r.line = l.line) \
             ORDER BY l.line LIMIT ?3",
        )?;
        let rows = lines
            .query_map(
                params![id.as_str(), signed(after), signed(limit as u64)],
                |row| Ok((row.get::<_, i64>(0)?, row.get::<_, String>(1)?)),
            )?
            .map(|row| row.map(|(line, text)| (count_of(line), text)))
            .collect::<Result<_, _>>()?;
        Ok(rows)
    }

    /// Stores results of job `id`, each under its line (its `tag`), in one transaction, and
    /// caches each verdict for its reason's TTL. A line that already has its result keeps the
    /// first: a redelivered result changes nothing. The job is finished once every line is
    /// answered. Returns how many results were new.
    ///
    /// The cache entries are held back and written [`CACHE_BATCH`] at a time, sorted by mailbox,
    /// and all of them when a job finishes ([`flush_cache`](Self::flush_cache): call it too when
    /// the results stop coming). The cache is keyed by mailbox, and a list's mailboxes come in
    /// no order: written with their results, each entry of a batch lands on a page of its own,
    /// and a batch of 2,000 rewrote as many pages of a cache of a few hundred thousand entries
    /// (`benches/store.rs`). Sorted and many at a time, they share pages. Entries not yet
    /// written when the process dies are lost; their results are not, and those mailboxes are
    /// probed again the next time.
    pub fn save_results(
        &mut self,
        id: &JobId,
        results: &[VerifyResult],
        now: SystemTime,
    ) -> Result<usize, StoreError> {
        let records = results
            .iter()
            .map(|result| Ok((result.tag, result.reason, json(result)?)))
            .collect::<Result<Vec<_>, StoreError>>()?;
        let tx = self.conn.transaction()?;
        let Some(seq) = seq_of(&tx, id)? else {
            return Ok(0);
        };
        let (added, finished) = insert_results(&tx, seq, &records, now)?;
        // Held back entries beyond two batches mean their writes keep failing: let them go.
        if self.pending.len() >= 2 * CACHE_BATCH {
            self.pending.clear();
            self.lessons.clear();
        }
        for result in results {
            let (Some(mailbox), Some(ttl)) = (result.mailbox.as_ref(), ttl(result.reason)) else {
                continue;
            };
            self.pending.push(Entry {
                mailbox: mailbox.clone(),
                reason: result.reason,
                expires_ms: millis(now + ttl),
                job: seq,
                line: result.tag,
            });
        }
        take_lessons(&mut self.lessons, results, millis(now));
        // A job seen finished has all its verdicts in the cache.
        let flush = finished || self.pending.len() >= CACHE_BATCH;
        if flush {
            write_entries(&tx, &mut self.pending)?;
            learn(&tx, &self.lessons, millis(now))?;
        }
        tx.commit()?;
        if flush {
            self.pending.clear();
            self.lessons.clear();
        }
        Ok(added)
    }

    /// Stores results of job `id` that are records already (a cached verdict given to a line):
    /// each its line, reason and record JSON, in one transaction, as
    /// [`save_results`](Self::save_results) does, without caching them again. Returns how
    /// many were new.
    pub fn save_records(
        &mut self,
        id: &JobId,
        records: &[(u64, Reason, String)],
        now: SystemTime,
    ) -> Result<usize, StoreError> {
        let tx = self.conn.transaction()?;
        let Some(seq) = seq_of(&tx, id)? else {
            return Ok(0);
        };
        let (added, finished) = insert_results(&tx, seq, records, now)?;
        if finished {
            write_entries(&tx, &mut self.pending)?;
            learn(&tx, &self.lessons, millis(now))?;
        }
        tx.commit()?;
        if finished {
            self.pending.clear();
            self.lessons.clear();
        }
        Ok(added)
    }

    /// Up to `limit` results of job `id` after line `after`, in line order, as the records'
    /// JSON. `None` if `owner` did not make the job.
    pub fn results(
        &self,
        owner: &str,
        id: &JobId,
        after: u64,
        limit: usize,
    ) -> Result<Option<Vec<(u64, String)>>, StoreError> {
        let Some(seq) = self.owned(owner, id)? else {
            return Ok(None);
        };
        let mut rows = self.conn.prepare_cached(
            "SELECT line, record FROM results WHERE job = ?1 AND line > ?2 ORDER BY line LIMIT ?3",
        )?;
        let rows = rows
            .query_map(params![seq, signed(after), signed(limit as u64)], |row| {
                Ok((row.get::<_, i64>(0)?, row.get::<_, String>(1)?))
            })?
            .map(|row| row.map(|(line, record)| (count_of(line), record)))
            .collect::<Result<_, _>>()?;
        Ok(Some(rows))
    }

    /// Cancels job `id` if `owner` made it and it is running; its results so far stay.
    /// Returns whether it was cancelled now.
    pub fn cancel(&mut self, owner: &str, id: &JobId, now: SystemTime) -> Result<bool, StoreError> {
        let changed = self.durably(|conn| {
            conn.execute(
                "UPDATE jobs SET state = 'cancelled', finished_ms = ?3 \
                 WHERE id = ?1 AND owner = ?2 AND state = 'running'",
                params![id.as_str(), owner, millis(now)],
            )
        })?;
        Ok(changed > 0)
    }

    /// The cached verdict of `mailbox` (normalised), as the record's JSON, if one is still
    /// fresh at `now`. An entry that names a job's result that is not there (written for a save
    /// that then failed) is no entry.
    pub fn cached(&self, mailbox: &str, now: SystemTime) -> Result<Option<String>, StoreError> {
        let record = self
            .conn
            .prepare_cached(
                "SELECT coalesce(c.record, r.record) AS found FROM cache c \
                 LEFT JOIN results r ON r.job = c.job AND r.line = c.line \
                 WHERE c.mailbox = ?1 AND c.expires_ms > ?2 AND found IS NOT NULL",
            )?
            .query_row(params![mailbox, millis(now)], |row| row.get(0))
            .optional()?;
        Ok(record)
    }

    /// The cached verdicts of `mailboxes` (normalised), each as [`cached`](Self::cached)
    /// gives it, read in one transaction: one snapshot, and one lock of the file for them all
    /// rather than one each.
    pub fn cached_all<'m>(
        &self,
        mailboxes: impl IntoIterator<Item = &'m str>,
        now: SystemTime,
    ) -> Result<Vec<Option<String>>, StoreError> {
        let tx = self.conn.unchecked_transaction()?;
        let found = mailboxes
            .into_iter()
            .map(|mailbox| self.cached(mailbox, now))
            .collect::<Result<_, _>>()?;
        tx.finish()?;
        Ok(found)
    }

    /// Writes the cache entries of saved job results held back by
    /// [`save_results`](Self::save_results), in one transaction, in mailbox order; returns
    /// how many. Of two entries of one mailbox the later is kept. On an error they are dropped
    /// all the same (their mailboxes are probed again the next time): memory stays bounded
    /// when the store cannot be written.
    pub fn flush_cache(&mut self, now: SystemTime) -> Result<usize, StoreError> {
        if self.pending.is_empty() && self.lessons.is_empty() {
            return Ok(0);
        }
        let written = self.pending.len();
        let outcome = self
            .conn
            .transaction()
            .map_err(StoreError::from)
            .and_then(|tx| {
                write_entries(&tx, &mut self.pending)?;
                learn(&tx, &self.lessons, millis(now))?;
                Ok(tx.commit()?)
            });
        // Written or not, they are let go: a store that cannot write them now would otherwise
        // hold more with every save.
        self.pending.clear();
        self.lessons.clear();
        outcome.map(|()| written)
    }

    /// Cache entries of saved job results, and domains they taught something, not yet written
    /// ([`flush_cache`](Self::flush_cache)).
    #[must_use]
    pub fn cache_pending(&self) -> usize {
        self.pending.len() + self.lessons.len()
    }

    /// What the store knows of `domain` (lower-case, A-labels), if anything.
    pub fn domain(&self, domain: &str) -> Result<Option<DomainFacts>, StoreError> {
        let row = self
            .conn
            .prepare_cached(
                "SELECT catch_all, catch_all_ms, greylisted_ms, provider FROM domains \
                 WHERE domain = ?1",
            )?
            .query_row(params![domain], |row| {
                Ok((
                    row.get::<_, Option<bool>>(0)?,
                    row.get::<_, Option<i64>>(1)?,
                    row.get::<_, Option<i64>>(2)?,
                    row.get::<_, Option<String>>(3)?,
                ))
            })
            .optional()?;
        Ok(
            row.map(|(catch_all, checked, greylisted, provider)| DomainFacts {
                domain: domain.to_owned(),
                catch_all: catch_all.zip(checked.map(time)),
                greylisted: greylisted.map(time),
                provider,
            }),
        )
    }

    /// The catch-all answers had within [`CATCH_ALL_TTL`] of `now`, by domain: what an engine
    /// need not ask again ([`ConfigBuilder::known_catch_all`](crate::ConfigBuilder::known_catch_all)).
    pub fn known_catch_all(&self, now: SystemTime) -> Result<Vec<(String, bool)>, StoreError> {
        let since = millis(now.checked_sub(CATCH_ALL_TTL).unwrap_or(UNIX_EPOCH));
        let mut known = self.conn.prepare_cached(
            "SELECT domain, catch_all FROM domains \
             WHERE catch_all IS NOT NULL AND catch_all_ms > ?1",
        )?;
        let rows = known
            .query_map(params![since], |row| Ok((row.get(0)?, row.get(1)?)))?
            .collect::<Result<_, _>>()?;
        Ok(rows)
    }

    /// Caches `result` for its reason's TTL (results of reasons without one are not kept).
    /// What it says of its domain is kept too ([`domain`](Self::domain)).
    pub fn cache(&mut self, result: &VerifyResult, now: SystemTime) -> Result<(), StoreError> {
        self.cache_all(std::slice::from_ref(result), now)
    }

    /// Caches each of `results` for its reason's TTL, in one transaction, in mailbox order
    /// (see [`save_results`](Self::save_results) for why).
    pub fn cache_all(
        &mut self,
        results: &[VerifyResult],
        now: SystemTime,
    ) -> Result<(), StoreError> {
        let mut sorted: Vec<&VerifyResult> = results.iter().collect();
        sorted.sort_by(|a, b| a.mailbox.cmp(&b.mailbox));
        let mut lessons = HashMap::new();
        take_lessons(&mut lessons, results, millis(now));
        let tx = self.conn.transaction()?;
        for result in sorted {
            cache_in(&tx, result, Cached::Record(&json(result)?), now)?;
        }
        learn(&tx, &lessons, millis(now))?;
        tx.commit()?;
        Ok(())
    }

    /// Jobs that have ended (finished or cancelled) and whose webhook is still to be called:
    /// each job's name, owner and URL, oldest first.
    pub fn webhooks_due(&self) -> Result<Vec<(JobId, String, String)>, StoreError> {
        let mut due = self.conn.prepare_cached(
            "SELECT id, owner, webhook FROM jobs \
             WHERE webhook_state = 'pending' AND state IN ('finished', 'cancelled') \
             ORDER BY finished_ms, id",
        )?;
        let rows = due
            .query_map([], |row| Ok((JobId(row.get(0)?), row.get(1)?, row.get(2)?)))?
            .collect::<Result<_, _>>()?;
        Ok(rows)
    }

    /// Records that job `id`'s webhook was called (`delivered`), or given up on: either way it
    /// is not called again.
    pub fn webhook_called(&mut self, id: &JobId, delivered: bool) -> Result<(), StoreError> {
        self.conn.execute(
            "UPDATE jobs SET webhook_state = ?2 WHERE id = ?1 AND webhook_state = 'pending'",
            params![id.as_str(), if delivered { "delivered" } else { "failed" }],
        )?;
        Ok(())
    }

    /// Drops cached verdicts whose time has passed; returns how many.
    pub fn expire(&mut self, now: SystemTime) -> Result<usize, StoreError> {
        Ok(self.conn.execute(
            "DELETE FROM cache WHERE expires_ms <= ?1",
            params![millis(now)],
        )?)
    }

    /// Job `id`'s number, if `owner` made it.
    fn owned(&self, owner: &str, id: &JobId) -> Result<Option<i64>, StoreError> {
        Ok(self
            .conn
            .prepare_cached(
                "SELECT seq FROM jobs WHERE id = ?1 AND owner = ?2 AND state != 'uploading'",
            )?
            .query_row(params![id.as_str(), owner], |row| row.get(0))
            .optional()?)
    }
}

/// A job being uploaded ([`Store::begin_job`]): what has gone in so far.
#[derive(Debug)]
pub struct Upload {
    id: JobId,
    seq: i64,
    lines: u64,
    last_line: u64,
    webhook: Option<String>,
}

impl Upload {
    /// The job's name, once committed.
    #[must_use]
    pub fn id(&self) -> &JobId {
        &self.id
    }

    /// Lines added so far.
    #[must_use]
    pub fn lines(&self) -> u64 {
        self.lines
    }

    /// A URL to call once the job has ended ([`Store::webhooks_due`]), stored at the commit.
    pub fn set_webhook(&mut self, url: impl Into<String>) {
        self.webhook = Some(url.into());
    }
}

/// Adds what each of `results`, had at `at_ms`, says of its domain to `lessons`.
fn take_lessons(lessons: &mut HashMap<String, Lesson>, results: &[VerifyResult], at_ms: i64) {
    for result in results {
        let Some(domain) = result.domain.as_deref() else {
            continue;
        };
        let mut lesson = lessons.get(domain).copied().unwrap_or_default();
        if lesson.take(result, at_ms) {
            lessons.insert(domain.to_owned(), lesson);
        }
    }
}

/// Writes what results taught about their domains, in the caller's transaction; a domain keeps
/// the facts a lesson does not mention.
///
/// A catch-all answer keeps the time it was first had while it is trusted
/// ([`CATCH_ALL_TTL`]): an engine given the answer ([`Store::known_catch_all`]) puts it in its
/// results without asking again, and those must not make it look fresh. A different answer, or
/// one had after the old one's time, is taken with its own time.
fn learn(
    conn: &Connection,
    lessons: &HashMap<String, Lesson>,
    now_ms: i64,
) -> Result<(), StoreError> {
    let trusted_since =
        now_ms.saturating_sub(i64::try_from(CATCH_ALL_TTL.as_millis()).unwrap_or(i64::MAX));
    let mut sorted: Vec<(&String, &Lesson)> = lessons.iter().collect();
    sorted.sort_by_key(|(domain, _)| *domain);
    let mut upsert = conn.prepare_cached(
        "INSERT INTO domains (domain, catch_all, catch_all_ms, greylisted_ms, provider) \
         VALUES (?1, ?2, ?3, ?4, ?6) \
         ON CONFLICT (domain) DO UPDATE SET \
         catch_all_ms = CASE \
             WHEN ?2 IS NULL OR (catch_all IS ?2 AND catch_all_ms > ?5) THEN catch_all_ms \
             ELSE ?3 END, \
         catch_all = coalesce(?2, catch_all), \
         greylisted_ms = coalesce(?4, greylisted_ms), \
         provider = coalesce(?6, provider)",
    )?;
    for (domain, lesson) in sorted {
        upsert.execute(params![
            domain,
            lesson.catch_all.map(|(accepts_any, _)| accepts_any),
            lesson.catch_all.map(|(_, at)| at),
            lesson.greylisted_ms,
            trusted_since,
            lesson.provider
        ])?;
    }
    Ok(())
}

/// Writes held-back cache entries in mailbox order, in the caller's transaction; the caller
/// clears them once it has committed.
fn write_entries(conn: &Connection, pending: &mut [Entry]) -> Result<(), StoreError> {
    // Stable: entries of one mailbox stay in the order they came, and the last one wins.
    pending.sort_by(|a, b| a.mailbox.cmp(&b.mailbox));
    for entry in pending.iter() {
        upsert_cache(
            conn,
            &entry.mailbox,
            entry.reason,
            entry.expires_ms,
            Cached::Result(entry.job, entry.line),
        )?;
    }
    Ok(())
}

/// Inserts results of job number `seq` (line, reason, record), ignoring lines that have
/// theirs, and counts the new ones; returns how many were new, and whether they finished the
/// job.
fn insert_results(
    conn: &Connection,
    seq: i64,
    records: &[(u64, Reason, String)],
    now: SystemTime,
) -> Result<(usize, bool), StoreError> {
    let mut added = 0;
    let mut by_reason = [0u64; Reason::ALL.len()];
    let mut insert = conn.prepare_cached(
        "INSERT OR IGNORE INTO results (job, line, reason, record) VALUES (?1, ?2, ?3, ?4)",
    )?;
    for (line, reason, record) in records {
        let new = insert.execute(params![seq, signed(*line), reason.as_str(), record])?;
        added += new;
        by_reason[reason_index(*reason)] += new as u64;
    }
    count_reasons(conn, seq, &by_reason)?;
    let finished = count_answered(conn, seq, added, now)?;
    Ok((added, finished))
}

/// Adds the new results of each reason (in the order of [`Reason::ALL`]) to job `id`'s counts.
fn count_reasons(conn: &Connection, seq: i64, by_reason: &[u64]) -> Result<(), StoreError> {
    let mut add = conn.prepare_cached(
        "INSERT INTO counts (job, reason, count) VALUES (?1, ?2, ?3) \
         ON CONFLICT (job, reason) DO UPDATE SET count = count + ?3",
    )?;
    for (reason, count) in Reason::ALL.iter().zip(by_reason) {
        if *count > 0 {
            add.execute(params![seq, reason.as_str(), signed(*count)])?;
        }
    }
    Ok(())
}

/// Where `reason` is in [`Reason::ALL`].
fn reason_index(reason: Reason) -> usize {
    Reason::ALL
        .iter()
        .position(|r| *r == reason)
        .unwrap_or_default()
}

/// Adds `added` new results to job number `seq`'s count, and finishes it if that was its last
/// line; returns whether it did.
fn count_answered(
    conn: &Connection,
    seq: i64,
    added: usize,
    now: SystemTime,
) -> Result<bool, StoreError> {
    conn.prepare_cached("UPDATE jobs SET answered = answered + ?2 WHERE seq = ?1")?
        .execute(params![seq, signed(added as u64)])?;
    let finished = conn
        .prepare_cached(
            "UPDATE jobs SET state = 'finished', finished_ms = ?2 \
         WHERE seq = ?1 AND state = 'running' AND answered >= lines",
        )?
        .execute(params![seq, millis(now)])?;
    Ok(finished > 0)
}

/// What a cache entry holds: the record, or the job result that is it.
enum Cached<'a> {
    Record(&'a str),
    /// A job's number and line.
    Result(i64, u64),
}

/// Caches `result` for its reason's TTL (results of reasons without one are not kept).
fn cache_in(
    conn: &Connection,
    result: &VerifyResult,
    cached: Cached<'_>,
    now: SystemTime,
) -> Result<(), StoreError> {
    let (Some(mailbox), Some(ttl)) = (result.mailbox.as_deref(), ttl(result.reason)) else {
        return Ok(());
    };
    upsert_cache(conn, mailbox, result.reason, millis(now + ttl), cached)
}

/// Makes `cached` the cache entry of `mailbox` until `expires_ms`: its record, or a reference
/// to the job's result that holds it (results are never deleted while their entry can be
/// fresh).
fn upsert_cache(
    conn: &Connection,
    mailbox: &str,
    reason: Reason,
    expires_ms: i64,
    cached: Cached<'_>,
) -> Result<(), StoreError> {
    let (record, job, line) = match cached {
        Cached::Record(record) => (Some(record), None, None),
        Cached::Result(job, line) => (None, Some(job), Some(signed(line))),
    };
    conn.prepare_cached(
        "INSERT INTO cache (mailbox, reason, expires_ms, record, job, line) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6) \
         ON CONFLICT (mailbox) DO UPDATE SET reason = ?2, expires_ms = ?3, record = ?4, \
         job = ?5, line = ?6",
    )?
    .execute(params![
        mailbox,
        reason.as_str(),
        expires_ms,
        record,
        job,
        line
    ])?;
    Ok(())
}

/// Keeps each prepared statement's plan for good (SQLite's query planner stability guarantee).
///
/// Without it, the bundled SQLite (built with `SQLITE_ENABLE_STAT4`) marks a statement whose
/// plan could depend on a bound value (a job's name before a range of lines, a `LIMIT ?`) to be
/// compiled again at every new binding: the feeder's cache lookup and its read of unanswered
/// lines were parsed and planned afresh on every call, four to five times their cost
/// (`benches/store.rs`). The store runs no `ANALYZE`, so there are no statistics a binding
/// could make use of.
fn stable_plans(conn: &Connection) -> Result<(), StoreError> {
    conn.set_db_config(
        rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG,
        true,
    )?;
    Ok(())
}

fn json(result: &VerifyResult) -> Result<String, StoreError> {
    serde_json::to_string(&result.record())
        .map_err(|e| StoreError::Corrupt(format!("a record that does not serialize ({e})")))
}

/// Job `id`'s number in this file, if it is there.
fn seq_of(conn: &Connection, id: &JobId) -> Result<Option<i64>, StoreError> {
    Ok(conn
        .prepare_cached("SELECT seq FROM jobs WHERE id = ?1")?
        .query_row(params![id.as_str()], |row| row.get(0))
        .optional()?)
}

fn parse_reason(text: &str) -> Result<Reason, StoreError> {
    Reason::ALL
        .into_iter()
        .find(|reason| reason.as_str() == text)
        .ok_or_else(|| StoreError::Corrupt(format!("a result of reason {text:?}")))
}

/// The error for a file of schema `version`, neither new nor this code's.
fn schema_error(version: i64) -> StoreError {
    if version > SCHEMA_VERSION {
        StoreError::NewerSchema(version)
    } else {
        StoreError::OlderSchema(version)
    }
}

/// Milliseconds since the Unix epoch, as SQLite's integers hold them.
fn millis(at: SystemTime) -> i64 {
    at.duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

fn time(millis: i64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(u64::try_from(millis).unwrap_or(0))
}

/// A line number or count as SQLite stores it (they never reach 2⁶³).
fn signed(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn count_of(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}
