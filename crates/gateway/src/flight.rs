//! Single-flight: at most one run of a job per key at a time; callers that
//! arrive while it runs join it and get the same result.
//!
//! The job runs in its own task, so a caller that gives up (a client that
//! disconnects) does not cancel work that others are waiting for or that has
//! already reached the bank.

use std::{
    collections::HashMap,
    future::Future,
    hash::Hash,
    sync::{Arc, Mutex},
};

use futures::{
    future::{BoxFuture, Shared},
    FutureExt,
};

type Flight<T, E> = Shared<BoxFuture<'static, Result<Arc<T>, E>>>;

#[derive(Debug)]
pub struct SingleFlight<K, T, E> {
    running: Mutex<HashMap<K, Flight<T, E>>>,
}

impl<K, T, E> Default for SingleFlight<K, T, E> {
    fn default() -> Self {
        SingleFlight {
            running: Mutex::new(HashMap::new()),
        }
    }
}

impl<K, T, E> SingleFlight<K, T, E>
where
    K: Eq + Hash + Clone + Send + 'static,
    T: Send + Sync + 'static,
    E: Clone + Send + Sync + 'static,
{
    /// Joins the run for `key` if there is one, else starts `job` and runs it
    /// to the end in a task of its own. `aborted` is the error returned if
    /// that task dies (it panicked or the runtime is shutting down).
    pub async fn run<F>(&self, key: K, aborted: E, job: F) -> Result<Arc<T>, E>
    where
        F: Future<Output = Result<Arc<T>, E>> + Send + 'static,
    {
        let flight = {
            let mut running = self.running.lock().unwrap_or_else(|p| p.into_inner());
            match running.get(&key) {
                Some(flight) => flight.clone(),
                None => {
                    let task = tokio::spawn(job);
                    let flight = async move { task.await.unwrap_or(Err(aborted)) }
                        .boxed()
                        .shared();
                    running.insert(key.clone(), flight.clone());
                    flight
                }
            }
        };
        let result = flight.clone().await;
        // The first waiter back clears the slot, but only if it still holds
        // this very flight (a newer one may have started since).
        let mut running = self.running.lock().unwrap_or_else(|p| p.into_inner());
        if running.get(&key).is_some_and(|f| f.ptr_eq(&flight)) {
            running.remove(&key);
        }
        result
    }
}

#[cfg(test)]
mod tests {
    use std::{
        sync::atomic::{AtomicU32, Ordering},
        time::Duration,
    };

    use super::*;

    #[tokio::test]
    async fn concurrent_callers_share_one_run_and_later_callers_start_a_new_one() {
        let flights: Arc<SingleFlight<&'static str, u32, String>> = Arc::default();
        let runs = Arc::new(AtomicU32::new(0));
        let job = |runs: Arc<AtomicU32>| async move {
            tokio::time::sleep(Duration::from_millis(50)).await;
            Ok(Arc::new(runs.fetch_add(1, Ordering::SeqCst) + 1))
        };
        let (a, b) = tokio::join!(
            flights.run("k", "aborted".to_owned(), job(runs.clone())),
            flights.run("k", "aborted".to_owned(), job(runs.clone())),
        );
        assert_eq!(*a.unwrap(), 1);
        assert_eq!(*b.unwrap(), 1);
        let c = flights
            .run("k", "aborted".to_owned(), job(runs.clone()))
            .await;
        assert_eq!(*c.unwrap(), 2);
        let other = flights
            .run("other", "aborted".to_owned(), job(runs.clone()))
            .await;
        assert_eq!(*other.unwrap(), 3);
    }

    #[tokio::test]
    async fn a_panicking_job_gives_the_aborted_error() {
        let flights: SingleFlight<u8, u8, &'static str> = SingleFlight::default();
        let r = flights
            .run(1, "aborted", async {
                #[allow(clippy::panic)]
                {
                    panic!("job failed")
                }
            })
            .await;
        assert_eq!(r.unwrap_err(), "aborted");
    }
}
