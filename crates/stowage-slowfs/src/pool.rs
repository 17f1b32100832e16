//! The worker pool: each answered operation is a job that pays the delay on a worker and replies
//! from there, so up to `threads` operations are in flight at once (like NFS slots); more wait
//! in the queue.
//!
//! fuser can also run one event loop per thread, but each loop owns a 16 MiB request buffer that
//! glibc may end up zeroing (up to 1 GiB for 64 threads); here one loop reads requests and the
//! workers, with small stacks, wait and reply.

use std::collections::VecDeque;
use std::io;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;

use crate::Op;
use crate::fs::Shared;

type Job = Box<dyn FnOnce(&Shared) + Send>;

struct Queue {
    jobs: Mutex<(VecDeque<(Op, Job)>, bool)>,
    ready: Condvar,
}

impl Queue {
    fn lock(&self) -> MutexGuard<'_, (VecDeque<(Op, Job)>, bool)> {
        self.jobs.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

pub(crate) struct Pool {
    queue: Arc<Queue>,
    workers: Vec<JoinHandle<()>>,
}

impl Pool {
    pub(crate) fn new(threads: usize, shared: Arc<Shared>) -> io::Result<Pool> {
        let queue = Arc::new(Queue {
            jobs: Mutex::new((VecDeque::new(), false)),
            ready: Condvar::new(),
        });
        let mut pool = Pool {
            queue,
            workers: Vec::with_capacity(threads),
        };
        for i in 0..threads {
            let queue = Arc::clone(&pool.queue);
            let shared = Arc::clone(&shared);
            let worker = std::thread::Builder::new()
                .name(format!("slowfs-{i}"))
                .stack_size(256 * 1024)
                .spawn(move || work(&queue, &shared))?;
            pool.workers.push(worker);
        }
        Ok(pool)
    }

    /// Queue `job`; a worker pays the round trip of `op`, then runs it (and it replies).
    pub(crate) fn submit(&self, op: Op, job: impl FnOnce(&Shared) + Send + 'static) {
        self.queue.lock().0.push_back((op, Box::new(job)));
        self.queue.ready.notify_one();
    }
}

fn work(queue: &Queue, shared: &Shared) {
    loop {
        let (op, job) = {
            let mut jobs = queue.lock();
            loop {
                if let Some(next) = jobs.0.pop_front() {
                    break next;
                }
                if jobs.1 {
                    return;
                }
                jobs = queue
                    .ready
                    .wait(jobs)
                    .unwrap_or_else(PoisonError::into_inner);
            }
        };
        shared.pay(op);
        job(shared);
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        // Close the queue: the workers finish the queued jobs (their replies fail once the
        // session is gone) and stop.
        self.queue.lock().1 = true;
        self.queue.ready.notify_all();
        for worker in self.workers.drain(..) {
            let _ = worker.join();
        }
    }
}
