//! Replays and redrives run as jobs: the form starts one and is answered at once with its page,
//! which shows its progress (done of total) until it ends. The page reloads itself (a
//! `<meta http-equiv="refresh">`, which needs no script), so this works without JavaScript too.
//! A job belongs to the session that started it.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use shared::auth::{random_token, CredentialDigest};

/// How many finished jobs are remembered (the oldest are forgotten first).
const KEPT: usize = 100;

/// A job's progress and, once it ends, its outcome.
pub struct Job {
    pub title: String,
    /// Where its page links back to.
    pub back: String,
    owner: CredentialDigest,
    done: AtomicUsize,
    /// 0 while unknown.
    total: AtomicUsize,
    outcome: Mutex<Option<Result<String, String>>>,
    serial: u64,
}

impl Job {
    pub fn progress(&self, done: usize, total: usize) {
        self.total.store(total, Ordering::Relaxed);
        self.done.store(done, Ordering::Relaxed);
    }

    /// (done, total); total 0 while unknown.
    pub fn counts(&self) -> (usize, usize) {
        (
            self.done.load(Ordering::Relaxed),
            self.total.load(Ordering::Relaxed),
        )
    }

    /// `None` while it runs; then what it did, or why it failed.
    pub fn outcome(&self) -> Option<Result<String, String>> {
        self.outcome
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

#[derive(Default)]
pub struct Jobs {
    jobs: Mutex<HashMap<String, Arc<Job>>>,
    serial: AtomicUsize,
}

impl Jobs {
    /// Starts `work` on its own task and returns the job's id. `work` reports progress on the job
    /// it is given and ends with what it did (`Ok`) or why it failed (`Err`).
    pub fn start<F, Fut>(
        &self,
        owner: CredentialDigest,
        title: String,
        back: String,
        work: F,
    ) -> String
    where
        F: FnOnce(Arc<Job>) -> Fut,
        Fut: Future<Output = Result<String, String>> + Send + 'static,
    {
        let id = random_token(16);
        let job = Arc::new(Job {
            title,
            back,
            owner,
            done: AtomicUsize::new(0),
            total: AtomicUsize::new(0),
            outcome: Mutex::new(None),
            serial: self.serial.fetch_add(1, Ordering::Relaxed) as u64,
        });
        {
            let mut jobs = self.jobs.lock().unwrap_or_else(|e| e.into_inner());
            while jobs.len() >= KEPT {
                let oldest = jobs
                    .iter()
                    .filter(|(_, j)| j.outcome().is_some())
                    .min_by_key(|(_, j)| j.serial)
                    .map(|(id, _)| id.clone());
                match oldest {
                    Some(id) => jobs.remove(&id),
                    None => break,
                };
            }
            jobs.insert(id.clone(), job.clone());
        }
        let running = work(job.clone());
        tokio::spawn(async move {
            let outcome = running.await;
            *job.outcome.lock().unwrap_or_else(|e| e.into_inner()) = Some(outcome);
        });
        id
    }

    /// The job, if it is this session's.
    pub fn find(&self, id: &str, owner: &CredentialDigest) -> Option<Arc<Job>> {
        self.jobs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(id)
            .filter(|job| job.owner == *owner)
            .cloned()
    }
}

#[cfg(test)]
mod tests {
    use shared::auth::Credential;

    use super::*;

    #[tokio::test]
    async fn a_job_reports_progress_then_its_outcome_to_its_own_session_only() {
        let jobs = Jobs::default();
        let owner = Credential::new("session-a").digest();
        let (release, wait) = tokio::sync::oneshot::channel::<()>();
        let id = jobs.start(
            owner,
            "Replay".into(),
            "/console".into(),
            |job| async move {
                job.progress(1, 2);
                let _ = wait.await;
                job.progress(2, 2);
                Ok("2 events queued again".to_owned())
            },
        );
        assert!(jobs
            .find(&id, &Credential::new("session-b").digest())
            .is_none());
        let job = jobs.find(&id, &owner).unwrap();
        while job.counts() != (1, 2) {
            tokio::task::yield_now().await;
        }
        assert_eq!(job.outcome(), None);
        release.send(()).unwrap();
        while job.outcome().is_none() {
            tokio::task::yield_now().await;
        }
        assert_eq!(job.counts(), (2, 2));
        assert_eq!(job.outcome(), Some(Ok("2 events queued again".to_owned())));
    }
}
