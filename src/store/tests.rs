use std::time::{Duration, SystemTime};

use super::*;
use crate::address::Address;

fn at(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_800_000_000 + secs)
}

fn result(line: u64, mailbox: &str, reason: Reason) -> VerifyResult {
    let parsed = Address::parse(mailbox).ok();
    VerifyResult {
        attempts: 1,
        ..VerifyResult::decided(line, mailbox, parsed.as_ref(), reason, None)
    }
}

fn job_of(store: &mut Store, owner: &str, lines: &[&str]) -> JobId {
    let mut upload = store.begin_job(owner, at(0)).unwrap();
    let numbered: Vec<(u64, &str)> = (1..).zip(lines.iter().copied()).collect();
    // In two batches, as a streamed upload comes.
    let (first, rest) = numbered.split_at(numbered.len() / 2);
    store.upload(&mut upload, first).unwrap();
    store.upload(&mut upload, rest).unwrap();
    store.commit_job(upload).unwrap()
}

#[test]
fn a_committed_job_is_there_with_its_lines_in_order() {
    let mut store = Store::open_in_memory().unwrap();
    let id = job_of(
        &mut store,
        "token-a",
        &["a@x.test", "b@x.test", "not an address"],
    );
    let job = store.job("token-a", &id).unwrap().unwrap();
    assert_eq!(
        (job.state, job.lines, job.answered),
        (JobState::Running, 3, 0)
    );
    assert_eq!(job.created, at(0));
    let lines = store.unanswered(&id, 0, 10).unwrap();
    assert_eq!(
        lines,
        [
            (1, "a@x.test".to_owned()),
            (2, "b@x.test".to_owned()),
            (3, "not an address".to_owned())
        ]
    );
    assert_eq!(
        store.unanswered(&id, 1, 1).unwrap(),
        [(2, "b@x.test".to_owned())]
    );
    assert_eq!(store.running_jobs().unwrap(), [id]);
}

#[test]
fn an_upload_is_invisible_until_committed_and_abandoned_leaves_nothing() {
    let mut store = Store::open_in_memory().unwrap();
    let mut upload = store.begin_job("token-a", at(0)).unwrap();
    store
        .upload(&mut upload, &[(1, "a@x.test"), (3, "b@x.test")])
        .unwrap();
    assert_eq!(upload.lines(), 2);
    let id = upload.id().clone();
    assert!(store.jobs("token-a").unwrap().is_empty());
    assert_eq!(store.job("token-a", &id).unwrap(), None);
    assert_eq!(store.results("token-a", &id, 0, 10).unwrap(), None);
    assert!(store.running_jobs().unwrap().is_empty());
    // Line numbers only go up; a batch that breaks that adds nothing.
    let error = store
        .upload(&mut upload, &[(4, "c@x.test"), (2, "d@x.test")])
        .unwrap_err();
    assert!(
        matches!(error, StoreError::LineOrder { line: 2, after: 4 }),
        "{error}"
    );
    assert_eq!(upload.lines(), 2);
    // The client went away, or a line was malformed: abandoned.
    store.abandon_job(upload).unwrap();
    assert!(store.jobs("token-a").unwrap().is_empty());
    let left: i64 = store
        .conn
        .query_row("SELECT count(*) FROM lines", [], |row| row.get(0))
        .unwrap();
    assert_eq!(left, 0);
}

#[test]
fn lines_keep_the_numbers_they_were_given() {
    let mut store = Store::open_in_memory().unwrap();
    let mut upload = store.begin_job("t", at(0)).unwrap();
    store
        .upload(&mut upload, &[(2, "a@x.test"), (5, "b@x.test")])
        .unwrap();
    let id = store.commit_job(upload).unwrap();
    assert_eq!(store.job("t", &id).unwrap().unwrap().lines, 2);
    assert_eq!(
        store.unanswered(&id, 0, 10).unwrap(),
        [(2, "a@x.test".to_owned()), (5, "b@x.test".to_owned())]
    );
    let cached = (5, Reason::Accepted, r#"{"address":"b@x.test"}"#.to_owned());
    assert_eq!(
        store
            .save_records(&id, std::slice::from_ref(&cached), at(1))
            .unwrap(),
        1
    );
    assert_eq!(store.save_records(&id, &[cached], at(1)).unwrap(), 0);
    store
        .save_results(
            &id,
            &[result(2, "a@x.test", Reason::MailboxNotFound)],
            at(2),
        )
        .unwrap();
    let job = store.job("t", &id).unwrap().unwrap();
    assert_eq!((job.state, job.answered), (JobState::Finished, 2));
    let results = store.results("t", &id, 0, 10).unwrap().unwrap();
    assert_eq!(
        results.iter().map(|(line, _)| *line).collect::<Vec<_>>(),
        [2, 5]
    );
}

#[test]
fn jobs_come_in_pages_oldest_first() {
    let mut store = Store::open_in_memory().unwrap();
    let ids: Vec<JobId> = (0..5)
        .map(|n| job_of(&mut store, "a", &[&format!("x{n}@x.test")]))
        .collect();
    let other = job_of(&mut store, "b", &["y@x.test"]);
    let all: Vec<JobId> = store.jobs("a").unwrap().into_iter().map(|j| j.id).collect();
    assert_eq!(all.len(), 5);
    let first: Vec<JobId> = store
        .jobs_after("a", None, 2)
        .unwrap()
        .into_iter()
        .map(|j| j.id)
        .collect();
    assert_eq!(first, all[..2]);
    let next: Vec<JobId> = store
        .jobs_after("a", Some(&first[1]), 2)
        .unwrap()
        .into_iter()
        .map(|j| j.id)
        .collect();
    assert_eq!(next, all[2..4]);
    let last = store.jobs_after("a", Some(&all[4]), 2).unwrap();
    assert!(last.is_empty());
    // Another owner's job as the cursor tells nothing: the first page.
    let foreign: Vec<JobId> = store
        .jobs_after("a", Some(&other), 2)
        .unwrap()
        .into_iter()
        .map(|j| j.id)
        .collect();
    assert_eq!(foreign, all[..2]);
    assert!(ids.iter().all(|id| all.contains(id)));
}

#[test]
fn running_jobs_are_counted_per_owner() {
    let mut store = Store::open_in_memory().unwrap();
    let first = job_of(&mut store, "a", &["x@x.test"]);
    job_of(&mut store, "a", &["y@x.test"]);
    job_of(&mut store, "b", &["z@x.test"]);
    job_of(&mut store, "a", &[]);
    assert_eq!(
        store.running_count("a").unwrap(),
        2,
        "an empty job is finished at once"
    );
    assert!(store.cancel("a", &first, at(1)).unwrap());
    assert_eq!(store.running_count("a").unwrap(), 1);
    assert_eq!(store.running_count("b").unwrap(), 1);
    assert_eq!(store.running_count("c").unwrap(), 0);
}

#[test]
fn jobs_are_visible_only_to_their_owner() {
    let mut store = Store::open_in_memory().unwrap();
    let id = job_of(&mut store, "token-a", &["a@x.test"]);
    assert!(store.job("token-b", &id).unwrap().is_none());
    assert!(store.results("token-b", &id, 0, 10).unwrap().is_none());
    assert!(!store.cancel("token-b", &id, at(1)).unwrap());
    assert!(store.jobs("token-b").unwrap().is_empty());
    assert_eq!(store.jobs("token-a").unwrap().len(), 1);
    assert_eq!(
        store.job("token-a", &id).unwrap().unwrap().state,
        JobState::Running
    );
}

#[test]
fn every_line_is_answered_exactly_once_and_the_job_finishes() {
    let mut store = Store::open_in_memory().unwrap();
    let id = job_of(&mut store, "t", &["a@x.test", "b@x.test", "c@x.test"]);
    let first = [
        result(2, "b@x.test", Reason::MailboxNotFound),
        result(1, "a@x.test", Reason::Accepted),
    ];
    assert_eq!(store.save_results(&id, &first, at(5)).unwrap(), 2);
    // Redelivered, with another verdict: the first stays.
    let again = [result(1, "a@x.test", Reason::Timeout)];
    assert_eq!(store.save_results(&id, &again, at(6)).unwrap(), 0);
    assert_eq!(
        store.unanswered(&id, 0, 10).unwrap(),
        [(3, "c@x.test".to_owned())]
    );
    let job = store.job("t", &id).unwrap().unwrap();
    assert_eq!((job.state, job.answered), (JobState::Running, 2));
    assert_eq!(
        job.reasons,
        [(Reason::Accepted, 1), (Reason::MailboxNotFound, 1)]
    );
    store
        .save_results(&id, &[result(3, "c@x.test", Reason::Greylisted)], at(7))
        .unwrap();
    let job = store.job("t", &id).unwrap().unwrap();
    assert_eq!((job.state, job.answered), (JobState::Finished, 3));
    assert_eq!(job.finished, Some(at(7)));
    assert!(store.running_jobs().unwrap().is_empty());

    let results = store.results("t", &id, 0, 10).unwrap().unwrap();
    assert_eq!(
        results.iter().map(|(line, _)| *line).collect::<Vec<_>>(),
        [1, 2, 3],
        "in input order"
    );
    let first: serde_json::Value = serde_json::from_str(&results[0].1).unwrap();
    assert_eq!(first["reason"], "accepted");
    assert_eq!(first["line"], 1);
    let after = store.results("t", &id, 2, 10).unwrap().unwrap();
    assert_eq!(after.len(), 1);
}

#[test]
fn a_cancelled_job_keeps_its_results_and_takes_no_more_state() {
    let mut store = Store::open_in_memory().unwrap();
    let id = job_of(&mut store, "t", &["a@x.test", "b@x.test"]);
    store
        .save_results(&id, &[result(1, "a@x.test", Reason::Accepted)], at(1))
        .unwrap();
    assert!(store.cancel("t", &id, at(2)).unwrap());
    assert!(!store.cancel("t", &id, at(3)).unwrap(), "once");
    let job = store.job("t", &id).unwrap().unwrap();
    assert_eq!((job.state, job.answered), (JobState::Cancelled, 1));
    assert!(store.running_jobs().unwrap().is_empty());
}

#[test]
fn an_empty_job_is_finished_at_once() {
    let mut store = Store::open_in_memory().unwrap();
    let id = job_of(&mut store, "t", &[]);
    let job = store.job("t", &id).unwrap().unwrap();
    assert_eq!((job.state, job.lines), (JobState::Finished, 0));
}

#[test]
fn verdicts_are_cached_for_their_reasons_ttl_and_unknowns_not_at_all() {
    let mut store = Store::open_in_memory().unwrap();
    store
        .cache(&result(0, "a@x.test", Reason::Accepted), at(0))
        .unwrap();
    store
        .cache(&result(0, "g@x.test", Reason::Greylisted), at(0))
        .unwrap();
    store
        .cache(&result(0, "n@gone.test", Reason::DomainNotFound), at(0))
        .unwrap();
    let day = 24 * 60 * 60;
    let cached = |store: &Store, mailbox: &str, secs: u64| {
        store.cached(mailbox, at(secs)).unwrap().map(|record| {
            serde_json::from_str::<serde_json::Value>(&record).unwrap()["reason"]
                .as_str()
                .unwrap()
                .to_owned()
        })
    };
    assert_eq!(
        cached(&store, "a@x.test", 6 * day).as_deref(),
        Some("accepted")
    );
    assert_eq!(cached(&store, "a@x.test", 7 * day), None, "7 days");
    assert_eq!(cached(&store, "g@x.test", 1), None, "never an unknown");
    assert_eq!(
        cached(&store, "n@gone.test", day - 1).as_deref(),
        Some("domain_not_found")
    );
    assert_eq!(cached(&store, "n@gone.test", day), None, "1 day");
    // A newer verdict replaces the older one.
    store
        .cache(&result(0, "a@x.test", Reason::MailboxNotFound), at(10))
        .unwrap();
    assert_eq!(
        cached(&store, "a@x.test", 11).as_deref(),
        Some("mailbox_not_found")
    );
    assert_eq!(
        store.expire(at(2 * day)).unwrap(),
        1,
        "the domain's verdict"
    );
}

#[test]
fn results_cached_together_are_each_cached() {
    let mut store = Store::open_in_memory().unwrap();
    let results = [
        result(1, "a@x.test", Reason::Accepted),
        result(2, "b@x.test", Reason::Timeout),
        result(3, "c@x.test", Reason::MailboxNotFound),
    ];
    store.cache_all(&results, at(0)).unwrap();
    assert!(store.cached("a@x.test", at(1)).unwrap().is_some());
    assert!(
        store.cached("b@x.test", at(1)).unwrap().is_none(),
        "unknowns are not kept"
    );
    let record = store.cached("c@x.test", at(1)).unwrap().unwrap();
    let back = VerifyResult::from_record_json(&record).unwrap();
    assert_eq!((back.reason, back.tag), (Reason::MailboxNotFound, 3));
}

#[test]
fn saved_results_fill_the_cache() {
    let mut store = Store::open_in_memory().unwrap();
    let id = job_of(&mut store, "t", &["a@x.test", "b@x.test", "c@x.test"]);
    store
        .save_results(&id, &[result(1, "a@x.test", Reason::Accepted)], at(0))
        .unwrap();
    assert_eq!(store.cache_pending(), 1);
    assert_eq!(store.cached("a@x.test", at(1)).unwrap(), None, "held back");
    assert_eq!(store.flush_cache(at(1)).unwrap(), 1);
    assert_eq!(store.cache_pending(), 0);
    let record = store.cached("a@x.test", at(1)).unwrap().unwrap();
    assert!(record.contains(r#""reason":"accepted""#), "{record}");

    // The job's last results are cached as it finishes.
    store
        .save_results(&id, &[result(2, "b@x.test", Reason::Accepted)], at(0))
        .unwrap();
    assert_eq!(store.cache_pending(), 1);
    store
        .save_records(&id, &[(3, Reason::Accepted, "{}".to_owned())], at(0))
        .unwrap();
    assert_eq!(
        store.job("t", &id).unwrap().unwrap().state,
        JobState::Finished
    );
    assert_eq!(store.cache_pending(), 0);
    assert!(store.cached("b@x.test", at(1)).unwrap().is_some());
}

#[test]
fn held_back_cache_entries_are_written_a_batch_at_a_time_and_the_last_of_a_mailbox_wins() {
    let mut store = Store::open_in_memory().unwrap();
    // One line more than the batch: the job is still running when the batch is written.
    let lines: Vec<String> = (0..=CACHE_BATCH).map(|n| format!("u{n}@x.test")).collect();
    let texts: Vec<&str> = lines.iter().map(String::as_str).collect();
    let id = job_of(&mut store, "t", &texts);
    // The same mailbox twice, first found, then gone.
    store
        .save_results(&id, &[result(1, "u0@x.test", Reason::Accepted)], at(0))
        .unwrap();
    store
        .save_results(
            &id,
            &[result(2, "u0@x.test", Reason::MailboxNotFound)],
            at(0),
        )
        .unwrap();
    let rest: Vec<VerifyResult> = (3..=CACHE_BATCH as u64)
        .map(|line| result(line, &format!("u{}@x.test", line - 1), Reason::Accepted))
        .collect();
    store.save_results(&id, &rest, at(0)).unwrap();
    assert_eq!(
        store.job("t", &id).unwrap().unwrap().state,
        JobState::Running
    );
    assert_eq!(store.cache_pending(), 0, "a full batch is written at once");
    let record = store.cached("u0@x.test", at(1)).unwrap().unwrap();
    assert!(
        record.contains(r#""reason":"mailbox_not_found""#),
        "{record}"
    );
    let last = format!("u{}@x.test", CACHE_BATCH - 1);
    assert!(store.cached(&last, at(1)).unwrap().is_some());
}

#[test]
fn every_reason_has_a_ttl_decision_and_unknowns_are_not_reused() {
    for reason in Reason::ALL {
        let kept = ttl(reason);
        if reason.verdict() == crate::Verdict::Unknown && reason != Reason::Smtputf8Unsupported {
            assert_eq!(kept, None, "{reason}");
        } else {
            assert!(kept.is_some(), "{reason}");
        }
    }
}

#[test]
fn job_names_are_random_hex_and_parse_back() {
    let mut store = Store::open_in_memory().unwrap();
    let a = job_of(&mut store, "t", &[]);
    let b = job_of(&mut store, "t", &[]);
    assert_ne!(a, b);
    assert_eq!(JobId::parse(a.as_str()), Some(a.clone()));
    for bad in [
        "",
        "xyz",
        "../../etc/passwd",
        &a.as_str().to_uppercase(),
        &format!("{a}0"),
    ] {
        assert_eq!(JobId::parse(bad), None, "{bad:?}");
    }
}

/// What was committed is in the file when it is opened again, as after a crash; a store
/// from a newer mxprobe is refused with a message that says what to do.
#[test]
fn a_reopened_file_has_every_committed_job_and_refuses_newer_schemas() {
    let dir = std::env::temp_dir().join(format!("mxprobe-store-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("store.db");
    let id = {
        let mut store = Store::open(&path).unwrap();
        let id = job_of(&mut store, "t", &["a@x.test", "b@x.test"]);
        store
            .save_results(&id, &[result(1, "a@x.test", Reason::Accepted)], at(1))
            .unwrap();
        // An upload in progress when the process dies.
        let mut upload = store.begin_job("t", at(2)).unwrap();
        store.upload(&mut upload, &[(1, "lost@x.test")]).unwrap();
        id
    };
    // A reader beside a writer sees the committed job; the writer's open cleans up.
    let reader = Store::open_reader(&path).unwrap();
    assert_eq!(reader.running_jobs().unwrap(), std::slice::from_ref(&id));
    let store = Store::open(&path).unwrap();
    assert_eq!(reader.jobs("t").unwrap().len(), 1);
    let lines: i64 = reader
        .conn
        .query_row("SELECT count(*) FROM lines", [], |row| row.get(0))
        .unwrap();
    assert_eq!(lines, 2, "the lost upload's line is gone");
    drop(reader);
    assert_eq!(store.running_jobs().unwrap(), std::slice::from_ref(&id));
    assert_eq!(
        store.unanswered(&id, 0, 10).unwrap(),
        [(2, "b@x.test".to_owned())]
    );
    assert_eq!(
        store.jobs("t").unwrap().len(),
        1,
        "the uncommitted upload is not there"
    );
    drop(store);

    let conn = Connection::open(&path).unwrap();
    conn.execute_batch("PRAGMA user_version = 99").unwrap();
    drop(conn);
    let error = Store::open(&path).unwrap_err();
    assert!(matches!(error, StoreError::NewerSchema(99)), "{error}");
    assert!(error.to_string().contains("newer mxprobe"));

    let conn = Connection::open(&path).unwrap();
    conn.execute_batch("PRAGMA user_version = 1").unwrap();
    drop(conn);
    let error = Store::open_reader(&path).unwrap_err();
    assert!(matches!(error, StoreError::OlderSchema(1)), "{error}");
    assert!(error.to_string().contains("start with a new file"));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_webhook_is_due_once_its_job_has_ended_and_until_it_is_called() {
    let mut store = Store::open_in_memory().unwrap();
    let mut upload = store.begin_job("t", at(0)).unwrap();
    store.upload(&mut upload, &[(1, "a@x.test")]).unwrap();
    upload.set_webhook("https://hooks.example/done");
    let hooked = store.commit_job(upload).unwrap();
    let plain = job_of(&mut store, "t", &["b@x.test"]);
    let mut upload = store.begin_job("u", at(0)).unwrap();
    store
        .upload(&mut upload, &[(1, "c@x.test"), (2, "d@x.test")])
        .unwrap();
    upload.set_webhook("http://other.example/");
    let cancelled = store.commit_job(upload).unwrap();
    assert!(
        store.webhooks_due().unwrap().is_empty(),
        "nothing has ended"
    );
    store
        .save_results(&hooked, &[result(1, "a@x.test", Reason::Accepted)], at(1))
        .unwrap();
    store
        .save_results(&plain, &[result(1, "b@x.test", Reason::Accepted)], at(1))
        .unwrap();
    assert!(store.cancel("u", &cancelled, at(2)).unwrap());
    let due = store.webhooks_due().unwrap();
    assert_eq!(
        due,
        [
            (
                hooked.clone(),
                "t".to_owned(),
                "https://hooks.example/done".to_owned()
            ),
            (
                cancelled.clone(),
                "u".to_owned(),
                "http://other.example/".to_owned()
            ),
        ]
    );
    store.webhook_called(&hooked, true).unwrap();
    store.webhook_called(&cancelled, false).unwrap();
    store.webhook_called(&cancelled, true).unwrap();
    assert!(
        store.webhooks_due().unwrap().is_empty(),
        "each is called once"
    );
    let state: String = store
        .conn
        .query_row(
            "SELECT webhook_state FROM jobs WHERE id = ?1",
            [cancelled.as_str()],
            |row| row.get(0),
        )
        .unwrap();
    assert_eq!(state, "failed", "a given-up webhook stays given up");
}

#[test]
fn results_teach_domain_facts_and_a_catch_all_answer_is_trusted_for_a_day() {
    let day = CATCH_ALL_TTL.as_secs();
    let mut store = Store::open_in_memory().unwrap();
    let id = job_of(&mut store, "t", &["a@all.test", "b@grey.test", "c@x.test"]);
    let all = VerifyResult {
        catch_all: Some(true),
        ..result(1, "a@all.test", Reason::AcceptAll)
    };
    store
        .save_results(
            &id,
            &[all, result(2, "b@grey.test", Reason::Greylisted)],
            at(0),
        )
        .unwrap();
    assert_eq!(store.domain("all.test").unwrap(), None, "held back");
    store.flush_cache(at(0)).unwrap();
    assert_eq!(
        store.domain("all.test").unwrap(),
        Some(DomainFacts {
            domain: "all.test".into(),
            catch_all: Some((true, at(0))),
            greylisted: None,
            provider: None,
        })
    );
    assert_eq!(
        store.domain("grey.test").unwrap(),
        Some(DomainFacts {
            domain: "grey.test".into(),
            catch_all: None,
            greylisted: Some(at(0)),
            provider: None,
        })
    );
    assert_eq!(store.domain("x.test").unwrap(), None, "nothing learned");
    // The provider of the MX host that answered, and only a known one.
    let at_google = VerifyResult {
        mx: Some("alt1.aspmx.l.google.com".into()),
        ..result(0, "a@hosted.test", Reason::Accepted)
    };
    store.cache(&at_google, at(0)).unwrap();
    let facts = store.domain("hosted.test").unwrap().unwrap();
    assert_eq!(facts.provider.as_deref(), Some("google"));
    let elsewhere = VerifyResult {
        mx: Some("mx.hosted.test".into()),
        ..result(0, "b@hosted.test", Reason::MailboxNotFound)
    };
    store.cache(&elsewhere, at(1)).unwrap();
    assert_eq!(
        store
            .domain("hosted.test")
            .unwrap()
            .unwrap()
            .provider
            .as_deref(),
        Some("google"),
        "an unknown host teaches nothing"
    );
    assert_eq!(
        store.known_catch_all(at(day - 1)).unwrap(),
        [("all.test".to_owned(), true)]
    );
    assert!(store.known_catch_all(at(day + 1)).unwrap().is_empty());

    // The same answer again, as an engine given it reports it: not fresher for that. A real-time
    // verdict teaches at once.
    let again = VerifyResult {
        catch_all: Some(true),
        ..result(0, "z@all.test", Reason::AcceptAll)
    };
    store.cache(&again, at(100)).unwrap();
    assert_eq!(
        store.domain("all.test").unwrap().unwrap().catch_all,
        Some((true, at(0)))
    );
    // Once no longer trusted, the answer had again is taken with its own time; so is a change.
    store.cache(&again, at(day + 5)).unwrap();
    assert_eq!(
        store.domain("all.test").unwrap().unwrap().catch_all,
        Some((true, at(day + 5)))
    );
    let changed = VerifyResult {
        catch_all: Some(false),
        ..result(0, "y@all.test", Reason::Accepted)
    };
    store.cache(&changed, at(day + 6)).unwrap();
    assert_eq!(
        store.domain("all.test").unwrap().unwrap().catch_all,
        Some((false, at(day + 6)))
    );
    // A greylisting reply later on keeps the catch-all answer.
    store
        .cache(&result(0, "q@all.test", Reason::Greylisted), at(day + 7))
        .unwrap();
    let facts = store.domain("all.test").unwrap().unwrap();
    assert_eq!(
        (facts.catch_all, facts.greylisted),
        (Some((false, at(day + 6))), Some(at(day + 7)))
    );
}

#[test]
fn a_cache_entry_whose_result_is_not_there_is_a_miss() {
    let store = Store::open_in_memory().unwrap();
    store
        .conn
        .execute(
            "INSERT INTO cache (mailbox, reason, expires_ms, job, line) \
             VALUES ('a@x.test', 'accepted', ?1, 999, 1)",
            params![millis(at(100))],
        )
        .unwrap();
    assert_eq!(store.cached("a@x.test", at(1)).unwrap(), None);
    assert_eq!(store.cached_all(["a@x.test"], at(1)).unwrap(), [None]);
}

#[test]
fn held_back_entries_a_failed_write_could_not_write_are_let_go() {
    let mut store = Store::open_in_memory().unwrap();
    let id = job_of(&mut store, "t", &["a@x.test", "b@x.test"]);
    store
        .save_results(&id, &[result(1, "a@x.test", Reason::Accepted)], at(0))
        .unwrap();
    assert_eq!(store.cache_pending(), 1, "the entry, held back");
    store.conn.execute_batch("PRAGMA query_only = 1").unwrap();
    assert!(store.flush_cache(at(1)).is_err());
    assert_eq!(store.cache_pending(), 0, "memory stays bounded");
    store.conn.execute_batch("PRAGMA query_only = 0").unwrap();
    assert_eq!(store.cached("a@x.test", at(1)).unwrap(), None);
}
